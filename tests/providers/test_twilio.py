"""Twilio: POST /webhooks/twilio, a form signed by Twilio for the public URL it called, stored once
and answered with empty TwiML. Requests are signed by the twilio package's RequestValidator."""

import re
from datetime import UTC, datetime

import pytest
from helpers import (
    PROVIDER_SETTINGS,
    PUBLIC_BASE_URL,
    TWILIO_AUTH_TOKEN,
    TwilioSender,
    assert_nothing_stored,
    message_record,
    metric,
    stored_total,
    twilio_form,
)
from twilio.request_validator import RequestValidator

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
SID = "SM0123456789abcdef0123456789abcdef"
CONTRACT_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")


@pytest.fixture
def app(make_app):
    return make_app(**PROVIDER_SETTINGS)


@pytest.fixture
def twilio(client):
    return TwilioSender(client)


def requests_total(client, result):
    return metric(client, "provider_requests_total", provider="twilio", result=result)


def stored_count(client):
    return metric(client, "messages_stored_total", provider="twilio")


def only_message(client):
    data = client.get("/messages").get_json()["data"]
    assert len(data) == 1, data
    return data[0]


def assert_invalid_signature(client, response, checked=PUBLIC_BASE_URL + "/webhooks/twilio"):
    assert response.status_code == 401
    assert response.mimetype == "application/json"
    detail = response.get_json()["detail"]
    assert detail.startswith(f"invalid signature (checked against {checked}")
    assert_nothing_stored(client)


def test_signed_message_stored_and_answered_with_empty_twiml(client, twilio):
    before = (requests_total(client, "accepted"), stored_count(client))
    webhook_created = metric(client, "webhook_requests_total", result="created")
    start = datetime.now(UTC)
    response = twilio()
    end = datetime.now(UTC)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/xml"
    assert response.get_data() == EMPTY_TWIML

    message = only_message(client)
    ts = message.pop("ts")
    assert message == {
        "message_id": SID,
        "from": "+919876543210",
        "to": "+14155550100",
        "text": "Hello from Twilio",
    }
    # Twilio sends no time: the arrival time, in UTC, in the contract's format.
    assert CONTRACT_TS.fullmatch(ts), ts
    arrived = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    assert start.replace(microsecond=0) <= arrived <= end
    stats = client.get("/stats").get_json()
    assert stats["messages_per_sender"] == [{"from": "+919876543210", "count": 1}]
    assert client.get("/messages", query_string={"q": "from twilio"}).get_json()["total"] == 1

    assert (requests_total(client, "accepted"), stored_count(client)) == (
        before[0] + 1,
        before[1] + 1,
    )
    assert metric(client, "webhook_requests_total", result="created") == webhook_created


def test_whatsapp_prefix_stripped(client, twilio):
    response = twilio(From="whatsapp:+447700900123", To="whatsapp:+14155238886")
    assert response.status_code == 200
    message = only_message(client)
    assert (message["from"], message["to"]) == ("+447700900123", "+14155238886")


def test_non_ascii_body(client, twilio):
    text = "नमस्ते \U0001f44b — ça va?"
    assert twilio(Body=text).status_code == 200
    assert only_message(client)["text"] == text
    assert client.get("/messages", query_string={"q": "ÇA VA"}).get_json()["total"] == 1


def test_picture_without_body_has_no_text_and_its_media(client, twilio):
    # An MMS with only a picture has an empty Body: nothing readable, the picture is its media.
    response = twilio(
        Body="",
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/media/ME1",
        MediaContentType0="image/jpeg",
    )
    assert response.status_code == 200
    assert only_message(client)["text"] is None
    record = client.get(f"/messages/{SID}").get_json()
    assert (record["type"], record["channel"]) == ("media", "mms")
    assert record["media"] == [
        {"url": "https://api.twilio.com/media/ME1", "mime_type": "image/jpeg"}
    ]


def test_retried_message_sid_is_a_duplicate(client, twilio):
    before = stored_count(client)
    assert twilio(Body="first").status_code == 200
    retried = twilio(Body="second")
    assert retried.status_code == 200
    assert retried.get_data() == EMPTY_TWIML
    assert only_message(client)["text"] == "first"
    assert stored_count(client) == before + 1
    assert client.get("/stats").get_json()["total_messages"] == 1


def test_message_sid_known_from_webhook_is_a_duplicate(client, twilio, send):
    assert send(message_id=SID, text="contract").status_code == 200
    assert twilio(Body="twilio").status_code == 200
    assert only_message(client)["text"] == "contract"
    assert message_record(client, SID).get_json()["provider"] == "webhook"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"signature": False}, id="missing"),
        pytest.param({"signature": ""}, id="empty"),
        pytest.param({"signature": "not-base64"}, id="garbage"),
        pytest.param(
            {
                "signature": RequestValidator("other-token").compute_signature(
                    PUBLIC_BASE_URL + "/webhooks/twilio", twilio_form()
                )
            },
            id="other-token",
        ),
        pytest.param(
            {
                "signature": RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(
                    PUBLIC_BASE_URL + "/webhooks/twilio", twilio_form(Body="what was signed")
                )
            },
            id="form-changed",
        ),
        pytest.param(
            {
                "signature": RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(
                    PUBLIC_BASE_URL + "/webhooks/twilio", twilio_form(), algorithm="HMAC_SHA256"
                )
            },
            id="sha256",
        ),
    ],
)
def test_missing_or_wrong_signature_401(client, twilio, change):
    before = requests_total(client, "invalid_signature")
    assert_invalid_signature(client, twilio(**change))
    assert requests_total(client, "invalid_signature") == before + 1


def test_field_added_after_signing_401(client, twilio):
    form = twilio_form()
    signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(
        PUBLIC_BASE_URL + "/webhooks/twilio", form
    )
    assert_invalid_signature(client, twilio({**form, "Extra": ""}, signature=signature))


def test_signature_is_for_the_public_url_not_the_one_the_app_sees(client, twilio):
    # The test client calls http://localhost/webhooks/twilio; Twilio called the public URL.
    assert_invalid_signature(client, twilio(signed_url="http://localhost/webhooks/twilio"))
    assert_invalid_signature(client, twilio(signed_url="http://lyftr.example.com/webhooks/twilio"))
    assert_invalid_signature(client, twilio(signed_url=PUBLIC_BASE_URL + "/webhooks/twilio/"))
    assert twilio(signed_url=PUBLIC_BASE_URL + "/webhooks/twilio").status_code == 200
    assert stored_total(client) == 1


def test_public_base_url_with_a_path_prefix(make_app):
    base = "https://gateway.example.com/lyftr"
    client = make_app(**{**PROVIDER_SETTINGS, "PUBLIC_BASE_URL": base}).test_client()
    twilio = TwilioSender(client, base_url=base)
    assert_invalid_signature(
        client,
        twilio(signed_url=PUBLIC_BASE_URL + "/webhooks/twilio"),
        checked=base + "/webhooks/twilio)",
    )
    assert twilio().status_code == 200


def test_without_public_base_url_the_request_url_is_signed(make_app):
    client = make_app(**{**PROVIDER_SETTINGS, "PUBLIC_BASE_URL": ""}).test_client()
    twilio = TwilioSender(client, base_url="http://localhost")
    assert_invalid_signature(
        client,
        twilio(signed_url=PUBLIC_BASE_URL + "/webhooks/twilio"),
        checked="http://localhost/webhooks/twilio)",
    )
    assert twilio().status_code == 200


def test_query_string_is_part_of_the_signed_url(client, twilio):
    query = "tenant=acme&region=eu"
    path_only = PUBLIC_BASE_URL + "/webhooks/twilio"
    assert_invalid_signature(
        client, twilio(query=query, signed_url=path_only), checked=f"{path_only}?{query})"
    )
    assert_invalid_signature(
        client, twilio(query=query, signed_url=path_only + "?region=eu&tenant=acme")
    )
    assert twilio(query=query).status_code == 200
    assert stored_total(client) == 1


def test_token_unset_503(make_app):
    client = make_app(**{**PROVIDER_SETTINGS, "TWILIO_AUTH_TOKEN": ""}).test_client()
    before = requests_total(client, "not_configured")
    for token in (TWILIO_AUTH_TOKEN, ""):
        response = TwilioSender(client, token=token)()
        assert response.status_code == 503
        assert response.mimetype == "application/json"
        assert response.get_json()["detail"].endswith("set TWILIO_AUTH_TOKEN")
    assert_nothing_stored(client)
    assert requests_total(client, "not_configured") == before + 2


@pytest.mark.parametrize("missing", ["MessageSid", "From", "To"])
def test_signed_form_without_a_required_field_422(client, twilio, missing):
    form = twilio_form()
    del form[missing]
    response = twilio(form)
    assert response.status_code == 422
    assert response.mimetype == "application/json"
    assert any(entry["loc"] == ["body", missing] for entry in response.get_json()["detail"])
    assert_nothing_stored(client)


def test_webhook_secret_does_not_sign_for_twilio(client, twilio):
    from helpers import SECRET

    assert_invalid_signature(client, TwilioSender(client, token=SECRET)())


def test_url_signed_with_the_default_port_is_accepted(client, twilio):
    signed = "https://lyftr.example.com:443/webhooks/twilio"
    form = twilio_form()
    signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(signed, form)
    # Twilio's own validator accepts this request for the public URL.
    assert RequestValidator(TWILIO_AUTH_TOKEN).validate(
        PUBLIC_BASE_URL + "/webhooks/twilio", form, signature
    )
    assert twilio(form, signature=signature).status_code == 200


@pytest.mark.parametrize("field", ["MessageSid", "From", "To"])
def test_an_id_with_nul_is_422_on_every_backend(client, twilio, field):
    # PostgreSQL cannot store NUL in text: refused alike everywhere, never a 500.
    response = twilio(twilio_form(**{field: "+1555\x00123"}))
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"] == ["body", field]
    assert_nothing_stored(client)
