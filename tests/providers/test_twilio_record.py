"""Twilio's forms as the normalized record, status callbacks as status events, token rotation, a
URL configured with a trailing slash, and refused deliveries kept; all signed by the twilio
package's RequestValidator."""

import pytest
from helpers import (
    PROVIDER_SETTINGS,
    PUBLIC_BASE_URL,
    TwilioSender,
    message_record,
    metric,
    twilio_form,
)
from twilio.request_validator import RequestValidator

SID = "SM0123456789abcdef0123456789abcdef"


@pytest.fixture
def app(make_app):
    return make_app(**PROVIDER_SETTINGS, TWILIO_AUTH_TOKEN_PREVIOUS="twilio-old-token")


@pytest.fixture
def twilio(client):
    return TwilioSender(client)


def status_callback(status, sid=SID, **fields):
    """What Twilio posts to a message's StatusCallback: no Body (Twilio's documented fields)."""
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": "+14155550199",
        "To": "+14155550100",
        "MessageStatus": status,
        "SmsStatus": status,
        "ApiVersion": "2010-04-01",
        **fields,
    }
    return form


def test_whatsapp_location_via_twilio(client, twilio):
    form = twilio_form(
        From="whatsapp:+14155550100",
        To="whatsapp:+14155550199",
        Body="",
        MessageType="location",
        Latitude="37.7749",
        Longitude="-122.4194",
        Address="1 Market St, San Francisco",
        Label="Ferry Building",
        ProfileName="Ada",
        OriginalRepliedMessageSid="SMparent",
    )
    assert twilio(form).status_code == 200
    record = message_record(client, SID).get_json()
    assert (record["type"], record["channel"], record["from"]) == (
        "location",
        "whatsapp",
        "+14155550100",
    )
    assert record["text"] == "Ferry Building, 1 Market St, San Francisco"
    assert record["location"] == {
        "latitude": 37.7749,
        "longitude": -122.4194,
        "name": "Ferry Building",
        "address": "1 Market St, San Francisco",
    }
    assert (record["sender_name"], record["reply_to"]) == ("Ada", "SMparent")
    assert record["raw"] == form


def test_sms_and_other_channels(client, twilio):
    assert twilio(Body="hi").status_code == 200
    assert message_record(client, SID).get_json()["channel"] == "sms"
    sid = "SMmessenger0000000000000000000000"
    form = twilio_form(sid, From="messenger:1234567890", To="messenger:555", Body="hey")
    assert twilio(form).status_code == 200
    record = message_record(client, sid).get_json()
    assert (record["channel"], record["from"]) == ("messenger", "messenger:1234567890")
    listed = client.get("/messages", query_string={"from": "messenger:1234567890"})
    assert listed.status_code == 200, listed.get_json()


def test_button_reply_text(client, twilio):
    form = twilio_form(Body="", MessageType="button", ButtonText="Yes please", ButtonPayload="y")
    assert twilio(form).status_code == 200
    record = message_record(client, SID).get_json()
    assert (record["type"], record["text"]) == ("button", "Yes please")


def test_status_callbacks_are_status_events_not_messages(client, twilio):
    assert twilio(Body="outbound reply").status_code == 200
    before = metric(client, "provider_requests_total", provider="twilio", result="status")
    for status in ("queued", "sent", "delivered", "read", "read"):
        response = twilio(status_callback(status))
        assert response.status_code == 200
        assert response.mimetype == "text/xml"
    failed = status_callback(
        "undelivered", "SMother", ErrorCode="30003", ErrorMessage="Unreachable"
    )
    assert twilio(failed).status_code == 200
    after = metric(client, "provider_requests_total", provider="twilio", result="status")
    assert after == before + 6
    assert client.get("/messages").get_json()["total"] == 1
    events = client.get("/statuses").get_json()["data"]
    assert [(e["message_id"], e["status"]) for e in events] == [
        (SID, "queued"),
        (SID, "sent"),
        (SID, "delivered"),
        (SID, "read"),
        ("SMother", "undelivered"),
    ]
    assert events[-1]["errors"] == [{"ErrorCode": "30003", "ErrorMessage": "Unreachable"}]
    assert events[0]["raw"] == status_callback("queued")
    assert events[0]["provider"] == "twilio"
    page = client.get("/statuses", query_string={"limit": 2}).get_json()
    assert len(page["data"]) == 2
    rest = client.get("/statuses", query_string={"cursor": page["next_cursor"]}).get_json()
    assert [e["status"] for e in rest["data"]] == ["delivered", "read", "undelivered"]
    assert rest["next_cursor"] is None


def test_previous_token_accepted_during_rotation(client):
    assert (
        TwilioSender(client, token="twilio-old-token")(Body="signed with the old one").status_code
        == 200
    )
    assert TwilioSender(client, token="another")(Body="x", MessageSid="SMx").status_code == 401


def test_url_configured_with_a_trailing_slash(client):
    form = twilio_form(Body="slash")
    url = PUBLIC_BASE_URL + "/webhooks/twilio/"
    signature = RequestValidator(PROVIDER_SETTINGS["TWILIO_AUTH_TOKEN"]).compute_signature(
        url, form
    )
    response = client.post(
        "/webhooks/twilio/", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 200
    assert message_record(client, SID).get_json()["text"] == "slash"


def test_refused_deliveries_are_kept_with_the_checked_url(client, twilio):
    assert twilio(Body="forged", signature="A" * 27 + "=").status_code == 401
    assert twilio(twilio_form(From="")).status_code == 422
    first, second = client.get("/rejections").get_json()["data"][::-1]
    assert (first["provider"], first["reason"]) == ("twilio", "invalid signature")
    assert first["url"] == PUBLIC_BASE_URL + "/webhooks/twilio"
    assert first["body"] is None  # not authentic: only its hash and size
    assert len(first["body_sha256"]) == 64 and first["body_size"] > 0
    assert first["client"] == "127.0.0.1"
    assert second["reason"] == "body.From: Field required"
    assert "MessageSid=" + SID in second["body"]  # authentic: the body is kept
