"""Concurrent deliveries to 4 Gunicorn workers on one SQLite file: exactly once, nothing lost."""

import http.client
import json
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from lyftr.providers.signing import sign

from .server import HOST, message, parse_metrics, value

pytestmark = pytest.mark.e2e

SAME_ID_DELIVERIES = 40
DISTINCT_DELIVERIES = 2000
CLIENT_THREADS = 32
SENDERS = ("+10000000001", "+10000000002", "+10000000003", "+10000000004", "+10000000005")


def test_concurrent_deliveries_of_one_message_store_exactly_one_row(server):
    message_id = f"same-{uuid.uuid4().hex}"
    bodies = [
        json.dumps(message(message_id, text=f"delivery {i}")).encode()
        for i in range(SAME_ID_DELIVERIES)
    ]
    barrier = threading.Barrier(SAME_ID_DELIVERIES)

    def deliver(body):
        # Connected first, then all requests go out together once every thread is ready.
        connection = http.client.HTTPConnection(HOST, server.port, timeout=30)
        try:
            connection.connect()
            barrier.wait(timeout=30)
            connection.request(
                "POST",
                "/webhook",
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Signature": sign(server.secret, body),
                },
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=SAME_ID_DELIVERIES) as pool:
        results = list(pool.map(deliver, bodies))
    assert Counter(status for status, _ in results) == {200: SAME_ID_DELIVERIES}
    assert all(json.loads(reply) == {"status": "ok"} for _, reply in results)

    page = server.get_json("/messages")
    assert page["total"] == 1
    assert [row["message_id"] for row in page["data"]] == [message_id]
    # The first write wins: the stored text is one delivery's, unchanged by the 39 others.
    assert page["data"][0]["text"] in {f"delivery {i}" for i in range(SAME_ID_DELIVERIES)}
    stats = server.get_json("/stats")
    assert stats["total_messages"] == 1
    assert stats["messages_per_sender"] == [{"from": "+919876543210", "count": 1}]

    samples = parse_metrics(server.metrics())
    assert value(samples, "webhook_requests_total", result="created") == 1
    assert value(samples, "webhook_requests_total", result="duplicate") == SAME_ID_DELIVERIES - 1


def test_thousands_of_concurrent_distinct_deliveries_are_all_stored(server):
    run = uuid.uuid4().hex[:8]
    bodies = [
        message(
            f"bulk-{run}-{i:05d}",
            from_=SENDERS[i % len(SENDERS)],
            ts=f"2025-03-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
            text=f"bulk {i}",
        )
        for i in range(DISTINCT_DELIVERIES)
    ]

    def deliver(body):
        response = server.post_webhook(body)  # a fresh connection per delivery
        return response.status, response.body

    with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        results = list(pool.map(deliver, bodies))
    # A 503 here is a writer that waited out the SQLite busy timeout ("database is locked"): the
    # log line says how long it waited.
    failed = [r for r in server.request_records() if r["status"] >= 500]
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: DISTINCT_DELIVERIES}, (statuses, failed[:3])
    assert all(json.loads(reply) == {"status": "ok"} for _, reply in results)

    output = server.output()
    assert "database is locked" not in output.lower()
    assert "traceback" not in output.lower()
    assert not failed

    page = server.get_json("/messages?limit=100")
    assert page["total"] == DISTINCT_DELIVERIES
    stats = server.get_json("/stats")
    assert stats["total_messages"] == DISTINCT_DELIVERIES
    assert stats["senders_count"] == len(SENDERS)
    per_sender = DISTINCT_DELIVERIES // len(SENDERS)
    assert stats["messages_per_sender"] == [{"from": s, "count": per_sender} for s in SENDERS]
    assert stats["first_message_ts"] == "2025-03-01T00:00:00Z"
    assert stats["last_message_ts"] == bodies[-1]["ts"]

    stored = {row["message_id"] for row in server.all_messages()}
    assert stored == {body["message_id"] for body in bodies}

    samples = parse_metrics(server.metrics())
    assert value(samples, "webhook_requests_total", result="created") == DISTINCT_DELIVERIES
    assert value(samples, "webhook_requests_total", result="duplicate") == 0
    assert value(samples, "webhook_requests_total", result="unavailable") == 0
