"""WhatsApp Cloud API: Meta's subscription handshake and its signed notifications, stored as
messages, every notification in one transaction. Payloads are shaped as in Meta's messages webhook
reference; metrics are process-global, so every check on them is on a delta."""

import json
import logging
import sqlite3
from contextlib import closing, contextmanager

import pytest
from helpers import (
    BUSINESS_NUMBER,
    PROVIDER_SETTINGS,
    SECRET,
    WHATSAPP_APP_SECRET,
    WHATSAPP_TS_ISO,
    WHATSAPP_USER,
    WHATSAPP_VERIFY_TOKEN,
    WhatsAppSender,
    assert_nothing_stored,
    message_record,
    metric,
    sample_message,
    stored_total,
    wa_body,
    wa_change,
    wa_entry,
    wa_message,
    wa_notification,
    wa_status,
    wa_text,
    whatsapp_signature,
)
from sqlalchemy.engine import make_url

from lyftr.logs import LineFormatter

MAX_BODY = 4 * 1024 * 1024
CHALLENGE = "1158201444"
BSUID = "US.13491208655302741918"
MEDIA_SHA256 = "81d3bd8a8db4868c9520ed47186e8b7c5789e61ff79f7f834be6950b808a90d3"
CONTEXT = {
    "from": BUSINESS_NUMBER,
    "id": "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
}


@pytest.fixture
def app(make_app):
    return make_app(**PROVIDER_SETTINGS)


@pytest.fixture
def wa(client):
    return WhatsAppSender(client)


def requests_total(client, result):
    return metric(client, "provider_requests_total", provider="whatsapp", result=result)


def stored_count(client):
    return metric(client, "messages_stored_total", provider="whatsapp")


def updates(client, kind):
    return metric(client, "whatsapp_updates_total", kind=kind)


def record(client, message_id):
    response = message_record(client, message_id)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def assert_json_error(response, status):
    assert response.status_code == status, response.get_data()
    assert response.mimetype == "application/json"
    return response.get_json()["detail"]


# --- the subscription handshake -------------------------------------------------------------------


def handshake(client, **params):
    query = {"hub.mode": "subscribe", "hub.verify_token": WHATSAPP_VERIFY_TOKEN}
    query.update(params)
    query["hub.challenge"] = CHALLENGE
    return client.get("/webhooks/whatsapp", query_string={k: v for k, v in query.items() if v})


def test_handshake_echoes_the_challenge_as_plain_text(client):
    before = requests_total(client, "verified")
    response = handshake(client)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data() == CHALLENGE.encode()
    assert requests_total(client, "verified") == before + 1


@pytest.mark.parametrize(
    "params",
    [
        {"hub.verify_token": "wrong-token"},
        {"hub.verify_token": WHATSAPP_VERIFY_TOKEN.upper()},
        {"hub.verify_token": WHATSAPP_VERIFY_TOKEN + "x"},
        {"hub.verify_token": WHATSAPP_VERIFY_TOKEN[:-1]},
        {"hub.verify_token": None},
        {"hub.mode": "unsubscribe"},
        {"hub.mode": None},
    ],
    ids=["wrong", "case", "longer", "prefix", "missing", "mode", "no-mode"],
)
def test_handshake_refused_without_echoing_the_challenge(client, params):
    before = requests_total(client, "forbidden")
    response = handshake(client, **params)
    assert_json_error(response, 403)
    assert CHALLENGE not in response.get_data(as_text=True)
    assert requests_total(client, "forbidden") == before + 1


@pytest.mark.parametrize("given", [WHATSAPP_VERIFY_TOKEN, ""], ids=["a-token", "empty-token"])
def test_handshake_503_when_verify_token_unset(make_app, given):
    client = make_app(**{**PROVIDER_SETTINGS, "WHATSAPP_VERIFY_TOKEN": ""}).test_client()
    before = requests_total(client, "not_configured")
    response = client.get(
        "/webhooks/whatsapp",
        query_string={"hub.mode": "subscribe", "hub.verify_token": given, "hub.challenge": "77"},
    )
    assert assert_json_error(response, 503).endswith("set WHATSAPP_VERIFY_TOKEN")
    assert "77" not in response.get_data(as_text=True)
    assert requests_total(client, "not_configured") == before + 1


# --- messages become rows -------------------------------------------------------------------------


def test_text_message_becomes_a_contract_row(client, wa):
    before = (requests_total(client, "accepted"), stored_count(client), updates(client, "message"))
    webhook_created = metric(client, "webhook_requests_total", result="created")
    message_id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
    response = wa.messages(wa_text(message_id, "Hi, is the shop open today?"))
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}

    expected = {
        "message_id": message_id,
        "from": "+" + WHATSAPP_USER,
        "to": "+" + BUSINESS_NUMBER,
        "ts": WHATSAPP_TS_ISO,
        "text": "Hi, is the shop open today?",
    }
    assert client.get("/messages").get_json()["data"] == [expected]
    stats = client.get("/stats").get_json()
    assert stats["total_messages"] == 1
    assert stats["messages_per_sender"] == [{"from": "+" + WHATSAPP_USER, "count": 1}]
    assert stats["first_message_ts"] == stats["last_message_ts"] == WHATSAPP_TS_ISO
    found = client.get("/messages", query_string={"q": "SHOP OPEN"}).get_json()
    assert [m["message_id"] for m in found["data"]] == [message_id]

    after = (requests_total(client, "accepted"), stored_count(client), updates(client, "message"))
    assert after == (before[0] + 1, before[1] + 1, before[2] + 1)
    # /webhook's own counter is the contract's and counts /webhook alone.
    assert metric(client, "webhook_requests_total", result="created") == webhook_created


@pytest.mark.parametrize(
    ("stamp", "iso"),
    [
        ("0", "1970-01-01T00:00:00Z"),
        ("1739321024", WHATSAPP_TS_ISO),
        ("4102444800", "2100-01-01T00:00:00Z"),
    ],
)
def test_unix_seconds_become_utc_timestamps(client, wa, stamp, iso):
    assert wa.messages(wa_text("wamid.ts", timestamp=stamp)).status_code == 200
    assert record(client, "wamid.ts")["ts"] == iso


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (BUSINESS_NUMBER, "+15550783881"),
        ("+1 (555) 078-3881", "+15550783881"),
        ("44 7700 900123", "+447700900123"),
    ],
)
def test_recipient_is_the_business_display_number(client, wa, number, expected):
    assert wa.messages(wa_text("wamid.to"), number=number).status_code == 200
    assert record(client, "wamid.to")["to"] == expected


MESSAGE_TYPES = [
    pytest.param("text", {"text": {"body": "Hi there"}}, "Hi there", id="text"),
    pytest.param(
        "image",
        {
            "image": {
                "caption": "Our new shoes",
                "mime_type": "image/jpeg",
                "sha256": MEDIA_SHA256,
                "id": "1003383421387256",
            }
        },
        "Our new shoes",
        id="image-caption",
    ),
    pytest.param(
        "image",
        {"image": {"mime_type": "image/jpeg", "sha256": MEDIA_SHA256, "id": "1003383421387256"}},
        None,
        id="image-no-caption",
    ),
    pytest.param(
        "video",
        {"video": {"caption": "Unboxing", "mime_type": "video/mp4", "id": "1266271201183040"}},
        "Unboxing",
        id="video-caption",
    ),
    pytest.param(
        "document",
        {
            "document": {
                "caption": "Invoice for March",
                "filename": "invoice.pdf",
                "mime_type": "application/pdf",
                "sha256": MEDIA_SHA256,
                "id": "1003383421387257",
            }
        },
        "Invoice for March",
        id="document-caption",
    ),
    pytest.param(
        "reaction",
        {"reaction": {"message_id": CONTEXT["id"], "emoji": "\U0001f44d"}},
        "\U0001f44d",
        id="reaction",
    ),
    pytest.param(
        "reaction", {"reaction": {"message_id": CONTEXT["id"]}}, None, id="reaction-removed"
    ),
    pytest.param(
        "location",
        {
            "location": {
                "address": "1 Hacker Way, Menlo Park, CA 94025",
                "latitude": 37.483307,
                "longitude": -122.148981,
                "name": "Main Office",
                "url": "https://www.meta.com",
            }
        },
        "Main Office, 1 Hacker Way, Menlo Park, CA 94025",
        id="location",
    ),
    pytest.param(
        "interactive",
        {
            "context": CONTEXT,
            "interactive": {
                "type": "button_reply",
                "button_reply": {"id": "cancel-button", "title": "Cancel"},
            },
        },
        "Cancel",
        id="button_reply",
    ),
    pytest.param(
        "interactive",
        {
            "context": CONTEXT,
            "interactive": {
                "type": "list_reply",
                "list_reply": {
                    "id": "priority_express",
                    "title": "Priority Mail Express",
                    "description": "Next Day to 2 Days",
                },
            },
        },
        "Priority Mail Express",
        id="list_reply",
    ),
    pytest.param(
        "button",
        {"context": CONTEXT, "button": {"payload": "Unsubscribe", "text": "Stop promotions"}},
        "Stop promotions",
        id="quick-reply-button",
    ),
    pytest.param(
        "sticker",
        {"sticker": {"mime_type": "image/webp", "animated": False, "id": "1233299401245218"}},
        None,
        id="sticker",
    ),
    pytest.param(
        "contacts",
        {"contacts": [{"name": {"formatted_name": "Barbara Johnson"}, "phones": []}]},
        "Barbara Johnson",
        id="contacts",
    ),
    pytest.param(
        "unsupported",
        {"errors": [{"code": 131051, "title": "Message type unknown"}]},
        None,
        id="unsupported",
    ),
]


@pytest.mark.parametrize(("kind", "content", "text"), MESSAGE_TYPES)
def test_text_of_each_message_type(client, wa, kind, content, text):
    message = wa_message("wamid.typed", kind, **content)
    assert wa.messages(message).status_code == 200
    stored = record(client, "wamid.typed")
    assert (stored["text"], stored["type"], stored["provider"]) == (text, kind, "whatsapp")
    assert stored["raw"]["message"] == message
    assert client.get("/messages").get_json()["data"][0]["text"] == text


def test_non_ascii_escaped_by_meta_is_stored_decoded(client, wa):
    text = "Olá, ¿qué tal? नमस्ते \U0001f44b"
    caption = "Ünïcödé café"
    payload = wa_notification(
        wa_change(
            [
                wa_text("wamid.u1", text),
                wa_message("wamid.u2", "image", image={"caption": caption, "id": "1"}),
            ]
        )
    )
    body = wa_body(payload)
    assert body.isascii() and b"\\ud83d\\udc4b" in body and b"\\u0928" in body
    assert wa.raw(body).status_code == 200

    assert record(client, "wamid.u1")["text"] == text
    assert record(client, "wamid.u2")["text"] == caption
    for term, expected in [("नमस्ते", "wamid.u1"), ("QUÉ TAL", "wamid.u1"), ("CAFÉ", "wamid.u2")]:
        found = client.get("/messages", query_string={"q": term}).get_json()
        assert [m["message_id"] for m in found["data"]] == [expected], term


def test_text_with_nul_is_stored_as_sent(client, wa):
    assert wa.messages(wa_text("wamid.nul", "before\x00after")).status_code == 200
    assert record(client, "wamid.nul")["text"] == "before\x00after"
    assert client.get("/messages", query_string={"q": "after"}).get_json()["total"] == 1


def test_several_entries_and_changes_in_one_post(client, wa):
    before = {kind: updates(client, kind) for kind in ("message", "status", "other")}
    stored_before = stored_count(client)
    payload = wa_notification(
        entries=[
            wa_entry(
                wa_change([wa_text("wamid.A1", "first"), wa_text("wamid.A2", "second")]),
                wa_change(statuses=[wa_status("wamid.sent1", "read")]),
            ),
            wa_entry(
                wa_change(
                    [wa_text("wamid.B1", "third", sender="447700900123")], number="15550100999"
                ),
                {
                    "field": "account_update",
                    "value": {"phone_number": "15550100999", "event": "VERIFIED_ACCOUNT"},
                },
                account="102290129340399",
            ),
        ]
    )
    assert wa(payload).status_code == 200

    rows = {m["message_id"]: m for m in client.get("/messages").get_json()["data"]}
    assert sorted(rows) == ["wamid.A1", "wamid.A2", "wamid.B1"]
    assert rows["wamid.A2"]["to"] == "+" + BUSINESS_NUMBER
    assert (rows["wamid.B1"]["from"], rows["wamid.B1"]["to"]) == ("+447700900123", "+15550100999")
    assert message_record(client, "wamid.sent1").status_code == 404
    assert stored_count(client) == stored_before + 3
    after = {kind: updates(client, kind) for kind in ("message", "status", "other")}
    assert after == {
        "message": before["message"] + 3,
        "status": before["status"] + 1,
        "other": before["other"] + 1,
    }


def test_statuses_only_are_status_events_not_messages(client, wa):
    before = (updates(client, "status"), updates(client, "message"), stored_count(client))
    accepted = requests_total(client, "status")
    statuses = [wa_status("wamid.out1", "sent"), wa_status("wamid.out1", "delivered")]
    statuses.append({**wa_status("wamid.out2", "failed"), "errors": [{"code": 131047}]})
    response = wa(wa_notification(wa_change(statuses=statuses)))
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert_nothing_stored(client)
    after = (updates(client, "status"), updates(client, "message"), stored_count(client))
    assert after == (before[0] + 3, before[1], before[2])
    assert requests_total(client, "status") == accepted + 1
    listed = client.get("/statuses").get_json()["data"]
    assert [(s["message_id"], s["status"]) for s in listed] == [
        ("wamid.out1", "sent"),
        ("wamid.out1", "delivered"),
        ("wamid.out2", "failed"),
    ]
    assert listed[2]["errors"] == [{"code": 131047}]
    assert listed[2]["raw"]["status"] == statuses[2]
    # Redelivered: nothing new; one message's and one status's filters.
    assert wa(wa_notification(wa_change(statuses=statuses))).status_code == 200
    assert len(client.get("/statuses").get_json()["data"]) == 3
    query = {"message_id": "wamid.out1", "status": "delivered"}
    (only,) = client.get("/statuses", query_string=query).get_json()["data"]
    assert only["status"] == "delivered"


@pytest.mark.parametrize("field", ["message_template_status_update", "account_alerts"])
def test_other_fields_are_acknowledged_and_not_stored(client, wa, field):
    before = updates(client, "other")
    change = {"field": field, "value": {"event": "APPROVED", "message_template_id": 1234}}
    assert wa(wa_notification(change)).status_code == 200
    assert_nothing_stored(client)
    assert updates(client, "other") == before + 1


# --- users known only by a business-scoped user ID ------------------------------------------------


@pytest.mark.parametrize(
    ("message_fields", "contact", "expected"),
    [
        ({"from_user_id": BSUID}, {"user_id": BSUID}, BSUID),
        ({}, {"user_id": BSUID}, BSUID),
        ({"from": WHATSAPP_USER, "from_user_id": BSUID}, {"user_id": BSUID}, "+" + WHATSAPP_USER),
    ],
    ids=["from_user_id", "contact-user_id", "phone-and-user-id"],
)
def test_sender_without_a_phone_number(client, wa, message_fields, contact, expected):
    message = {**wa_text("wamid.bsuid", sender=None), **message_fields}
    contacts = [{"profile": {"name": "Ana"}, **contact}]
    assert wa.messages(message, contacts=contacts).status_code == 200
    assert record(client, "wamid.bsuid")["from"] == expected
    stats = client.get("/stats").get_json()
    assert stats["messages_per_sender"] == [{"from": expected, "count": 1}]


def test_messages_filter_by_a_business_scoped_user_id(client, wa):
    message = {**wa_text("wamid.bsuid", sender=None), "from_user_id": BSUID}
    assert wa.messages(message, contacts=[{"user_id": BSUID}]).status_code == 200
    assert wa.messages(wa_text("wamid.phone")).status_code == 200
    response = client.get("/messages", query_string={"from": BSUID})
    assert response.status_code == 200
    assert [m["message_id"] for m in response.get_json()["data"]] == ["wamid.bsuid"]


def test_sender_with_neither_phone_nor_user_id_is_quarantined(client, wa):
    no_sender = wa_text("wamid.nobody", sender=None)
    response = wa.messages(wa_text("wamid.fine"), no_sender, contacts=[{"profile": {"name": "X"}}])
    assert response.status_code == 200
    assert [m["message_id"] for m in client.get("/messages").get_json()["data"]] == ["wamid.fine"]
    (rejection,) = client.get("/rejections").get_json()["data"]
    assert rejection["reason"].endswith("from: Field required: a phone number or a user ID")


# --- signature, configuration, size, validation ---------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        False,
        "",
        whatsapp_signature(b"{}"),
        whatsapp_signature(wa_body(wa_notification(wa_change([wa_text("m")]))), "other-secret"),
        "sha256=" + "0" * 64,
        "sha1=" + "0" * 40,
    ],
    ids=["missing", "empty", "other-body", "other-secret", "zeros", "sha1"],
)
def test_missing_or_wrong_signature_401(client, wa, signature):
    before = requests_total(client, "invalid_signature")
    body = wa_body(wa_notification(wa_change([wa_text("m")])))
    response = wa.raw(body, signature=signature)
    assert response.get_json() == {"detail": "invalid signature"}
    assert response.status_code == 401
    assert_nothing_stored(client)
    assert requests_total(client, "invalid_signature") == before + 1


def test_signature_made_with_the_webhook_secret_is_refused(client, wa):
    body = wa_body(wa_notification(wa_change([wa_text("m")])))
    assert wa.raw(body, signature=whatsapp_signature(body, SECRET)).status_code == 401
    assert_nothing_stored(client)


def test_signature_checked_before_parsing(client, wa):
    assert wa.raw(b"not json", signature=whatsapp_signature(b"other")).status_code == 401
    assert wa.raw(b"not json").status_code == 422


def test_previous_app_secret_accepted_during_rotation(make_app, caplog):
    settings = {
        **PROVIDER_SETTINGS,
        "WHATSAPP_APP_SECRET": "new",
        "WHATSAPP_APP_SECRET_PREVIOUS": "old",
    }
    client = make_app(**settings).test_client()
    caplog.set_level(logging.INFO, logger="lyftr.request")
    assert WhatsAppSender(client, "new").messages(wa_text("m1")).status_code == 200
    assert WhatsAppSender(client, "old").messages(wa_text("m2")).status_code == 200
    assert WhatsAppSender(client, "older").messages(wa_text("m3")).status_code == 401
    assert WhatsAppSender(client, WHATSAPP_APP_SECRET).messages(wa_text("m4")).status_code == 401
    assert [m["message_id"] for m in client.get("/messages").get_json()["data"]] == ["m1", "m2"]
    keys = [
        getattr(r, "key", None)
        for r in caplog.records
        if getattr(r, "path", "") == "/webhooks/whatsapp"
    ]
    assert keys[:2] == ["current", "previous"]


@pytest.mark.parametrize("previous", ["", "old"], ids=["unset", "only-previous-set"])
def test_app_secret_unset_503(make_app, previous):
    settings = {
        **PROVIDER_SETTINGS,
        "WHATSAPP_APP_SECRET": "",
        "WHATSAPP_APP_SECRET_PREVIOUS": previous,
    }
    client = make_app(**settings).test_client()
    before = requests_total(client, "not_configured")
    for secret in ("", "old", WHATSAPP_APP_SECRET):
        response = WhatsAppSender(client, secret).messages(wa_text("m1"))
        assert isinstance(assert_json_error(response, 503), str)
        assert "Retry-After" in response.headers
    assert_nothing_stored(client)
    assert requests_total(client, "not_configured") == before + 3


NOT_NOTIFICATIONS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"not json", id="not-json"),
    pytest.param(b'{"object": "whatsapp_business_account", "entry": [', id="truncated"),
    pytest.param(b'{"object": "\xff", "entry": []}', id="not-utf8"),
    pytest.param(b'{"object": "whatsapp_business_account", "entry": [], "x": NaN}', id="nan"),
    pytest.param(b'{"object": "w", "entry": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", id="deep"),
    pytest.param(b"[]", id="array"),
    pytest.param(b'"whatsapp_business_account"', id="string"),
    pytest.param({"entry": []}, id="object-missing"),
    pytest.param({"object": 7, "entry": []}, id="object-number"),
    pytest.param({"object": None, "entry": []}, id="object-null"),
    pytest.param({"object": "whatsapp_business_account"}, id="entry-missing"),
    pytest.param({"object": "whatsapp_business_account", "entry": {}}, id="entry-object"),
    pytest.param({"object": "whatsapp_business_account", "entry": "x"}, id="entry-string"),
    pytest.param({"object": "whatsapp_business_account", "entry": [7]}, id="entry-item"),
    pytest.param(
        {"object": "whatsapp_business_account", "entry": [{"changes": {}}]}, id="changes-object"
    ),
]


@pytest.mark.parametrize("body", NOT_NOTIFICATIONS)
def test_not_a_notification_422_nothing_stored(client, wa, body):
    before = requests_total(client, "validation_error")
    response = wa.raw(body if isinstance(body, bytes) else wa_body(body))
    detail = assert_json_error(response, 422)
    assert isinstance(detail, list) and detail
    assert all({"type", "loc", "msg", "input"} <= entry.keys() for entry in detail)
    assert all(entry["loc"][0] == "body" for entry in detail)
    assert_nothing_stored(client)
    assert requests_total(client, "validation_error") == before + 1


def _without(message, key):
    return {k: v for k, v in message.items() if k != key}


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(_without(wa_text("x"), "id"), id="id-missing"),
        pytest.param({**wa_text("x"), "id": ""}, id="id-empty"),
        pytest.param({**wa_text("x"), "id": 12}, id="id-number"),
        pytest.param(_without(wa_text("x"), "timestamp"), id="timestamp-missing"),
        pytest.param(wa_text("x", timestamp=1739321024), id="timestamp-number"),
        pytest.param(wa_text("x", timestamp="2025-02-12T00:43:44Z"), id="timestamp-iso"),
        pytest.param(wa_text("x", timestamp="-1"), id="timestamp-negative"),
        pytest.param(wa_text("x", "half an emoji \ud83d"), id="text-lone-surrogate"),
        pytest.param(wa_text("x\x00"), id="id-nul"),
        pytest.param("a message", id="not-an-object"),
    ],
)
def test_one_invalid_message_is_quarantined_the_rest_stored(client, wa, broken):
    # A retry could never succeed: the batch is acknowledged, the good messages stored, and the
    # bad one kept as a rejection with its reason and the (authentic) body.
    before = requests_total(client, "quarantined")
    response = wa.messages(wa_text("wamid.good1"), broken, wa_text("wamid.good2"))
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert [m["message_id"] for m in client.get("/messages").get_json()["data"]] == [
        "wamid.good1",
        "wamid.good2",
    ]
    assert requests_total(client, "quarantined") == before + 1
    (rejection,) = client.get("/rejections").get_json()["data"]
    assert rejection["provider"] == "whatsapp"
    assert rejection["reason"].startswith("body.entry.0.changes.0.value.messages.1")
    assert "wamid.good1" in rejection["body"]


def test_change_without_business_number_quarantines_its_messages(client, wa):
    change = wa_change([wa_text("wamid.good")])
    del change["value"]["metadata"]
    assert wa(wa_notification(change)).status_code == 200
    assert_nothing_stored(client)
    (rejection,) = client.get("/rejections").get_json()["data"]
    assert rejection["reason"] == (
        "body.entry.0.changes.0.value.metadata.display_phone_number: Field required: a phone number"
    )


def test_statuses_only_change_without_business_number_200(client, wa):
    change = wa_change([])
    del change["value"]["metadata"]
    change["value"]["statuses"] = [
        {"id": "wamid.out1", "status": "sent", "timestamp": "1749416383", "recipient_id": "1"}
    ]
    assert wa(wa_notification(change)).status_code == 200
    (status,) = client.get("/statuses").get_json()["data"]
    assert (status["message_id"], status["status"]) == ("wamid.out1", "sent")


def test_body_over_4_mib_413(client, wa):
    before = requests_total(client, "payload_too_large")
    body = wa_body(wa_notification(wa_change([wa_text("wamid.big")])))
    padded = body + b" " * (MAX_BODY + 1 - len(body))
    response = wa.raw(padded)
    assert isinstance(assert_json_error(response, 413), str)
    assert_nothing_stored(client)
    assert requests_total(client, "payload_too_large") == before + 1
    # Exactly 4 MiB is within the limit.
    assert wa.raw(padded[:-1]).status_code == 200
    assert record(client, "wamid.big")["text"] == "Hello"


def test_batch_of_1000_messages_near_4_mib_stored(client, wa):
    before = stored_count(client)
    messages = [wa_text(f"wamid.bulk{i:04d}", f"{i:04d} " + "x" * 3900) for i in range(1000)]
    body = wa_body(wa_notification(wa_change(messages)))
    assert 3.8 * 1024 * 1024 < len(body) <= MAX_BODY
    response = wa.raw(body)
    assert response.status_code == 200, response.get_json()
    assert stored_total(client) == 1000
    assert stored_count(client) == before + 1000
    assert record(client, "wamid.bulk0999")["text"].startswith("0999 xxx")


# --- one transaction, exactly once ----------------------------------------------------------------


@contextmanager
def refused_sender(database_url, sender):
    """Make the database itself refuse to insert a message from ``sender`` while inside."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        with closing(sqlite3.connect(url.database)) as connection, connection:
            connection.execute(
                "CREATE TRIGGER refuse_sender BEFORE INSERT ON messages "
                f"WHEN NEW.from_msisdn = '{sender}' "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
        try:
            yield
        finally:
            with closing(sqlite3.connect(url.database)) as connection, connection:
                connection.execute("DROP TRIGGER refuse_sender")
        return
    import psycopg

    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(
            "CREATE FUNCTION refuse_sender() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.from_msisdn = '{sender}' THEN RAISE EXCEPTION 'injected failure'; END IF; "
            "RETURN NEW; END $$"
        )
        connection.execute(
            "CREATE TRIGGER refuse_sender BEFORE INSERT ON messages "
            "FOR EACH ROW EXECUTE FUNCTION refuse_sender()"
        )
        try:
            yield
        finally:
            connection.execute("DROP TRIGGER refuse_sender ON messages")
            connection.execute("DROP FUNCTION refuse_sender()")


def test_storage_failing_part_way_stores_nothing_of_the_batch(client, wa, database_url):
    assert stored_total(client) == 0  # the schema exists before the trigger is added
    batch = [
        wa_text("wamid.t1", "one"),
        wa_text("wamid.t2", "two", sender="19990000000"),
        wa_text("wamid.t3", "three", sender="447700900123"),
    ]
    before = requests_total(client, "error") + requests_total(client, "unavailable")
    stored_before = stored_count(client)
    with refused_sender(database_url, "+19990000000"):
        response = wa.messages(*batch)
        assert response.status_code in (500, 503)
        assert response.mimetype == "application/json"
        assert "injected" not in response.get_data(as_text=True)
        assert_nothing_stored(client)
        assert client.get("/messages", query_string={"q": "one"}).get_json()["total"] == 0
        assert message_record(client, "wamid.t1").status_code == 404
    assert requests_total(client, "error") + requests_total(client, "unavailable") == before + 1
    assert stored_count(client) == stored_before

    # Meta redelivers the same batch: now all of it is stored.
    assert wa.messages(*batch).status_code == 200
    assert stored_total(client) == 3
    assert client.get("/messages", query_string={"q": "one"}).get_json()["total"] == 1
    senders = client.get("/stats").get_json()["messages_per_sender"]
    assert sum(s["count"] for s in senders) == 3


@pytest.mark.sqlite_only
def test_database_locked_503_then_redelivery_stores(make_app, tmp_path):
    client = make_app(**PROVIDER_SETTINGS, DB_BUSY_TIMEOUT_MS=200).test_client()
    wa = WhatsAppSender(client)
    assert stored_total(client) == 0
    before = requests_total(client, "unavailable")
    connection = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        response = wa.messages(wa_text("wamid.l1"), wa_text("wamid.l2"))
        assert response.get_json() == {"detail": "database unavailable"}
        assert response.status_code == 503
        assert "Retry-After" in response.headers
        connection.execute("ROLLBACK")
    finally:
        connection.close()
    assert requests_total(client, "unavailable") == before + 1
    assert_nothing_stored(client)
    assert wa.messages(wa_text("wamid.l1"), wa_text("wamid.l2")).status_code == 200
    assert stored_total(client) == 2


def test_redelivered_batch_stores_nothing_new(client, wa):
    payload = wa_notification(wa_change([wa_text("wamid.r1", "one"), wa_text("wamid.r2", "two")]))
    before = (stored_count(client), requests_total(client, "accepted"))
    assert wa(payload).status_code == 200
    listed = client.get("/messages").get_json()
    stats = client.get("/stats").get_json()
    for _ in range(2):
        response = wa(payload)
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}
    assert client.get("/messages").get_json() == listed
    assert client.get("/stats").get_json() == stats
    assert (stored_count(client), requests_total(client, "accepted")) == (
        before[0] + 2,
        before[1] + 3,
    )

    # A batch holding one known and one new message stores only the new one.
    assert (
        wa.messages(wa_text("wamid.r2", "changed"), wa_text("wamid.r3", "three")).status_code == 200
    )
    assert stored_total(client) == 3
    assert record(client, "wamid.r2")["text"] == "two"
    assert stored_count(client) == before[0] + 3


def test_repeated_message_id_in_one_batch_first_wins(client, wa):
    before = stored_count(client)
    assert wa.messages(wa_text("wamid.d", "first"), wa_text("wamid.d", "second")).status_code == 200
    assert stored_total(client) == 1
    assert record(client, "wamid.d")["text"] == "first"
    assert stored_count(client) == before + 1


def test_message_stored_through_webhook_first_wins(client, wa, send):
    assert send(message_id="wamid.shared", text="from the contract").status_code == 200
    assert wa.messages(wa_text("wamid.shared", "from meta")).status_code == 200
    stored = record(client, "wamid.shared")
    assert (stored["provider"], stored["text"]) == ("webhook", "from the contract")
    assert stored_total(client) == 1


def test_message_stored_through_whatsapp_first_wins_on_webhook(client, wa, send):
    before = metric(client, "webhook_requests_total", result="duplicate")
    assert wa.messages(wa_text("wamid.shared", "from meta")).status_code == 200
    message = sample_message(message_id="wamid.shared", text="from the contract")
    assert send(message).status_code == 200
    stored = record(client, "wamid.shared")
    assert (stored["provider"], stored["text"], stored["from"]) == (
        "whatsapp",
        "from meta",
        "+" + WHATSAPP_USER,
    )
    assert metric(client, "webhook_requests_total", result="duplicate") == before + 1


# --- logs -----------------------------------------------------------------------------------------


def test_log_line_has_ids_and_counts_never_text(client, wa, caplog):
    caplog.set_level(logging.DEBUG)
    secret_words = "my card PIN is 4417"
    payload = wa_notification(
        wa_change(
            [
                wa_text("wamid.log1", secret_words),
                wa_message("wamid.log2", "image", image={"caption": secret_words, "id": "9"}),
            ],
            statuses=[wa_status("wamid.out9", "read")],
        )
    )
    body = wa_body(payload)
    assert wa.raw(body).status_code == 200
    formatter = LineFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records if r.name == "lyftr.request"]
    line = next(line for line in lines if line["path"] == "/webhooks/whatsapp")
    assert (line["provider"], line["result"], line["status"]) == ("whatsapp", "accepted", 200)
    assert line["message_ids"] == ["wamid.log1", "wamid.log2"]
    assert line["status_ids"] == ["wamid.out9"]
    assert (line["messages"], line["stored"], line["statuses"]) == (2, 2, 1)

    everything = "\n".join(formatter.format(r) for r in caplog.records)
    assert "4417" not in everything and "card PIN" not in everything
    assert whatsapp_signature(body)[7:] not in everything
    assert WHATSAPP_APP_SECRET not in everything
