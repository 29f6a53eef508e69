"""One JSON line per request, with the webhook's outcome, and nothing secret in any line."""

import json
import logging
import sqlite3
from datetime import datetime, timedelta

import pytest
from helpers import SECRET, sample_message

from lyftr import logs
from lyftr.logs import LineFormatter
from lyftr.providers.signing import sign

FORMATTER = LineFormatter()


@pytest.fixture
def lines(caplog):
    """Capture everything at DEBUG and below; return the formatted request lines so far as dicts."""
    caplog.set_level(logging.DEBUG)

    def request_lines():
        return [
            json.loads(FORMATTER.format(r)) for r in caplog.records if r.name == "lyftr.request"
        ]

    return request_lines


def only(items):
    assert len(items) == 1, items
    return items[0]


def test_request_line_is_json_with_required_fields(client, lines):
    client.get("/messages?limit=5")
    line = only(lines())
    assert {"ts", "level", "request_id", "method", "path", "status", "latency_ms"} <= line.keys()
    assert (line["method"], line["path"], line["status"], line["level"]) == (
        "GET",
        "/messages",
        200,
        "INFO",
    )
    assert isinstance(line["latency_ms"], (int, float)) and line["latency_ms"] >= 0
    assert isinstance(line["request_id"], str) and line["request_id"]


def test_line_ts_is_iso8601_utc(client, lines):
    client.get("/health/live")
    ts = only(lines())["ts"]
    assert ts.endswith("Z")
    parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)


def test_formatter_output_is_one_line(client, caplog):
    caplog.set_level(logging.INFO)
    client.get("/stats")
    for record in caplog.records:
        out = FORMATTER.format(record)
        assert "\n" not in out
        assert isinstance(json.loads(out), dict)


def test_one_line_per_request(client, send, lines):
    send()
    client.get("/messages")
    client.get("/nope")
    assert [(line["method"], line["path"], line["status"]) for line in lines()] == [
        ("POST", "/webhook", 200),
        ("GET", "/messages", 200),
        ("GET", "/nope", 404),
    ]


def test_webhook_created_line(send, lines):
    send()
    line = only(lines())
    assert (line["message_id"], line["dup"], line["result"]) == ("m1", False, "created")
    assert line["level"] == "INFO"


def test_webhook_duplicate_line(send, lines):
    send()
    send(text="changed")
    line = lines()[-1]
    assert (line["message_id"], line["dup"], line["result"]) == ("m1", True, "duplicate")


def test_webhook_validation_error_line(send, lines):
    send(sample_message(message_id="bad-ts", ts="2025-02-30T00:00:00Z"))
    line = only(lines())
    assert (line["result"], line["dup"], line["message_id"], line["status"]) == (
        "validation_error",
        False,
        "bad-ts",
        422,
    )


def test_webhook_invalid_json_line(send, lines):
    send.raw(b"{nope")
    line = only(lines())
    assert (line["result"], line["dup"], line["status"]) == ("validation_error", False, 422)
    assert "message_id" not in line


def test_invalid_signature_logged_at_error(send, lines, caplog):
    send.raw(json.dumps(sample_message(message_id="forged")), signature=sign("wrong", b"x"))
    line = only(lines())
    assert line["level"] == "ERROR"
    assert (line["result"], line["dup"], line["status"]) == ("invalid_signature", False, 401)
    # the body of an unauthenticated request is never parsed, so its message_id is unknown
    assert "message_id" not in line
    record = only([r for r in caplog.records if r.name == "lyftr.request"])
    assert record.levelno == logging.ERROR


def test_missing_signature_logged_at_error(client, lines):
    client.post("/webhook", data=b"{}")
    line = only(lines())
    assert (line["level"], line["result"]) == ("ERROR", "invalid_signature")


def test_request_id_echoed_and_logged(client, lines):
    response = client.get("/health/live", headers={"X-Request-ID": "req-42.a:b_c"})
    assert response.headers["X-Request-ID"] == "req-42.a:b_c"
    assert only(lines())["request_id"] == "req-42.a:b_c"


def test_request_id_generated_and_unique(client, lines):
    first = client.get("/health/live").headers["X-Request-ID"]
    second = client.get("/health/live").headers["X-Request-ID"]
    assert first and second and first != second
    assert [line["request_id"] for line in lines()] == [first, second]


@pytest.mark.parametrize("incoming", ["", "has spaces", "x" * 129, 'quote"s', "näive"])
def test_unusable_request_id_replaced(client, lines, incoming):
    response = client.get("/health/live", headers={"X-Request-ID": incoming})
    generated = response.headers["X-Request-ID"]
    assert generated and generated != incoming
    assert only(lines())["request_id"] == generated


def test_request_id_on_errors_too(client, send, lines):
    responses = [
        client.get("/nope", headers={"X-Request-ID": "r404"}),
        send.raw(b"{}", signature="0" * 64, **{"X-Request-ID": "r401"}),
    ]
    assert [r.headers["X-Request-ID"] for r in responses] == ["r404", "r401"]
    assert [line["request_id"] for line in lines()] == ["r404", "r401"]


def test_logging_configured_once():
    logs.configure("INFO")
    logs.configure("INFO")
    root = logging.getLogger()
    assert sum(isinstance(h.formatter, LineFormatter) for h in root.handlers) == 1


# --- never logged ------------------------------------------------------------------------------

TEXT = "PRIVATE-TEXT-5a1e"
PREVIOUS = "PREVIOUS-SECRET-77c0"


@pytest.mark.sqlite_only
def test_text_secret_and_signature_never_logged(make_app, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    app = make_app(WEBHOOK_SECRET_PREVIOUS=PREVIOUS)
    client = app.test_client()
    signatures = []

    def post(message=None, body=None, key=SECRET, signature=None):
        body = body if body is not None else json.dumps(message).encode()
        signature = signature or sign(key, body)
        signatures.append(signature)
        return client.post("/webhook", data=body, headers={"X-Signature": signature})

    assert post(sample_message(text=TEXT)).status_code == 200
    assert post(sample_message(text=TEXT + " again")).status_code == 200  # duplicate
    assert post(sample_message(message_id="old", text=TEXT), key=PREVIOUS).status_code == 200
    assert post(sample_message(message_id="long", text=TEXT * 300)).status_code == 422
    assert post(sample_message(message_id="num", text=TEXT, ts="bad")).status_code == 422
    assert post(sample_message(message_id="forged", text=TEXT), key="other").status_code == 401
    assert post(body=("{" + TEXT).encode()).status_code == 422
    assert post(body=json.dumps(sample_message(text=TEXT * 5000)).encode()).status_code == 413
    assert client.get("/messages", query_string={"q": "private"}).status_code == 200

    # A database error while storing a message: its statement parameters (the text) stay hidden.
    with sqlite3.connect(tmp_path / "app.db") as db:
        db.execute("DROP TABLE messages")
    db.close()
    assert post(sample_message(message_id="dberr", text=TEXT)).status_code == 503

    output = [FORMATTER.format(record) for record in caplog.records]
    assert any('"result": "unavailable"' in line for line in output)
    assert any(record.levelno == logging.ERROR for record in caplog.records)
    for secret_thing in [TEXT, TEXT.lower(), SECRET, PREVIOUS, *signatures]:
        assert secret_thing not in caplog.text
        for line in output:
            assert secret_thing not in line


def test_unexpected_error_traceback_is_logged_not_returned(app, caplog):
    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    caplog.set_level(logging.INFO)
    response = app.test_client().get("/boom")
    assert response.status_code == 500
    record = only([r for r in caplog.records if r.name == "lyftr.request"])
    line = json.loads(FORMATTER.format(record))
    assert line["level"] == "ERROR"
    assert line["status"] == 500
    assert "RuntimeError: kaboom" in line["exc_info"]
    assert "kaboom" not in response.get_data(as_text=True)


def test_each_line_names_the_client_address(client, lines):
    client.get("/health/live", environ_base={"REMOTE_ADDR": "198.51.100.7"})
    # Without TRUSTED_PROXIES a client cannot choose the address it is logged under.
    client.get(
        "/health/live",
        environ_base={"REMOTE_ADDR": "198.51.100.8"},
        headers={"X-Forwarded-For": "203.0.113.1"},
    )
    assert [line["client"] for line in lines()] == ["198.51.100.7", "198.51.100.8"]


def test_with_trusted_proxies_the_forwarded_address_is_logged(make_app, lines):
    client = make_app(TRUSTED_PROXIES=1).test_client()
    client.get(
        "/health/live",
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
        headers={"X-Forwarded-For": "203.0.113.66, 198.51.100.9"},
    )
    assert only(lines())["client"] == "198.51.100.9"  # what the one trusted proxy saw
