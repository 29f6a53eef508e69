"""The senders' own payloads, signed, with any value where a real one was: always an answer of
the endpoint's (200 or 422), never a 500, and every record stored reads back as strict JSON.

WhatsApp: Meta's payloads as pywa records them (tests/data/pywa), one value anywhere replaced by
any JSON value or taken out. Twilio: its form for an incoming message, any of the fields lyftr
reads given any text. A fuzzer found what the examples never held: a ``from`` that is a list, a
contacts ``wa_id`` that is an object, an order's ``product_items`` that is a number (500s), a
Twilio ``Latitude`` of "nan" (a record answered with NaN, which is not JSON), a message type
holding NUL (a 500 on PostgreSQL). Every field of a real payload is a place a sender's bug, or
anyone holding the secret, can put anything.
"""

import copy
import itertools
import json
from pathlib import Path

import pytest
from helpers import PROVIDER_SETTINGS, TwilioSender, WhatsAppSender, message_record, twilio_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from message_strategies import json_values

from lyftr.providers.whatsapp_notification import InvalidNotification, parse_notification

DATA = Path(__file__).parents[1] / "data" / "pywa"
RECEIVED_AT = "2026-12-06T08:00:00.000000Z"
TAKEN_OUT = object()
# Strings JSON can spell that no backend stores as they are (PostgreSQL's text takes no NUL; a
# lone surrogate is not UTF-8): drawn often, since a random string seldom holds one.
UNSTORABLE = st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy"])
SIDS = itertools.count()
# The fields of an incoming message that lyftr reads (twilio_record, the endpoint).
TWILIO_FIELDS = (
    "MessageSid",
    "From",
    "To",
    "Body",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "Latitude",
    "Longitude",
    "Label",
    "Address",
    "MessageType",
    "ButtonText",
    "ListTitle",
    "ProfileName",
    "OriginalRepliedMessageSid",
    "MessageStatus",
)

# Every notification pywa records, by (file, case).
PAYLOADS = {
    (path.stem, case): payload
    for path in sorted(DATA.glob("*.json"))
    for case, payload in json.loads(path.read_text(encoding="utf-8")).items()
}


def places(node, path=()):
    """The path of every value inside ``node`` (object members and list items, at any depth)."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield (*path, key)
        if isinstance(value, dict | list):
            yield from places(value, (*path, key))


@st.composite
def mutated_payloads(draw):
    payload = copy.deepcopy(PAYLOADS[draw(st.sampled_from(sorted(PAYLOADS)))])
    *parents, last = draw(st.sampled_from(list(places(payload))))
    container = payload
    for key in parents:
        container = container[key]
    value = draw(st.just(TAKEN_OUT) | UNSTORABLE | json_values)
    if value is TAKEN_OUT:
        del container[last]
    else:
        container[last] = value
    return payload


@settings(max_examples=600, deadline=None, database=None)
@given(mutated_payloads())
def test_any_value_anywhere_is_read_or_refused(payload):
    try:
        notification = parse_notification(payload, RECEIVED_AT)
    except InvalidNotification as exc:
        json.dumps(exc.detail)  # the 422's detail can be sent
        return
    for row in notification.messages:
        assert isinstance(row["message_id"], str) and isinstance(row["from_msisdn"], str)
        for column in ("text", "sender_name", "media", "location", "reply_to", "raw"):
            assert row[column] is None or isinstance(row[column], str), (column, row)
    json.dumps(notification.invalid)  # kept as rejections: each must be JSON


def strict_json(response):
    """The response's body as RFC 8259 JSON: NaN and Infinity, which json.loads reads, refused."""
    assert response.is_json, response.get_data()

    def refuse(constant):
        raise AssertionError(f"{constant} in {response.get_data()[:300]!r}")

    return json.loads(response.get_data(as_text=True), parse_constant=refuse)


@pytest.fixture
def app(make_app):
    return make_app(**PROVIDER_SETTINGS)


# One app (on the test's backend) for every example: what earlier examples stored stays, as on a
# real server.
THROUGH_THE_APP = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@THROUGH_THE_APP
@given(payload=mutated_payloads())
def test_a_whatsapp_notification_with_any_value_anywhere_is_answered(client, payload):
    response = WhatsAppSender(client).raw(json.dumps(payload).encode())
    assert response.status_code in (200, 422), response.get_data()
    strict_json(response)
    if response.status_code == 200:
        strict_json(client.get("/messages", query_string={"limit": 100}))
        strict_json(client.get("/statuses", query_string={"limit": 100}))


@THROUGH_THE_APP
@given(
    values=st.dictionaries(
        st.sampled_from(TWILIO_FIELDS),
        st.text(max_size=16) | st.sampled_from(["nan", "1e999", "a\x00b"]),
    )
)
def test_a_twilio_form_with_any_text_in_any_field_is_answered(client, values):
    form = twilio_form(f"SM{next(SIDS):032x}", **values)  # a new message each time
    response = TwilioSender(client)(form)
    assert response.status_code in (200, 422), response.get_data()
    if response.status_code == 422:
        strict_json(response)
    else:
        assert response.mimetype == "text/xml"  # TwiML, as Twilio expects
    sid = form["MessageSid"]
    if response.status_code == 200 and sid and "\x00" not in sid:
        record = message_record(client, sid)
        assert record.status_code in (200, 404), record.get_data()  # a status callback: no record
        strict_json(record)


# What the fuzzers found, kept as plain cases (a random draw only now and then hits one field).


def test_a_whatsapp_type_no_backend_can_store_is_stored_as_unknown(client):
    payload = copy.deepcopy(PAYLOADS[("message", "text")])
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["type"] = "te\x00xt"
    assert WhatsAppSender(client).raw(json.dumps(payload).encode()).status_code == 200
    record = strict_json(message_record(client, message["id"]))
    assert record["type"] == "unknown"
    assert record["raw"]["message"]["type"] == "te\x00xt"  # as sent


def test_a_twilio_message_type_no_backend_can_store_is_stored_as_unknown(client):
    form = twilio_form(MessageType="te\x00xt")
    assert TwilioSender(client)(form).status_code == 200
    record = strict_json(message_record(client, form["MessageSid"]))
    assert record["type"] == "unknown"
    assert record["raw"]["MessageType"] == "te\x00xt"
