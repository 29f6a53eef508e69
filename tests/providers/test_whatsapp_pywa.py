"""Meta's own update payloads, as pywa records them (tests/data/pywa), signed as Meta signs them:
every message kind ends in a normalized record whose fields are asserted; statuses become status
events; edits, revokes and reactions act on the message they name; a bad message never poisons a
batch."""

import copy
import json
from pathlib import Path

import pytest
from helpers import PROVIDER_SETTINGS, WhatsAppSender, message_record

DATA = Path(__file__).parents[1] / "data" / "pywa"
TOKEN = "reader-token"


def load(name):
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def value_of(payload):
    return payload["entry"][0]["changes"][0]["value"]


def message_of(payload):
    return value_of(payload)["messages"][0]


@pytest.fixture
def app(make_app):
    return make_app(**PROVIDER_SETTINGS)


@pytest.fixture
def wa(client):
    return WhatsAppSender(client)


def post(wa, payload):
    """Posts the payload's exact bytes, signed over them (X-Hub-Signature-256)."""
    response = wa.raw(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "ok"}


MEDIA = {"mime_type": "image/jpeg", "sha256": "4654+8g=", "id": "65463453"}
FACEBOOK_HQ = {
    "latitude": 37.4611978,
    "longitude": -122.2164385,
    "name": "Facebook HQ",
    "address": "1 Hacker Way, Menlo Park, CA 94025",
}
# (file, case): the record's text, type, reply_to and, when there are any, media and location.
EXPECTED = {
    ("message", "text"): ("Body Text", "text", None, {}),
    ("message", "image"): (None, "image", None, {"media": [MEDIA]}),
    ("message", "media_with_url"): (None, "image", None, {"media": [{**MEDIA, "url": ...}]}),
    ("message", "video"): ("caption", "video", None, {"caption": "caption"}),
    ("message", "document"): ("caption", "document", None, {"filename": "filename.pdf"}),
    ("message", "audio"): (None, "audio", None, {"mime_type": "audio/ogg; codecs=opus"}),
    ("message", "voice"): (None, "audio", None, {"mime_type": "audio/ogg; codecs=opus"}),
    ("message", "static_sticker"): (None, "sticker", None, {"mime_type": "image/webp"}),
    ("message", "animated_sticker"): (None, "sticker", None, {"mime_type": "image/webp"}),
    ("message", "reaction"): ("\U0001f62e", "reaction", None, {}),
    ("message", "unreaction_empty"): (None, "reaction", None, {}),
    ("message", "unreaction_no_emoji"): (None, "reaction", None, {}),
    ("message", "current_location"): (
        None,
        "location",
        None,
        {"location": {"latitude": 12.25089, "longitude": 43.90539, "name": None, "address": None}},
    ),
    ("message", "chosen_location"): (
        "Facebook HQ, 1 Hacker Way, Menlo Park, CA 94025",
        "location",
        None,
        {"location": FACEBOOK_HQ},
    ),
    ("message", "contacts"): ("Chandler Bing, Monica, Rachel Green", "contacts", None, {}),
    ("message", "order"): ("3 × HAMBURGER, 2 × FRENCH_FRIES, 2 × SODA", "order", None, {}),
    ("message", "unsupported"): (None, "unsupported", None, {}),
    ("message", "unsupported_with_type"): (None, "unsupported", None, {}),
    ("message", "reply"): ("replied text", "text", "wamid.xyzxyz==", {}),
    ("message", "forwarded"): ("forwarded text", "text", None, {}),
    ("message", "forwarded_many_times"): ("text forwarded many times", "text", None, {}),
    ("message", "interactive_message_with_err"): (None, "interactive", "wamid.gvwegfretge==", {}),
    ("message", "referral"): ("BODY", "text", None, {}),
    ("callback_button", "button"): ("title", "interactive", "wamid.xyzxyz", {}),
    ("callback_button", "quick_reply"): ("title", "button", "wamid.xyzxyz==", {}),
    ("callback_button", "quick_reply_without_context"): ("title", "button", None, {}),
    ("callback_selection", "callback"): ("title", "interactive", "wamid.xyzxyz", {}),
    ("callback_selection", "description"): ("title", "interactive", "wamid.xyzxyz", {}),
    ("flow_completion", "completion"): ("Sent", "interactive", "wamid.gvwegfretge==", {}),
    ("flow_completion", "without_flow_token"): ("Sent", "interactive", "wamid.gvwegfretge==", {}),
    ("system", "phone_number_change"): (
        "User A changed from 972987654321 to 972912345678",
        "system",
        None,
        {},
    ),
    ("system", "identity_change"): ("User identity changed", "system", None, {}),
    # A reply to a call permission request: no words (its response is in raw).
    ("call_permission_update", "accept"): (None, "interactive", "wamid.y==", {}),
    ("call_permission_update", "reject"): (None, "interactive", "wamid.y==", {}),
}
# pywa's updates of fields other than "messages": acknowledged, not messages.
OTHER_FIELDS = (
    "outgoing_message",
    "user_marketing_preferences",
    "account_update",
    "template_status_update",
    "template_category_update",
    "template_quality_update",
    "template_components_update",
    "call_connect",
    "call_status",
    "call_terminate",
)


def test_every_kind_in_pywas_data_is_asserted():
    files = (
        "message",
        "callback_button",
        "callback_selection",
        "flow_completion",
        "system",
        "call_permission_update",
    )
    assert {(f, case) for f in files for case in load(f)} == set(EXPECTED)


@pytest.mark.parametrize(("file", "case"), sorted(EXPECTED))
def test_record_of_each_pywa_message_kind(client, wa, file, case):
    payload = load(file)[case]
    message, value = message_of(payload), value_of(payload)
    post(wa, payload)
    record = message_record(client, message["id"]).get_json()
    text, kind, reply_to, extra = EXPECTED[file, case]
    assert (record["text"], record["type"], record["reply_to"]) == (text, kind, reply_to)
    assert (record["provider"], record["channel"]) == ("whatsapp", "whatsapp")
    assert record["from"] == "+" + message["from"]
    assert record["to"] == "+" + value["metadata"]["display_phone_number"]
    contacts = value.get("contacts")
    assert record["sender_name"] == (contacts[0]["profile"]["name"] if contacts else None)
    # raw: the message with everything its change said of it, nothing lost.
    assert record["raw"]["message"] == message
    assert record["raw"]["metadata"] == value["metadata"]
    assert record["raw"]["entry_id"] == payload["entry"][0]["id"]
    assert record["raw"].get("contact") == (contacts[0] if contacts else None)
    assert record["raw"].get("errors") == value.get("errors")
    if "media" in extra:
        expected = extra["media"]
        if expected[0].get("url") is ...:
            expected = [{**expected[0], "url": message[kind]["url"]}]
        assert record["media"] == expected
    elif kind in ("image", "video", "document", "audio", "sticker"):
        (item,) = record["media"]
        assert item["id"] == message[kind]["id"]
        assert {k: item[k] for k in extra} == extra
    else:
        assert record["media"] is None
    assert record["location"] == extra.get("location")
    assert (record["reactions"], record["edited_at"], record["revoked_at"]) == ([], None, None)
    # What a person reads is what search finds.
    if text:
        found = client.get("/messages", query_string={"q": text}).get_json()["data"]
        assert [m["message_id"] for m in found] == [message["id"]]


def conversation():
    """pywa's text message, and its reaction, un-reaction, edit and revoke of that message (the
    fixtures reuse one id and use placeholders, so each gets its own id and a real number)."""
    text = load("message")["text"]
    target = message_of(text)["id"]
    events = {}
    for name, source, kind in (
        ("reaction", load("message")["reaction"], "reaction"),
        ("unreaction", load("message")["unreaction_empty"], "reaction"),
        ("edit", load("edited_message")["image"], "edit"),
        ("revoke", load("deleted_message")["revoke"], "revoke"),
    ):
        payload = copy.deepcopy(source)
        value = value_of(payload)
        value["metadata"]["display_phone_number"] = "972123456789"
        message = value["messages"][0]
        message["id"] = f"wamid.{name}"
        message["from"] = "972987654321"
        if kind == "reaction":
            message["reaction"]["message_id"] = target
        else:
            message[kind]["original_message_id"] = target
        events[name] = payload
    return text, target, events


def test_reaction_then_unreaction_on_the_target(client, wa):
    text, target, events = conversation()
    post(wa, text)
    post(wa, events["reaction"])
    record = message_record(client, target).get_json()
    ts = message_record(client, "wamid.reaction").get_json()["ts"]
    assert record["reactions"] == [{"from": "+972987654321", "emoji": "\U0001f62e", "ts": ts}]
    post(wa, events["unreaction"])
    assert message_record(client, target).get_json()["reactions"] == []
    # Each event is also delivered in the feed.
    feed = client.get("/feed").get_json()["data"]
    assert [item["message_id"] for item in feed] == [target, "wamid.reaction", "wamid.unreaction"]


def test_edit_replaces_text_and_search(client, wa):
    text, target, events = conversation()
    post(wa, text)
    post(wa, events["edit"])
    record = message_record(client, target).get_json()
    assert record["text"] == "Updated image caption"
    assert record["edited_at"] == message_record(client, "wamid.edit").get_json()["ts"]
    assert record["media"][0]["url"] == "https://media.example.com/updated-image.jpg"
    search = {
        q: client.get("/messages", query_string={"q": q}).get_json()["data"]
        for q in ("Body Text", "updated image")
    }
    assert search["Body Text"] == []
    assert [m["message_id"] for m in search["updated image"]] == [target]


def test_revoke_removes_the_text_from_storage_and_search(client, wa):
    text, target, events = conversation()
    post(wa, text)
    assert client.get("/messages", query_string={"q": "body text"}).get_json()["total"] == 1
    post(wa, events["revoke"])
    record = message_record(client, target).get_json()
    assert (record["text"], record["raw"], record["media"]) == (None, None, None)
    assert record["revoked_at"] == message_record(client, "wamid.revoke").get_json()["ts"]
    assert client.get("/messages", query_string={"q": "body text"}).get_json()["total"] == 0
    # The record stays: its id still deduplicates a redelivery, which restores nothing.
    post(wa, text)
    assert message_record(client, target).get_json()["text"] is None
    # A late edit or reaction does not bring it back.
    post(wa, events["edit"])
    post(wa, events["reaction"])
    record = message_record(client, target).get_json()
    assert (record["text"], record["reactions"]) == (None, [])


def test_events_before_their_target_wait_for_it(client, wa):
    text, target, events = conversation()
    post(wa, events["reaction"])
    post(wa, events["edit"])
    assert message_record(client, target).status_code == 404
    post(wa, text)
    record = message_record(client, target).get_json()
    assert record["text"] == "Updated image caption"
    assert [r["emoji"] for r in record["reactions"]] == ["\U0001f62e"]
    post(wa, events["revoke"])
    assert client.get("/messages", query_string={"q": "caption"}).get_json()["total"] == 0


def test_pywa_revoke_with_placeholders_is_quarantined_not_refused(client, wa):
    # pywa's fixture has no business number (a placeholder): unreadable, kept as a rejection.
    post(wa, load("deleted_message")["revoke"])
    (rejection,) = client.get("/rejections").get_json()["data"]
    assert rejection["reason"].endswith("display_phone_number: Field required: a phone number")
    assert rejection["body"] is not None


@pytest.mark.parametrize("case", sorted(load("message_status")))
def test_pywa_statuses_are_status_events(client, wa, case):
    payload = load("message_status")[case]
    (status,) = value_of(payload)["statuses"]
    post(wa, payload)
    post(wa, payload)  # redelivered: one event
    (event,) = client.get("/statuses").get_json()["data"]
    assert (event["message_id"], event["status"]) == (status["id"], status["status"])
    assert (event["provider"], event["recipient"]) == ("whatsapp", status["recipient_id"])
    assert event["errors"] == status.get("errors")
    assert event["raw"]["status"] == status
    assert client.get("/messages").get_json()["total"] == 0


def test_a_bad_message_never_poisons_the_batch(client, wa):
    payload = load("message")["text"]
    messages = value_of(payload)["messages"]
    good = messages[0]
    second = {**copy.deepcopy(good), "id": "wamid.second", "text": {"body": "second"}}
    messages[:] = [good, {**good, "id": "wamid.bad", "timestamp": "yesterday"}, second]
    post(wa, payload)
    listed = client.get("/messages").get_json()["data"]
    assert sorted(m["message_id"] for m in listed) == ["wamid.second", good["id"]]
    (rejection,) = client.get("/rejections").get_json()["data"]
    assert "messages.1.timestamp" in rejection["reason"]


@pytest.mark.parametrize("file", OTHER_FIELDS)
def test_pywas_other_fields_are_acknowledged_not_stored(client, wa, file):
    for payload in load(file).values():
        post(wa, payload)
    assert client.get("/messages").get_json()["total"] == 0
    assert client.get("/statuses").get_json()["data"] == []
    assert client.get("/rejections").get_json()["data"] == []
