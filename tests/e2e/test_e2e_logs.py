"""The server's output.

JSON lines only, one per request, with the contract's fields and no secrets.
"""

import json
import re
import uuid

import pytest

from lyftr.providers.signing import sign

from .server import message

pytestmark = pytest.mark.e2e

ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
REQUEST_FIELDS = ("ts", "level", "request_id", "method", "path", "status", "latency_ms")


def test_every_output_line_is_json_with_one_line_per_request(server):
    secret_text = f"SECRET-TEXT-{uuid.uuid4()}"
    valid = message(f"logs-{uuid.uuid4().hex}", text=secret_text)
    valid_body = json.dumps(valid).encode()
    wrong_key_signature = sign(f"wrong-{uuid.uuid4().hex}", valid_body)
    invalid = message(f"bad-{uuid.uuid4().hex}", **{"from": "12345"}, text=secret_text)

    signatures = []  # every signature value sent: none may be logged
    sent = {}  # request_id -> (method, path, status received), in order

    def call(method, path, body=None, signature=None):
        """One request with its own X-Request-ID; a body goes to /webhook, signed unless told."""
        request_id = f"e2e-logs-{uuid.uuid4().hex}"
        headers = {"X-Request-ID": request_id}
        if body is None:
            response = server.request(method, path, headers=headers)
        else:
            if signature is None:
                signature = sign(server.secret, body)
            if signature is not False:
                signatures.append(signature)
            response = server.post_webhook(body, signature=signature, headers=headers)
        assert response.headers["X-Request-ID"] == request_id  # an incoming ID is reused and echoed
        sent[request_id] = (method, path, response.status)

    call("POST", "/webhook", valid_body)  # created
    call("POST", "/webhook", valid_body)  # duplicate
    call("POST", "/webhook", valid_body, signature=wrong_key_signature)
    call("POST", "/webhook", valid_body, signature=False)  # no X-Signature at all
    call("POST", "/webhook", valid_body, signature="sha256=" + "ab" * 32)
    call("POST", "/webhook", json.dumps(invalid).encode())  # a field is invalid
    call("POST", "/webhook", b"{not json")
    unknown_path = f"/random-{uuid.uuid4()}"
    call("GET", unknown_path)
    call("GET", "/webhook")  # 405
    for path in ("/messages", "/stats", "/health/ready", "/health/live", "/metrics"):
        call("GET", path)
    # Without an incoming ID (or with one that is not an ID) the server makes one up.
    generated = [server.get("/stats"), server.get("/stats", headers={"X-Request-ID": "not an id!"})]

    statuses = [status for _, _, status in sent.values()]
    assert statuses[:9] == [200, 200, 401, 401, 401, 422, 422, 404, 405]
    assert set(statuses[9:]) == {200}

    assert server.stop() == 0  # everything flushed, shutdown lines included
    output = server.output()
    records = server.records()  # fails on the first line that is not a JSON object

    for record in records:
        assert ISO_UTC.fullmatch(record.get("ts", "")), record
        assert record.get("level") in LEVELS, record
        assert isinstance(record.get("msg"), str), record

    # Exactly one line per request, and nothing like an access log beside them.
    requests = [r for r in records if r["msg"] == "request"]
    assert len(requests) == server.responses
    assert not [line for line in output.splitlines() if "HTTP/1." in line]
    ids = [r["request_id"] for r in requests]
    assert len(ids) == len(set(ids)), "request_id is not unique"
    by_id = {r["request_id"]: r for r in requests}
    for response in generated:
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
        assert by_id[response.headers["X-Request-ID"]]["path"] == "/stats"

    for record in requests:
        for field in REQUEST_FIELDS:
            assert field in record, (field, record)
        assert isinstance(record["status"], int) and isinstance(record["latency_ms"], (int, float))
        assert record["latency_ms"] >= 0
        error = record["status"] >= 500 or record.get("result") == "invalid_signature"
        assert record["level"] == ("ERROR" if error else "INFO"), record
    for request_id, (method, path, status) in sent.items():
        record = by_id[request_id]
        assert (record["method"], record["path"], record["status"]) == (method, path, status)

    webhook_lines = [
        by_id[i] for i, (method, path, _) in sent.items() if (method, path) == ("POST", "/webhook")
    ]
    for record in webhook_lines:
        assert isinstance(record.get("dup"), bool) and isinstance(record.get("result"), str), record
    created, duplicate, *invalid_signature, validation_field, validation_json = webhook_lines
    assert created["result"] == "created" and created["dup"] is False
    assert duplicate["result"] == "duplicate" and duplicate["dup"] is True
    assert created["message_id"] == duplicate["message_id"] == valid["message_id"]
    for record in invalid_signature:
        assert (record["result"], record["dup"], record["level"]) == (
            "invalid_signature",
            False,
            "ERROR",
        )
        assert "message_id" not in record  # nothing is parsed before the signature is checked
    assert validation_field["result"] == "validation_error"
    assert validation_field["message_id"] == invalid["message_id"]  # known: the body parsed
    assert validation_json["result"] == "validation_error" and "message_id" not in validation_json

    # Gunicorn's own lines are JSON too: boot, workers, shutdown.
    gunicorn = [r["msg"] for r in records if r.get("logger", "").startswith("gunicorn")]
    for prefix in (
        "Starting gunicorn",
        "Listening at",
        "Booting worker",
        "Worker exiting",
        "Shutting down",
    ):
        assert any(msg.startswith(prefix) for msg in gunicorn), (prefix, gunicorn)
    assert sum(msg.startswith("Booting worker") for msg in gunicorn) == 4

    # Never logged: the secret, any signature, the message text.
    assert server.secret not in output
    for signature in signatures:
        assert signature not in output
        assert signature.split("=")[-1] not in output
    assert secret_text not in output
    assert "SECRET-TEXT" not in output


def test_log_level_warning_drops_info_lines_and_keeps_errors(start_server):
    server = start_server(env={"LOG_LEVEL": "WARNING"})
    assert server.post_webhook(message()).status == 200
    assert server.get("/messages").status == 200
    assert server.post_webhook(message(), signature="0" * 64).status == 401
    assert server.stop() == 0

    records = server.records()
    assert not [r for r in records if r["level"] in ("DEBUG", "INFO")], (
        "INFO lines at LOG_LEVEL=WARNING"
    )
    requests = [r for r in records if r["msg"] == "request"]
    assert len(requests) == 1
    line = requests[0]
    assert (line["level"], line["status"], line["result"]) == ("ERROR", 401, "invalid_signature")
