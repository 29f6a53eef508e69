"""Crash and shutdown under write load: every delivery answered 200 is stored, and stays stored."""

import http.client
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from .server import message

pytestmark = pytest.mark.e2e

LOAD_THREADS = 16
ACKED_BEFORE_SIGNAL = 200
LOAD_TIMEOUT = 60.0


class WriteLoad:
    """Threads posting distinct messages, each on a fresh connection, until told to stop.

    Records every message_id sent and every one answered ``200 {"status": "ok"}``. Before
    ``stopping`` is set, anything else is a failure; after it, a request may fail to get a response
    (refused, reset, closed before the status line). A response cut short is a failure unless
    ``cut_short_ok`` (SIGKILL can land between the headers and the body); it never counts as
    acknowledged.
    """

    def __init__(self, server, *, cut_short_ok):
        self.server = server
        self.cut_short_ok = cut_short_ok
        self.run = uuid.uuid4().hex[:8]
        self.lock = threading.Lock()
        self.sent = set()
        self.acked = set()
        self.failures = []  # problems that are bugs whenever they happen
        self.stopping = threading.Event()

    def worker(self, number):
        sequence = 0
        while True:
            message_id = f"load-{self.run}-{number:02d}-{sequence:06d}"
            sequence += 1
            with self.lock:
                self.sent.add(message_id)
            try:
                body = message(message_id, text=f"load {message_id}")
                response = self.server.post_webhook(body, timeout=30)
            except http.client.RemoteDisconnected:
                if not self.stopping.is_set():
                    self.failures.append(
                        (message_id, "closed without a response before the signal")
                    )
                return None
            except (http.client.IncompleteRead, http.client.BadStatusLine) as exc:
                if not (self.cut_short_ok and self.stopping.is_set()):
                    self.failures.append((message_id, f"partial response: {exc!r}"))
                return None
            except OSError as exc:  # refused, reset, broken pipe: no response at all
                if not self.stopping.is_set():
                    self.failures.append((message_id, f"error before the signal: {exc!r}"))
                return None
            if response.status != 200 or response.json() != {"status": "ok"}:
                self.failures.append((message_id, response.status, response.body))
                return None
            with self.lock:
                self.acked.add(message_id)

    def wait_for_acks(self, count):
        deadline = time.monotonic() + LOAD_TIMEOUT
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.acked) >= count or self.failures:
                    return
            time.sleep(0.01)
        pytest.fail(f"only {len(self.acked)} deliveries acknowledged in {LOAD_TIMEOUT} s")


def run_load_then(server, interrupt, *, cut_short_ok=False):
    """Start the load, call ``interrupt()`` once enough deliveries are acknowledged.

    Then let it drain.
    """
    load = WriteLoad(server, cut_short_ok=cut_short_ok)
    with ThreadPoolExecutor(max_workers=LOAD_THREADS) as pool:
        futures = [pool.submit(load.worker, number) for number in range(LOAD_THREADS)]
        try:
            load.wait_for_acks(ACKED_BEFORE_SIGNAL)
            assert not load.failures, load.failures[:5]
        finally:
            load.stopping.set()
            interrupt()
        for future in futures:
            future.result(timeout=LOAD_TIMEOUT)
    assert not load.failures, load.failures[:5]
    assert len(load.acked) >= ACKED_BEFORE_SIGNAL
    return load


def assert_all_acknowledged_are_stored(load, restarted):
    rows = restarted.all_messages(page_size=100)
    stored = {row["message_id"] for row in rows}
    missing = load.acked - stored
    assert not missing, f"{len(missing)} acknowledged deliveries lost, e.g. {sorted(missing)[:5]}"
    assert stored <= load.sent, "stored a message nobody sent"
    for row in rows:
        assert row["text"] == f"load {row['message_id']}"
    # The message rows and the per-sender counts were committed together or not at all.
    stats = restarted.get_json("/stats")
    assert stats["total_messages"] == len(stored)
    assert stats["messages_per_sender"] == [{"from": "+919876543210", "count": len(stored)}]


def test_sigkill_of_the_whole_server_loses_no_acknowledged_delivery(start_server, db_url):
    server = start_server()
    # SIGKILL to master and workers at once, mid-load: a response may be cut off anywhere.
    load = run_load_then(server, server.kill, cut_short_ok=True)
    assert server.proc.returncode == -9

    restarted = start_server(database_url=db_url)
    assert restarted.get_json("/health/ready")["status"] == "ready"
    assert_all_acknowledged_are_stored(load, restarted)

    # The database takes writes again, and deliveries cut off by the crash can be retried.
    retry_ids = sorted(load.sent - load.acked)[:5]
    for message_id in retry_ids:
        assert restarted.post_webhook(message(message_id, text=f"load {message_id}")).status == 200
    assert_all_acknowledged_are_stored(load, restarted)


def test_sigterm_finishes_in_flight_requests_and_stores_them(start_server, db_url):
    server = start_server()
    load = run_load_then(server, server.terminate)  # SIGTERM to the master, mid-load
    assert server.wait() == 0, server.output()

    records = server.records()
    assert [r["msg"] for r in records if r.get("logger") == "gunicorn.error"][
        -1
    ] == "Shutting down: Master"
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")], "errors during shutdown"
    # Each delivery the server logged as answered reached the client whole: no 200 lost in transit.
    logged_ok = {
        r["message_id"] for r in records if r.get("path") == "/webhook" and r["status"] == 200
    }
    assert logged_ok == load.acked

    restarted = start_server(database_url=db_url)
    assert_all_acknowledged_are_stored(load, restarted)
