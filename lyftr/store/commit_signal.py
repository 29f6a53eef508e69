"""Waking a long poll (``/feed?wait=``) when a message is committed, on any host.

On PostgreSQL every insert that stores a message sends ``NOTIFY lyftr_messages`` in its own
transaction (delivered at commit, to every listening session). Each process keeps one connection
listening, from a background thread (a greenlet under gevent: psycopg waits cooperatively), and
wakes its waiting requests at each notification. A waiter still looks at the feed again after at
most FALLBACK_POLL_S (the listener may be reconnecting, or have started after the commit it waits
for). SQLite (one host) has no listener: its waiters poll every POLL_S.
"""

import logging
import os
import threading
import time

CHANNEL = "lyftr_messages"
NOTIFY_CALL = f"pg_notify('{CHANNEL}', '')"
# How often a waiter looks again without a signal: when nothing listens, and when something does.
POLL_S = 0.1
FALLBACK_POLL_S = 1.0
RECONNECT_S = 1.0
# The listening connection is closed when nobody has waited for this long (and opened again by the
# next wait): an idle process, or an app made for one task, holds no connection for it.
LINGER_S = 10.0
logger = logging.getLogger(__name__)


class Polling:
    """No signal: ``wait`` sleeps a polling interval (SQLite)."""

    def seen(self):
        return 0

    def wait(self, seen, timeout):
        time.sleep(max(min(timeout, POLL_S), 0))


class Listener:
    """One LISTEN connection per process while requests wait, started by a wait (after a fork
    too), closed LINGER_S after the last one."""

    def __init__(self, connect):
        self._connect = connect  # () -> a psycopg connection in autocommit mode
        self._changed = threading.Condition()
        self._count = 0
        self._listening = False
        self._pid = None  # the process whose thread is listening; None: no thread
        self._waiting = 0
        self._last_wait = time.monotonic()

    def seen(self):
        """A marker to pass to ``wait``: how many signals this process has had."""
        return self._count

    def wait(self, seen, timeout):
        """Return when a signal came after ``seen`` was taken, or after ``timeout`` seconds (at
        most FALLBACK_POLL_S, or POLL_S while not listening)."""
        with self._changed:
            if self._pid != os.getpid():
                self._pid, self._listening = os.getpid(), False
                threading.Thread(target=self._run, name="lyftr-feed-listener", daemon=True).start()
            limit = FALLBACK_POLL_S if self._listening else POLL_S
            self._waiting += 1
            try:
                self._changed.wait_for(lambda: self._count != seen, max(min(timeout, limit), 0))
            finally:
                self._waiting -= 1
                self._last_wait = time.monotonic()

    def _idle(self):
        """Whether to stop listening (then this thread is forgotten: the next wait starts one)."""
        with self._changed:
            idle = self._waiting == 0 and time.monotonic() - self._last_wait > LINGER_S
            if idle:
                self._pid, self._listening = None, False
            return idle

    def _signal(self, listening):
        with self._changed:
            self._count += 1
            self._listening = listening
            self._changed.notify_all()

    def _run(self):
        while True:
            try:
                with self._connect() as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    # Listening now: whatever committed before is for the waiters to look at.
                    self._signal(listening=True)
                    while not self._idle():
                        for _ in connection.notifies(timeout=FALLBACK_POLL_S):
                            self._signal(listening=True)
                    return
            except Exception:  # the database went away: wake the waiters, listen again later
                logger.warning("feed listener: connection lost", exc_info=True)
            self._signal(listening=False)
            time.sleep(RECONNECT_S)
            if self._idle():
                return
