"""The providers' endpoints on the real Gunicorn server: one WhatsApp batch delivered to several
workers at once is stored once, with the metrics of every worker summed; Twilio's signed URL is the
public one; Meta's handshake and the 4 MiB limit hold over real HTTP (chunked bodies included)."""

import http.client
import json
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
from helpers import (
    PUBLIC_BASE_URL,
    TWILIO_AUTH_TOKEN,
    WHATSAPP_APP_SECRET,
    WHATSAPP_VERIFY_TOKEN,
    twilio_form,
    wa_body,
    wa_change,
    wa_notification,
    wa_status,
    wa_text,
    whatsapp_signature,
)
from twilio.request_validator import RequestValidator

from .server import HOST, parse_metrics, value

pytestmark = pytest.mark.e2e

PROVIDER_ENV = {
    "WHATSAPP_APP_SECRET": WHATSAPP_APP_SECRET,
    "WHATSAPP_VERIFY_TOKEN": WHATSAPP_VERIFY_TOKEN,
    "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
}
ROUNDS = 6
BATCH = 100
MAX_BODY = 4 * 1024 * 1024


def batch_body(run, round_number):
    messages = [
        wa_text(
            f"wamid.{run}.{round_number}.{i:03d}",
            f"round {round_number} message {i} — ünïcode",
            sender=f"1650555{i % 7:04d}",
        )
        for i in range(BATCH)
    ]
    statuses = [wa_status(f"wamid.out.{run}.{round_number}", "read")]
    return wa_body(wa_notification(wa_change(messages, statuses)))


def deliver_together(ports, body, copies):
    """POST ``body`` ``copies`` times at once, spread over ``ports``, each on its own connection,
    the requests sent together once every connection is open."""
    barrier = threading.Barrier(copies)
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": whatsapp_signature(body)}

    def deliver(i):
        connection = http.client.HTTPConnection(HOST, ports[i % len(ports)], timeout=60)
        try:
            connection.connect()
            barrier.wait(timeout=30)
            connection.request("POST", "/webhooks/whatsapp", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=copies) as pool:
        return list(pool.map(deliver, range(copies)))


def warm_up(*servers):
    """Apply the schema before the deliveries race: a first write that waits for another process's
    migrations past the busy timeout is a (legitimate) 503, which is not what is tested here."""
    for server in servers:
        for _ in range(server.workers):
            assert server.get_json("/messages")["total"] == 0


def check_stored_once(server, run):
    rows = server.all_messages()
    assert len(rows) == ROUNDS * BATCH
    expected = {f"wamid.{run}.{r}.{i:03d}" for r in range(ROUNDS) for i in range(BATCH)}
    assert {row["message_id"] for row in rows} == expected
    assert all(row["text"].endswith("— ünïcode") for row in rows)
    stats = server.get_json("/stats")
    assert stats["total_messages"] == ROUNDS * BATCH
    assert sum(sender["count"] for sender in stats["messages_per_sender"]) == ROUNDS * BATCH


def test_batch_delivered_to_workers_at_once_is_stored_once(start_server):
    server = start_server(workers=2, env=PROVIDER_ENV)
    warm_up(server)
    run = uuid.uuid4().hex[:8]
    copies = 4
    for round_number in range(ROUNDS):
        results = deliver_together([server.port], batch_body(run, round_number), copies)
        failed = [r for r in server.request_records() if r["status"] >= 500]
        assert Counter(status for status, _ in results) == {200: copies}, (results, failed)
        assert all(json.loads(reply) == {"status": "ok"} for _, reply in results)

    check_stored_once(server, run)
    # Whichever worker answers the scrape, it shows the sums over both workers.
    for _ in range(4):
        samples = parse_metrics(server.metrics())
        assert value(samples, "messages_stored_total", provider="whatsapp") == ROUNDS * BATCH
        assert (
            value(samples, "provider_requests_total", provider="whatsapp", result="accepted")
            == ROUNDS * copies
        )
        assert value(samples, "whatsapp_updates_total", kind="message") == ROUNDS * copies * BATCH
        assert value(samples, "whatsapp_updates_total", kind="status") == ROUNDS * copies
        for result in ("error", "unavailable", "validation_error", "invalid_signature"):
            assert (
                value(samples, "provider_requests_total", provider="whatsapp", result=result) == 0
            )
        assert value(samples, "webhook_requests_total", result="created") == 0

    output = server.output()
    assert "traceback" not in output.lower()
    assert "— ünïcode" not in output and "message 7" not in output


def test_batch_delivered_to_two_servers_on_one_database_is_stored_once(start_server):
    # Two Gunicorn servers of one worker each: the deliveries certainly run in two processes.
    servers = [start_server(workers=1, env=PROVIDER_ENV) for _ in range(2)]
    warm_up(*servers)
    run = uuid.uuid4().hex[:8]
    for round_number in range(ROUNDS):
        results = deliver_together([s.port for s in servers], batch_body(run, round_number), 2)
        failed = [r for s in servers for r in s.request_records() if r["status"] >= 500]
        assert [status for status, _ in results] == [200, 200], (results, failed)

    for server in servers:
        check_stored_once(server, run)
    samples = [parse_metrics(server.metrics()) for server in servers]
    stored = [value(s, "messages_stored_total", provider="whatsapp") for s in samples]
    accepted = [
        value(s, "provider_requests_total", provider="whatsapp", result="accepted") for s in samples
    ]
    # Each server counts what it stored: together, every message exactly once.
    assert sum(stored) == ROUNDS * BATCH
    assert accepted == [ROUNDS, ROUNDS]


def test_handshake_over_http(start_server):
    server = start_server(workers=1, env=PROVIDER_ENV)
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": WHATSAPP_VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = server.get("/webhooks/whatsapp?" + urlencode(query))
    assert response.status == 200
    assert response.headers["Content-Type"].split(";")[0] == "text/plain"
    assert response.body == b"1158201444"
    refused = server.get("/webhooks/whatsapp?" + urlencode({**query, "hub.verify_token": "no"}))
    assert refused.status == 403 and refused.is_json()
    assert b"1158201444" not in refused.body


def test_twilio_signed_for_the_public_url_over_http(start_server):
    server = start_server(workers=1, env=PROVIDER_ENV)
    form = twilio_form(Body="Hola — ¿qué tal?", From="whatsapp:+5215512345678")
    path = "/webhooks/twilio?tenant=acme"
    validator = RequestValidator(TWILIO_AUTH_TOKEN)
    body = urlencode(form).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    seen_url = f"http://{HOST}:{server.port}{path}"
    wrong = server.request(
        "POST",
        path,
        body=body,
        headers={**headers, "X-Twilio-Signature": validator.compute_signature(seen_url, form)},
    )
    assert wrong.status == 401 and wrong.is_json()

    signature = validator.compute_signature(PUBLIC_BASE_URL + path, form)
    response = server.request(
        "POST", path, body=body, headers={**headers, "X-Twilio-Signature": signature}
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/xml"
    assert response.body == b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    rows = server.all_messages()
    assert [(r["from"], r["text"]) for r in rows] == [("+5215512345678", "Hola — ¿qué tal?")]


def chunks(body, size=64 * 1024):
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_4_mib_limit_over_http(start_server, chunked):
    server = start_server(workers=1, env=PROVIDER_ENV)
    body = wa_body(wa_notification(wa_change([wa_text("wamid.big", "big")])))
    over = body + b" " * (MAX_BODY + 1 - len(body))
    at_limit = over[:-1]

    def post(payload):
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": whatsapp_signature(payload),
        }
        connection = http.client.HTTPConnection(HOST, server.port, timeout=60)
        try:
            if chunked:
                connection.request(
                    "POST",
                    "/webhooks/whatsapp",
                    body=chunks(payload),
                    headers=headers,
                    encode_chunked=True,
                )
            else:
                connection.request("POST", "/webhooks/whatsapp", body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    status, reply = post(over)
    assert status == 413
    assert isinstance(json.loads(reply)["detail"], str)
    assert server.get_json("/messages")["total"] == 0
    status, reply = post(at_limit)
    assert status == 200, reply
    assert [row["message_id"] for row in server.all_messages()] == ["wamid.big"]


def test_senders_own_artefacts_over_http(start_server):
    """pywa's recorded text message and a revoke of it, a Twilio status callback and a default Svix
    sender's envelope, through the real server: the record, the revoke applied (unfindable by q=),
    the status event, the envelope's message, and a forged delivery kept as a rejection."""
    from pathlib import Path

    from helpers import STANDARD_WEBHOOKS_SECRET
    from svix.webhooks import Webhook

    server = start_server(
        workers=2, env={**PROVIDER_ENV, "STANDARD_WEBHOOKS_SECRET": STANDARD_WEBHOOKS_SECRET}
    )
    pywa = Path(__file__).parents[1] / "data" / "pywa" / "message.json"
    text = json.loads(pywa.read_text(encoding="utf-8"))["text"]
    revoke = json.loads(json.dumps(text))
    revoke_value = revoke["entry"][0]["changes"][0]["value"]
    revoke_value["messages"] = [
        {
            "from": "972987654321",
            "id": "wamid.revoke",
            "timestamp": "1697043300",
            "type": "revoke",
            "revoke": {"original_message_id": "wamid.xyzxyz"},
        }
    ]

    def whatsapp(payload):
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": whatsapp_signature(body),
        }
        return server.request("POST", "/webhooks/whatsapp", body=body, headers=headers)

    assert whatsapp(text).status == 200
    record = server.get_json("/messages/wamid.xyzxyz")
    assert (record["text"], record["sender_name"]) == ("Body Text", "Test Name")
    assert server.get_json("/messages?q=body+text")["total"] == 1
    assert whatsapp(revoke).status == 200
    assert server.get_json("/messages/wamid.xyzxyz")["revoked_at"] == "2023-10-11T16:55:00Z"
    assert server.get_json("/messages?q=body+text")["total"] == 0

    form = {"MessageSid": "SMout", "From": "+14155550199", "To": "+14155550100"}
    form["MessageStatus"] = "delivered"
    signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(
        PUBLIC_BASE_URL + "/webhooks/twilio", form
    )
    response = server.request(
        "POST",
        "/webhooks/twilio",
        body=urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    assert response.status == 200
    (status,) = server.get_json("/statuses?message_id=SMout")["data"]
    assert (status["status"], status["provider"]) == ("delivered", "twilio")

    envelope = {
        "type": "message.received",
        "timestamp": "2025-01-15T10:00:00Z",
        "data": {"from": "+919876543210", "to": "+14155550100", "text": "via svix"},
    }
    body = json.dumps(envelope)
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "svix-id": "msg_e2e",
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": Webhook(STANDARD_WEBHOOKS_SECRET).sign("msg_e2e", now, body),
    }
    assert server.request("POST", "/webhook", body=body.encode(), headers=headers).status == 200
    assert server.get_json("/messages/msg_e2e")["text"] == "via svix"
    forged = server.request(
        "POST", "/webhook", body=body.encode(), headers={**headers, "svix-id": "x"}
    )
    assert forged.status == 401
    (rejection,) = server.get_json("/rejections")["data"]
    assert (rejection["provider"], rejection["reason"], rejection["body"]) == (
        "webhook",
        "invalid signature",
        None,
    )
