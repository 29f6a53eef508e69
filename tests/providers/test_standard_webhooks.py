"""Standard Webhooks on POST /webhook: with STANDARD_WEBHOOKS_SECRET set, a delivery signed by a
Standard Webhooks sender (webhook-id, webhook-timestamp, webhook-signature) is accepted beside the
contract's X-Signature. Requests are signed by the spec's reference library (``standardwebhooks``).
"""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from helpers import (
    PROVIDER_SETTINGS,
    SECRET,
    STANDARD_WEBHOOKS_SECRET,
    assert_nothing_stored,
    message_record,
    metric,
    sample_message,
    standard_webhooks_headers,
)
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook

from lyftr.providers.signing import sign

CONTRACT_RESULTS = {
    "created",
    "duplicate",
    "invalid_signature",
    "validation_error",
    "payload_too_large",
    "not_configured",
    "unavailable",
    "error",
}


@pytest.fixture
def app(make_app):
    return make_app(**PROVIDER_SETTINGS)


def body_of(**overrides):
    return json.dumps(sample_message(**overrides)).encode()


def post(client, body, headers):
    return client.post("/webhook", data=body, headers=headers)


def webhook(client, result):
    return metric(client, "webhook_requests_total", result=result)


def stored_ids(client):
    return [m["message_id"] for m in client.get("/messages").get_json()["data"]]


def test_delivery_signed_by_a_standard_webhooks_sender_is_stored(client):
    before = (
        webhook(client, "created"),
        metric(client, "messages_stored_total", provider="webhook"),
    )
    body = body_of()
    headers = standard_webhooks_headers(body)
    # The reference library itself verifies what it signed.
    assert Webhook(STANDARD_WEBHOOKS_SECRET).verify(body, headers) == sample_message()
    response = post(client, body, headers)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert client.get("/messages").get_json()["data"] == [sample_message()]
    record = message_record(client, "m1").get_json()
    assert (record["provider"], record["type"], record["raw"]) == ("webhook", "text", None)
    assert webhook(client, "created") == before[0] + 1
    assert metric(client, "messages_stored_total", provider="webhook") == before[1] + 1


def test_redelivery_is_a_duplicate(client):
    body = body_of()
    assert post(client, body, standard_webhooks_headers(body)).status_code == 200
    before = webhook(client, "duplicate")
    changed = body_of(text="changed")
    response = post(client, changed, standard_webhooks_headers(changed, msg_id="msg_2"))
    assert response.status_code == 200
    assert client.get("/messages").get_json()["data"] == [sample_message()]
    assert webhook(client, "duplicate") == before + 1


def test_body_is_still_the_contract_message(client):
    before = webhook(client, "validation_error")
    body = body_of(**{"from": "12"})
    response = post(client, body, standard_webhooks_headers(body))
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"] == ["body", "from"]
    assert_nothing_stored(client)
    assert webhook(client, "validation_error") == before + 1


def _other_signature(body, at):
    key = base64.b64encode(b"another sender's secret!").decode()
    return Webhook("whsec_" + key).sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", at, body.decode())


@pytest.mark.parametrize(
    "arrange",
    [
        # A sender rotating its secret signs with both: lyftr knows one of them.
        pytest.param(lambda good, other: f"{other} {good}", id="second-of-two"),
        pytest.param(lambda good, other: f"{good} {other}", id="first-of-two"),
        pytest.param(lambda good, other: f"v1a,{other[3:]} {other} {good}", id="third-of-three"),
        pytest.param(lambda good, other: f"v2,{good[3:]} {good}", id="after-another-version"),
    ],
)
def test_any_one_of_several_signatures_may_match(client, arrange):
    body = body_of()
    at = datetime.now(UTC)
    headers = standard_webhooks_headers(body, at=at)
    headers["webhook-signature"] = arrange(headers["webhook-signature"], _other_signature(body, at))
    assert post(client, body, headers).status_code == 200
    assert stored_ids(client) == ["m1"]


@pytest.mark.parametrize(
    "offset",
    [timedelta(minutes=-6), timedelta(minutes=6), timedelta(hours=-24), timedelta(days=3650)],
    ids=["6-min-old", "6-min-ahead", "a-day-old", "years-ahead"],
)
def test_timestamp_more_than_5_minutes_away_401(client, offset):
    before = webhook(client, "invalid_signature")
    body = body_of()
    response = post(client, body, standard_webhooks_headers(body, at=datetime.now(UTC) + offset))
    assert response.status_code == 401
    assert response.get_json() == {"detail": "invalid signature"}
    assert_nothing_stored(client)
    assert webhook(client, "invalid_signature") == before + 1


@pytest.mark.parametrize(
    "offset", [timedelta(minutes=-4), timedelta(minutes=4)], ids=["4-min-old", "4-min-ahead"]
)
def test_timestamp_within_5_minutes_accepted(client, offset):
    body = body_of()
    response = post(client, body, standard_webhooks_headers(body, at=datetime.now(UTC) + offset))
    assert response.status_code == 200


def _tamper(headers, **changes):
    return {k: v for k, v in {**headers, **changes}.items() if v is not None}


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h: _tamper(h, **{"webhook-id": "msg_other"}), id="other-id"),
        pytest.param(
            lambda h: _tamper(h, **{"webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}),
            id="other-timestamp",
        ),
        pytest.param(lambda h: _tamper(h, **{"webhook-id": None}), id="no-id"),
        pytest.param(lambda h: _tamper(h, **{"webhook-timestamp": None}), id="no-timestamp"),
        pytest.param(lambda h: _tamper(h, **{"webhook-signature": None}), id="no-signature"),
        pytest.param(lambda h: _tamper(h, **{"webhook-signature": ""}), id="empty-signature"),
        pytest.param(
            lambda h: _tamper(h, **{"webhook-timestamp": h["webhook-timestamp"] + ".0"}),
            id="timestamp-not-digits",
        ),
        pytest.param(
            lambda h: _tamper(h, **{"webhook-signature": h["webhook-signature"][3:]}),
            id="no-version",
        ),
        # Digits to str.isdigit that int() refuses or that overflow: refused, never a 500.
        pytest.param(lambda h: _tamper(h, **{"webhook-timestamp": "\u00b2"}), id="superscript"),
        pytest.param(
            lambda h: _tamper(h, **{"webhook-timestamp": "\u0661" * 10}), id="arabic-indic"
        ),
        pytest.param(lambda h: _tamper(h, **{"webhook-timestamp": "9" * 400}), id="huge"),
        pytest.param(
            lambda h: _tamper(h, **{"webhook-signature": "v1a," + h["webhook-signature"][3:]}),
            id="other-version",
        ),
    ],
)
def test_tampered_or_incomplete_headers_401(client, tamper):
    body = body_of()
    response = post(client, body, tamper(standard_webhooks_headers(body)))
    assert response.status_code == 401
    assert response.get_json() == {"detail": "invalid signature"}
    assert_nothing_stored(client)


def test_body_changed_after_signing_401(client):
    headers = standard_webhooks_headers(body_of())
    assert post(client, body_of(text="changed"), headers).status_code == 401
    assert_nothing_stored(client)


def test_signed_with_another_secret_401(client):
    body = body_of()
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    assert post(client, body, standard_webhooks_headers(body, secret=other)).status_code == 401
    assert_nothing_stored(client)


def test_not_accepted_when_the_secret_is_unset(make_app):
    client = make_app(**{**PROVIDER_SETTINGS, "STANDARD_WEBHOOKS_SECRET": ""}).test_client()
    before = webhook(client, "invalid_signature")
    body = body_of()
    response = post(client, body, standard_webhooks_headers(body))
    assert response.status_code == 401
    assert response.get_json() == {"detail": "invalid signature"}
    assert_nothing_stored(client)
    assert webhook(client, "invalid_signature") == before + 1
    # The contract's signature still works there.
    assert post(client, body, {"X-Signature": sign(SECRET, body)}).status_code == 200


def test_x_signature_still_works_with_the_secret_set(client):
    body = body_of()
    assert post(client, body, {"X-Signature": sign(SECRET, body)}).status_code == 200
    assert post(client, body_of(message_id="m2"), {"X-Signature": "0" * 64}).status_code == 401
    assert stored_ids(client) == ["m1"]


def test_either_signature_may_match(client):
    body = body_of()
    headers = {**standard_webhooks_headers(body), "X-Signature": "0" * 64}
    assert post(client, body, headers).status_code == 200
    body2 = body_of(message_id="m2")
    bad_standard = standard_webhooks_headers(body2, secret="whsec_" + "A" * 32)
    assert (
        post(client, body2, {**bad_standard, "X-Signature": sign(SECRET, body2)}).status_code == 200
    )
    assert stored_ids(client) == ["m1", "m2"]


def test_standard_webhooks_secret_does_not_stand_in_for_webhook_secret(make_app):
    # Without WEBHOOK_SECRET /webhook stores nothing, however the delivery is signed.
    client = make_app(**PROVIDER_SETTINGS, WEBHOOK_SECRET="").test_client()
    body = body_of()
    response = post(client, body, standard_webhooks_headers(body))
    assert response.status_code == 503
    assert_nothing_stored(client)


def test_secret_without_base64_padding(make_app):
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode().rstrip("=")
    assert not secret.endswith("=") and len(secret) % 4
    client = make_app(**{**PROVIDER_SETTINGS, "STANDARD_WEBHOOKS_SECRET": secret}).test_client()
    body = body_of()
    assert post(client, body, standard_webhooks_headers(body, secret=secret)).status_code == 200


def test_webhook_requests_total_keeps_the_contract_series(client):
    body = body_of()
    post(client, body, standard_webhooks_headers(body))
    post(client, body, standard_webhooks_headers(body, at=datetime.now(UTC) - timedelta(hours=1)))
    text = client.get("/metrics").get_data(as_text=True)
    samples = [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "webhook_requests_total"
    ]
    assert all(set(sample.labels) == {"result"} for sample in samples)
    assert {sample.labels["result"] for sample in samples} == CONTRACT_RESULTS
