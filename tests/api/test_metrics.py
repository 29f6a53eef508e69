"""GET /metrics. The counters are process-global, so every check is on a delta."""

import pytest
from helpers import metric, sample_message

from lyftr.providers.signing import sign


def http(client, method, path, status):
    return metric(client, "http_requests_total", method=method, path=path, status=str(status))


def webhook(client, result):
    return metric(client, "webhook_requests_total", result=result)


def test_prometheus_text_format(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE webhook_requests_total counter" in text
    assert "# TYPE request_latency_ms histogram" in text


def test_http_requests_counted_by_route(client, send):
    before = http(client, "POST", "/webhook", 200)
    send()
    send(message_id="m2")
    assert http(client, "POST", "/webhook", 200) == before + 2


def test_http_requests_counted_by_status(client, send):
    before_401 = http(client, "POST", "/webhook", 401)
    before_get = http(client, "GET", "/messages", 200)
    send.raw(b"{}", signature="0" * 64)
    client.get("/messages")
    assert http(client, "POST", "/webhook", 401) == before_401 + 1
    assert http(client, "GET", "/messages", 200) == before_get + 1


def test_unknown_url_counted_as_unmatched(client):
    raw = "/no-such-route-7f3a9c"
    before = http(client, "GET", "<unmatched>", 404)
    assert client.get(raw).status_code == 404
    assert http(client, "GET", "<unmatched>", 404) == before + 1
    text = client.get("/metrics").get_data(as_text=True)
    assert raw not in text


def test_made_up_methods_do_not_create_series(client):
    client.open("/webhook", method="BREW")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'method="BREW"' not in text


def test_query_string_not_in_path_label(client):
    before = http(client, "GET", "/health/ready", 200)
    client.get("/health/ready?probe=abc123")
    assert http(client, "GET", "/health/ready", 200) == before + 1
    assert "abc123" not in client.get("/metrics").get_data(as_text=True)


@pytest.mark.parametrize(
    ("result", "deliver"),
    [
        ("created", lambda send: send(message_id="metric-created")),
        ("invalid_signature", lambda send: send.raw(b"{}", signature="f" * 64)),
        ("validation_error", lambda send: send(sample_message(ts="2025-02-30T10:00:00Z"))),
        ("validation_error", lambda send: send.raw(b"not json")),
        ("payload_too_large", lambda send: send.raw(b" " * (64 * 1024 + 1))),
    ],
)
def test_webhook_outcomes_counted(client, send, result, deliver):
    before = {
        r: webhook(client, r)
        for r in ("created", "duplicate", "invalid_signature", "validation_error")
    }
    before.setdefault(result, webhook(client, result))
    deliver(send)
    after = {r: webhook(client, r) for r in before}
    assert after[result] == before[result] + 1
    assert all(after[r] == before[r] for r in before if r != result)


def test_duplicate_counted(client, send):
    send()
    created, duplicate = webhook(client, "created"), webhook(client, "duplicate")
    send()
    send(text="changed")
    assert webhook(client, "duplicate") == duplicate + 2
    assert webhook(client, "created") == created


def test_not_configured_counted(make_app):
    client = make_app(WEBHOOK_SECRET="").test_client()
    before = webhook(client, "not_configured")
    body = b'{"message_id": "m1"}'
    client.post("/webhook", data=body, headers={"X-Signature": sign("", body)})
    assert webhook(client, "not_configured") == before + 1


def test_contract_results_always_exported(client):
    text = client.get("/metrics").get_data(as_text=True)
    for result in ("created", "duplicate", "invalid_signature", "validation_error"):
        assert f'webhook_requests_total{{result="{result}"}}' in text


def test_latency_histogram(client, send):
    text = client.get("/metrics").get_data(as_text=True)
    for line in (
        'request_latency_ms_bucket{le="100"}',
        'request_latency_ms_bucket{le="500"}',
        'request_latency_ms_bucket{le="+Inf"}',
        "request_latency_ms_sum",
        "request_latency_ms_count",
    ):
        assert line in text

    count = metric(client, "request_latency_ms_count")  # this scrape itself is observed after
    inf = metric(client, "request_latency_ms_bucket", le="+Inf")
    send()
    client.get("/stats")
    # Each scrape is observed after its own body is written: every reading sees the scrapes before
    # it. Here each sees the other reading's scrape, its own earlier one and the two requests.
    assert metric(client, "request_latency_ms_count") == count + 4
    assert metric(client, "request_latency_ms_bucket", le="+Inf") == inf + 4
    assert metric(client, "request_latency_ms_sum") > 0
    bucket_100 = metric(client, "request_latency_ms_bucket", le="100")
    bucket_500 = metric(client, "request_latency_ms_bucket", le="500")
    total = metric(client, "request_latency_ms_bucket", le="+Inf")
    assert bucket_100 <= bucket_500 <= total


def test_wrong_method_is_counted_under_its_route(client):
    before = http(client, "DELETE", "/webhook", 405)
    assert client.delete("/webhook").status_code == 405
    assert http(client, "DELETE", "/webhook", 405) == before + 1
