"""Misconfiguration at start.

The server still comes up, says it is not ready, and stores nothing.
"""

import time

import pytest

from lyftr.providers.signing import sign

from .server import message, parse_metrics, value

pytestmark = pytest.mark.e2e


def assert_json_error(response, *statuses):
    assert response.status in statuses, (response.status, response.body)
    assert response.is_json(), response.body
    assert "Traceback" not in response.body.decode("utf-8", "replace")
    return response.json()


@pytest.mark.parametrize("secret", ["", None], ids=["empty", "unset"])
def test_without_a_secret_the_webhook_refuses_everything(start_server, secret):
    server = start_server(secret=secret)
    assert server.get("/health/live").status == 200
    ready = assert_json_error(server.get("/health/ready"), 503)
    assert ready["checks"]["webhook_secret"] != "ok"
    assert ready["checks"]["database"] == "ok"
    assert "webhook_secret" in ready["detail"]

    body = message()
    attempts = [
        server.post_webhook(body, secret=""),  # HMAC under the empty key
        server.post_webhook(body, signature=sign("anything", b"")),
        server.post_webhook(body, signature=False),
        server.post_webhook(b"", secret=""),
    ]
    for response in attempts:
        error = assert_json_error(response, *range(400, 600))
        assert response.status != 200 and "detail" in error

    assert server.get_json("/messages")["total"] == 0
    assert server.get_json("/stats")["total_messages"] == 0
    samples = parse_metrics(server.metrics())
    assert value(samples, "webhook_requests_total", result="created") == 0
    assert value(samples, "webhook_requests_total", result="duplicate") == 0


def test_unreachable_database_is_unavailable_until_it_can_be_created(start_server, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file where the database directory should be\n")
    server = start_server(database_url=f"sqlite:///{blocker}/app.db")

    assert server.get("/health/live").status == 200
    for _ in range(4):  # whichever worker answers
        ready = assert_json_error(server.get("/health/ready"), 503)
        assert ready["checks"]["database"] != "ok"
        assert ready["checks"]["webhook_secret"] == "ok"

    body = message("outage-1")
    for _ in range(4):
        response = server.post_webhook(body)
        assert_json_error(response, 503)
        assert response.headers["Retry-After"], "503 without Retry-After"
    for path in ("/messages", "/stats"):
        assert_json_error(server.get(path), *range(500, 600))
    assert blocker.is_file()

    # The operator fixes the disk: the service recovers without a restart.
    blocker.unlink()
    deadline = time.monotonic() + 10
    while server.get("/health/ready").status != 200:
        assert time.monotonic() < deadline, "not ready 10 s after the database became reachable"
        time.sleep(0.1)
    for _ in range(8):  # every worker, not only the one that answered first
        assert server.get_json("/health/ready")["status"] == "ready"

    assert server.post_webhook(body).status == 200
    for number in range(2, 10):
        assert server.post_webhook(message(f"outage-{number}")).status == 200
    assert server.post_webhook(body).status == 200  # a duplicate by now
    assert server.get_json("/messages")["total"] == 9
    assert (tmp_path / "afile" / "app.db").is_file()
    assert server.proc.poll() is None
