"""Retention: with RETENTION_DAYS set, messages that arrived longer ago are deleted while the
service runs (no cron to set up).

Every worker runs a background thread (a greenlet under gevent) that wakes each
RETENTION_INTERVAL_S; one purge runs at a time across workers and hosts (``exclusive_purge``), in
small transactions with pauses between, so ingest keeps its turn at the write lock. The IDs of
purged messages are remembered for PURGED_IDS_KEEP_DAYS, so a provider's late retry is answered as
a duplicate and not stored again.
"""

import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta

from lyftr import store

logger = logging.getLogger(__name__)


def instant(moment):
    """``moment`` (an aware datetime) as created_at is written: comparable as text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def purge_once(config, now=None):
    """Purge what RETENTION_DAYS says is too old, unless another process is purging; return how
    many messages were deleted (None when another process had the turn)."""
    now = now or datetime.now(UTC)
    before = instant(now - timedelta(days=config["RETENTION_DAYS"]))
    keep_days = config["PURGED_IDS_KEEP_DAYS"]
    forget_before = instant(now - timedelta(days=keep_days)) if keep_days else None
    with store.exclusive_purge() as ours:
        if not ours:
            return None
        purged = store.purge(before, forget_before=forget_before)
    if purged:
        logger.info("retention: purged", extra={"purged": purged, "before": before})
    return purged


class Retention:
    """The background purge of one app, started by the first request a process serves."""

    def __init__(self, app):
        self.app = app
        self._pid = None
        self._lock = threading.Lock()

    def start(self):
        if not self.app.config["RETENTION_DAYS"] or self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()  # a forked worker starts its own
            threading.Thread(target=self._run, name="lyftr-retention", daemon=True).start()

    def _run(self):
        while True:
            try:
                with self.app.app_context():
                    purge_once(self.app.config)
            except Exception:  # the database may be away: try again at the next interval
                logger.warning("retention: purge failed", exc_info=True)
            time.sleep(self.app.config["RETENTION_INTERVAL_S"])


def init_app(app):
    retention = app.extensions["lyftr.retention"] = Retention(app)
    app.before_request(retention.start)
