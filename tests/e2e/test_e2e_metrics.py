"""/metrics across Gunicorn workers.

Every scrape, whichever worker answers it, shows the same sums.
"""

import random
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from .server import message, parse_metrics, series, value

pytestmark = pytest.mark.e2e

UNIQUE = 200
DUPLICATES = 100
INVALID_SIGNATURES = 10
WRONG_METHOD = 3
SCRAPES = 12


def test_metrics_are_exact_and_identical_on_every_scrape(server):
    ids = [f"metrics-{i:04d}-{uuid.uuid4().hex[:8]}" for i in range(UNIQUE)]
    deliveries = [message(mid, text=f"first {mid}") for mid in ids]
    deliveries += [message(random.choice(ids), text="again") for _ in range(DUPLICATES)]
    random.shuffle(deliveries)

    unknown = [("GET", f"/random-{uuid.uuid4()}") for _ in range(15)]
    unknown += [("POST", f"/random-{uuid.uuid4()}/deeper?x=1") for _ in range(5)]
    unknown += [("PURGE", f"/random-{uuid.uuid4()}") for _ in range(2)]

    # Each request on a fresh connection, spread by the kernel over the 4 workers.
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda body: server.post_webhook(body).status, deliveries))
        bad = list(
            pool.map(
                lambda i: server.post_webhook(message(), signature="0" * 64).status,
                range(INVALID_SIGNATURES),
            )
        )
        wrong_method = list(
            pool.map(lambda i: server.request("DELETE", "/webhook").status, range(WRONG_METHOD))
        )
        unknown_statuses = list(pool.map(lambda req: server.request(*req).status, unknown))
    assert statuses == [200] * len(deliveries)
    assert bad == [401] * INVALID_SIGNATURES
    assert wrong_method == [405] * WRONG_METHOD
    assert unknown_statuses == [404] * len(unknown)

    expected_webhook_series = {
        (("method", "POST"), ("path", "/webhook"), ("status", "200")): float(UNIQUE + DUPLICATES),
        (("method", "POST"), ("path", "/webhook"), ("status", "401")): float(INVALID_SIGNATURES),
    }
    expected_unmatched = {
        (("method", "GET"), ("path", "<unmatched>"), ("status", "404")): 15.0,
        (("method", "POST"), ("path", "<unmatched>"), ("status", "404")): 5.0,
        (("method", "OTHER"), ("path", "<unmatched>"), ("status", "404")): 2.0,
    }
    total_requests = len(deliveries) + INVALID_SIGNATURES + WRONG_METHOD + len(unknown)

    for scrape in range(SCRAPES):
        text = server.metrics()  # a fresh connection each time: any worker may answer
        samples = parse_metrics(text)
        where = f"scrape {scrape}"

        assert value(samples, "webhook_requests_total", result="created") == UNIQUE, where
        assert value(samples, "webhook_requests_total", result="duplicate") == DUPLICATES, where
        assert (
            value(samples, "webhook_requests_total", result="invalid_signature")
            == INVALID_SIGNATURES
        ), where
        assert value(samples, "webhook_requests_total", result="validation_error") == 0, where
        assert f'webhook_requests_total{{result="created"}} {UNIQUE}.0' in text.splitlines(), where
        assert (
            f'webhook_requests_total{{result="duplicate"}} {DUPLICATES}.0' in text.splitlines()
        ), where

        webhook_series = series(samples, "http_requests_total", path="/webhook")
        unmatched_series = series(samples, "http_requests_total", path="<unmatched>")
        # A 405 on a known route is counted under that route, never as "<unmatched>".
        wrong_method_series = {
            labels: count
            for labels, count in webhook_series.items()
            if dict(labels)["status"] == "405"
        }
        assert not any(dict(labels)["status"] == "405" for labels in unmatched_series), where
        assert sum(wrong_method_series.values()) == WRONG_METHOD, (where, wrong_method_series)
        assert all(dict(labels)["method"] == "DELETE" for labels in wrong_method_series), where
        assert {
            k: v for k, v in webhook_series.items() if k not in wrong_method_series
        } == expected_webhook_series, where
        assert {
            k: v for k, v in unmatched_series.items() if k not in wrong_method_series
        } == expected_unmatched, where
        # Earlier scrapes are counted once they are answered, whichever worker answered them.
        assert (
            value(samples, "http_requests_total", method="GET", path="/metrics", status="200")
            or 0.0
        ) == scrape, where

        # No unknown URL becomes a series: only routes (and "<unmatched>") are path labels.
        assert "random-" not in text, where
        paths = {dict(labels)["path"] for labels in series(samples, "http_requests_total")}
        assert paths <= {"/webhook", "<unmatched>", "/metrics", "/health/live"}, (where, paths)

        # The latency histogram covers every request, with the contract's bucket bounds.
        count = value(samples, "request_latency_ms_count")
        assert count is not None and count >= total_requests + scrape, where
        for bound in ("100", "500", "+Inf"):
            assert value(samples, "request_latency_ms_bucket", le=bound) is not None, (where, bound)
        assert value(samples, "request_latency_ms_bucket", le="+Inf") == count, where
        assert value(samples, "request_latency_ms_sum") > 0, where
