"""Standard Webhooks as Svix and the spec send it, on POST /webhook: Svix's default svix-* headers
(signed by the svix package), the spec's envelope with the message in data and the webhook-id as
its id, v1a signatures refused with a reason, every refusal kept for GET /rejections; the
contract's own X-Signature deliveries are untouched."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from helpers import (
    PROVIDER_SETTINGS,
    STANDARD_WEBHOOKS_SECRET,
    Sender,
    message_record,
    sample_message,
    standard_webhooks_headers,
)
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

SVIX_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


@pytest.fixture
def app(make_app):
    return make_app(**PROVIDER_SETTINGS)


def svix_headers(body, msg_id=SVIX_ID, at=None):
    """What a default Svix sender puts on a delivery: svix-id, svix-timestamp, svix-signature."""
    at = at or datetime.now(UTC)
    signature = SvixWebhook(STANDARD_WEBHOOKS_SECRET).sign(msg_id, at, body.decode("utf-8"))
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(at.timestamp())),
        "svix-signature": signature,
    }


def post(client, body, headers):
    return client.post("/webhook", data=body, headers=headers)


def envelope(**data):
    return {"type": "message.received", "timestamp": "2025-01-15T10:00:00Z", "data": data}


def contract_data(**overrides):
    message = sample_message(**overrides)
    del message["message_id"]
    return message


def test_default_svix_sender_is_accepted(client):
    body = json.dumps(sample_message()).encode()
    headers = svix_headers(body)
    SvixWebhook(STANDARD_WEBHOOKS_SECRET).verify(body, headers)  # raises if it does not verify
    response = post(client, body, headers)
    assert response.status_code == 200
    assert client.get("/messages").get_json()["data"] == [sample_message()]


def test_envelope_with_the_webhook_id_as_message_id(client):
    body = json.dumps(envelope(**contract_data(text="in an envelope"))).encode()
    assert post(client, body, svix_headers(body)).status_code == 200
    record = message_record(client, SVIX_ID).get_json()
    assert (record["text"], record["from"], record["ts"]) == (
        "in an envelope",
        "+919876543210",
        "2025-01-15T10:00:00Z",
    )
    assert record["raw"] == json.loads(body)
    # The same webhook-id redelivered (re-signed later, as a retry is): a duplicate.
    again = json.dumps(envelope(**contract_data(text="changed"))).encode()
    assert post(client, again, standard_webhooks_headers(again, msg_id=SVIX_ID)).status_code == 200
    assert client.get("/messages").get_json()["total"] == 1
    assert message_record(client, SVIX_ID).get_json()["text"] == "in an envelope"


def test_envelope_with_its_own_message_id(client):
    data = {**contract_data(ts="2025-02-01T00:00:00Z"), "message_id": "m-data"}
    body = json.dumps(envelope(**data)).encode()
    headers = standard_webhooks_headers(body)
    assert StandardWebhook(STANDARD_WEBHOOKS_SECRET).verify(body, headers) == json.loads(body)
    assert post(client, body, headers).status_code == 200
    assert message_record(client, "m-data").get_json()["ts"] == "2025-02-01T00:00:00Z"


def test_invalid_envelope_data_is_a_422_kept_as_a_rejection(client):
    body = json.dumps(envelope(**contract_data(**{"from": "nobody"}))).encode()
    response = post(client, body, svix_headers(body))
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"] == ["body", "from"]
    (rejection,) = client.get("/rejections").get_json()["data"]
    assert rejection["reason"].startswith("body.from: ")
    assert rejection["body"] == body.decode()  # authentic: kept


def test_v1a_signature_refused_with_a_reason(client):
    body = json.dumps(sample_message()).encode()
    headers = {
        "webhook-id": SVIX_ID,
        "webhook-timestamp": str(int(datetime.now(UTC).timestamp())),
        "webhook-signature": "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZ"
        "dpXwVLPo3mNl8EM+m7TBAg==",
    }
    response = post(client, body, headers)
    assert response.status_code == 401
    assert response.get_json() == {"detail": "invalid signature"}  # the contract's answer
    (rejection,) = client.get("/rejections").get_json()["data"]
    assert "v1a" in rejection["reason"] and "not accepted" in rejection["reason"]
    assert rejection["body"] is None


def test_stale_timestamp_is_named(client):
    body = json.dumps(sample_message()).encode()
    headers = svix_headers(body, at=datetime.now(UTC) - timedelta(hours=1))
    assert post(client, body, headers).status_code == 401
    (rejection,) = client.get("/rejections").get_json()["data"]
    assert rejection["reason"] == "stale timestamp"


def test_contract_refusals_are_kept_and_answers_unchanged(client):
    send = Sender(client)
    response = send.raw(json.dumps(sample_message()), signature="0" * 64)
    assert (response.status_code, response.get_json()) == (401, {"detail": "invalid signature"})
    response = send(sample_message(ts="2025-02-30T00:00:00Z"))
    assert response.status_code == 422
    newest, oldest = client.get("/rejections").get_json()["data"]
    assert (oldest["provider"], oldest["reason"], oldest["body"]) == (
        "webhook",
        "invalid signature",
        None,
    )
    assert newest["reason"].startswith("body.ts: ")
    assert json.loads(newest["body"])["ts"] == "2025-02-30T00:00:00Z"
    only_webhook = client.get("/rejections", query_string={"provider": "twilio"})
    assert only_webhook.get_json()["data"] == []


def test_rejections_are_bounded_to_the_newest(make_app):
    client = make_app(**PROVIDER_SETTINGS, REJECTIONS_KEEP=3).test_client()
    send = Sender(client)
    for i in range(5):
        body = json.dumps(sample_message(message_id=f"m{i}"))
        assert send.raw(body, signature="0" * 64).status_code == 401
    rejections = client.get("/rejections").get_json()["data"]
    assert [r["id"] for r in rejections] == [5, 4, 3]
    page = client.get("/rejections", query_string={"limit": 2}).get_json()
    assert [r["id"] for r in page["data"]] == [5, 4]
    rest = client.get("/rejections", query_string={"cursor": page["next_cursor"]}).get_json()
    assert ([r["id"] for r in rest["data"]], rest["next_cursor"]) == ([3], None)
