"""Crafted, correctly signed bodies are 422s that store nothing and echo nothing: duplicate keys
on every JSON endpoint, WhatsApp notifications nested deeper than anything Meta sends."""

import json

import pytest
from helpers import (
    PROVIDER_SETTINGS,
    WhatsAppSender,
    assert_nothing_stored,
    sample_message,
    wa_change,
    wa_notification,
    wa_text,
)

from lyftr.api.strict_json import MAX_STORED_DEPTH


@pytest.fixture
def app(make_app):
    return make_app(**PROVIDER_SETTINGS)


def with_duplicate(body_text, key, value):
    """``body_text`` (a JSON object) with a second ``key`` member appended."""
    return body_text[:-1] + f", {json.dumps(key)}: {json.dumps(value)}}}"


def test_a_duplicate_key_in_a_webhook_body_is_422(client, send):
    body = with_duplicate(json.dumps(sample_message()), "message_id", "m2")
    response = send.raw(body)
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["type"] == "json_invalid"
    assert_nothing_stored(client)


def test_a_duplicate_key_in_a_whatsapp_notification_is_422(client):
    body = json.dumps(wa_notification(wa_change([wa_text("wamid.dup")])))
    response = WhatsAppSender(client).raw(with_duplicate(body, "object", "page"))
    assert response.status_code == 422
    assert_nothing_stored(client)


@pytest.mark.parametrize("depth", [MAX_STORED_DEPTH, 960, 5000])
def test_a_whatsapp_notification_nested_too_deep_is_422_without_echo(client, depth):
    message = wa_text("wamid.deep")
    message["context"] = "NESTED"
    body = json.dumps(wa_notification(wa_change([message])))
    body = body.replace('"NESTED"', "[" * depth + "]" * depth)  # written out: too deep to dump
    response = WhatsAppSender(client).raw(body)
    assert response.status_code == 422
    (detail,) = response.get_json()["detail"]
    assert detail["input"] is None and len(response.get_data()) < 500
    assert_nothing_stored(client)


def test_a_whatsapp_notification_of_ordinary_depth_is_stored(client):
    message = wa_text("wamid.shallow")
    message["context"] = json.loads("[" * 40 + "]" * 40)
    assert WhatsAppSender(client)(wa_notification(wa_change([message]))).status_code == 200
