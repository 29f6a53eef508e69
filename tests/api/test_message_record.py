"""GET /messages/<message_id>: one message's full record, where it came from and what the provider
sent, under the same token rule as /messages; /messages itself keeps the contract's five fields."""

import time
from datetime import UTC, datetime

import pytest
from helpers import (
    PROVIDER_SETTINGS,
    Sender,
    TwilioSender,
    WhatsAppSender,
    message_record,
    sample_message,
    twilio_form,
    wa_message,
    wa_text,
)

CONTRACT_FIELDS = ["message_id", "from", "to", "ts", "text"]
RECORD_FIELDS = [
    *CONTRACT_FIELDS,
    *("seq", "provider", "type", "received_at", "raw", "channel", "sender_name", "media"),
    *("location", "reply_to", "reactions", "edited_at", "revoked_at"),
]
TOKEN = "dashboard-token"


@pytest.fixture
def app(make_app):
    return make_app(**PROVIDER_SETTINGS)


def received_at(record):
    value = record["received_at"]
    assert isinstance(value, str) and value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_webhook_message_record(client, send):
    message = sample_message(ts="2025-01-15T10:00:00.120Z", text="Hello")
    start = datetime.now(UTC)
    assert send(message).status_code == 200
    end = datetime.now(UTC)
    response = message_record(client, "m1")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    record = response.get_json()
    assert list(record) == RECORD_FIELDS
    assert {k: record[k] for k in CONTRACT_FIELDS} == message
    assert (record["provider"], record["type"], record["raw"]) == ("webhook", "text", None)
    assert record["channel"] == "webhook"
    assert [record[k] for k in RECORD_FIELDS[-7:]] == [None, None, None, None, [], None, None]
    assert start <= received_at(record) <= end


def test_whatsapp_record_keeps_the_message_object_exactly(client):
    message = wa_message(
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
        "order",
        context={"from": "15550783881", "id": "wamid.ctx"},
        order={
            "catalog_id": "194836987003835",
            "text": "Two, please — ¡gracias!",
            "product_items": [
                {"product_retailer_id": "di9ozbzfi4", "quantity": 2, "item_price": 30.5},
            ],
        },
        referral={
            "source_type": "ad",
            "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0",
        },
        identity={"acknowledged": True, "created_timestamp": 1602532300000, "hash": "Sjvjlx8G6Z0="},
    )
    start = datetime.now(UTC)
    assert WhatsAppSender(client).messages(message).status_code == 200
    record = message_record(client, message["id"]).get_json()
    assert list(record) == RECORD_FIELDS
    assert (record["provider"], record["type"]) == ("whatsapp", "order")
    assert record["text"] == "Two, please — ¡gracias!"
    assert record["reply_to"] == "wamid.ctx"
    # Nothing is lost: the object as Meta sent it, in its order, with what the change said of it.
    assert record["raw"]["message"] == message
    assert list(record["raw"]["message"]) == list(message)
    assert set(record["raw"]) == {"message", "contact", "metadata", "entry_id"}
    assert start <= received_at(record)


def test_whatsapp_record_of_a_text_message(client):
    message = wa_text("wamid.text", "Olá \U0001f600")
    assert WhatsAppSender(client).messages(message).status_code == 200
    record = message_record(client, "wamid.text").get_json()
    assert record["text"] == "Olá \U0001f600"
    assert (record["type"], record["raw"]["message"]) == ("text", message)


def test_twilio_record_keeps_the_form_fields_exactly(client):
    form = twilio_form(Body="Bonjour à tous", From="whatsapp:+33612345678", ProfileName="Zoë")
    start = datetime.now(UTC)
    assert TwilioSender(client)(form).status_code == 200
    end = datetime.now(UTC)
    record = message_record(client, form["MessageSid"]).get_json()
    assert list(record) == RECORD_FIELDS
    assert (record["provider"], record["type"]) == ("twilio", "text")
    assert (record["from"], record["text"]) == ("+33612345678", "Bonjour à tous")
    assert record["raw"] == form
    assert start <= received_at(record) <= end


def test_redelivery_keeps_the_first_record(client, send):
    assert send(text="first").status_code == 200
    first = message_record(client, "m1").get_json()
    time.sleep(0.01)
    assert send(text="second").status_code == 200
    assert WhatsAppSender(client).messages(wa_text("m1", "third")).status_code == 200
    assert message_record(client, "m1").get_json() == first


@pytest.mark.parametrize(
    "message_id",
    [
        "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
        "a/b/c",
        "a+b c",
        "100%?#&",
        "ünï-çødé-\U0001f600",
        "x" * 256,
    ],
    ids=["wamid", "slashes", "plus-space", "reserved", "unicode", "longest"],
)
def test_any_message_id_can_be_looked_up(client, send, message_id):
    assert send(message_id=message_id).status_code == 200
    response = message_record(client, message_id)
    assert response.status_code == 200
    assert response.get_json()["message_id"] == message_id


@pytest.mark.parametrize(
    "path", ["/messages/nope", "/messages/m", "/messages/m1x", "/messages/%00"]
)
def test_unknown_message_404_json(client, send, path):
    assert send().status_code == 200
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert isinstance(response.get_json()["detail"], str)


def test_token_rule_same_as_messages(make_app):
    client = make_app(**PROVIDER_SETTINGS, API_TOKEN=TOKEN).test_client()
    assert Sender(client)().status_code == 200
    for path in ("/messages", "/messages/m1", "/messages/unknown"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = client.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.get_json() == {"detail": "missing or invalid bearer token"}
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="lyftr"'
    authorized = {"Authorization": f"Bearer {TOKEN}"}
    assert message_record(client, "m1", headers=authorized).status_code == 200
    assert message_record(client, "unknown", headers=authorized).status_code == 404


def test_messages_items_keep_the_five_contract_fields(client, send):
    assert send().status_code == 200
    assert WhatsAppSender(client).messages(wa_text("wamid.w", "Hello too")).status_code == 200
    assert TwilioSender(client)(Body="Hello three").status_code == 200
    for query in ({}, {"q": "hello"}, {"limit": 1}, {"from": "+919876543210"}):
        page = client.get("/messages", query_string=query).get_json()
        assert page["data"], query
        assert all(list(item) == CONTRACT_FIELDS for item in page["data"]), query
    assert client.get("/messages").get_json()["total"] == 3
