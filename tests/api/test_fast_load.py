"""``fast_load.webhook_message`` and ``WebhookMessageSchema`` agree on every body: the fast path
accepts exactly the bodies the schema accepts and loads them to the same message, and a body it
refuses still gets the schema's 422."""

import json

import pytest
from helpers import assert_nothing_stored
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from message_strategies import (
    changed,
    identifiers,
    json_values,
    numbers,
    stamps,
    texts,
    valid_message_ids,
    valid_msisdns,
    valid_stamps,
)

from lyftr.api import fast_load
from lyftr.api.schemas import WebhookMessageSchema

SCHEMA = WebhookMessageSchema()
FIELDS = {
    "message_id": identifiers,
    "from": numbers | st.text(max_size=4),
    "to": numbers,
    "ts": stamps,
    "text": texts,
}
valid_bodies = st.fixed_dictionaries(
    {
        "message_id": valid_message_ids,
        "from": valid_msisdns,
        "to": valid_msisdns,
        "ts": valid_stamps,
    },
    optional={"text": st.none() | st.text(max_size=20), "extra": json_values},
)


def schema_load(data):
    try:
        return SCHEMA.load(data)
    except ValidationError:
        return None


def assert_agree(data):
    assert fast_load.webhook_message(data) == schema_load(data), data


@settings(max_examples=1500, deadline=None, database=None)
@given(changed(valid_bodies, FIELDS))
def test_fast_path_and_schema_agree(data):
    assert_agree(data)


@settings(max_examples=300, deadline=None, database=None)
@given(json_values)
def test_they_agree_on_any_json(data):
    assert_agree(data)


def test_the_contracts_example_takes_the_fast_path():
    body = {
        "message_id": "m1",
        "from": "+919876543210",
        "to": "+14155550100",
        "ts": "2025-01-15T10:00:00Z",
        "text": "Hello",
    }
    assert fast_load.webhook_message(json.loads(json.dumps(body))) is not None
    assert_agree(body)


@pytest.mark.parametrize(
    "change",
    [
        {"message_id": ""},
        {"message_id": "x" * 257},
        {"message_id": "a\x00b"},
        {"from": "US.1234"},
        {"to": "+1234567890123456"},
        {"ts": "2025-02-30T00:00:00Z"},
        {"ts": 1736935200},
        {"text": "x" * 4097},
        {"text": "\ud800"},
        {"text": 5},
    ],
)
def test_each_check_refuses_as_the_schema_does(change, client, send):
    body = {"message_id": "m1", "from": "+91", "to": "+1", "ts": "2025-01-15T10:00:00Z", **change}
    assert fast_load.webhook_message(body) is None
    assert schema_load(body) is None
    # Refused by the fast path, the body still gets the schema's 422 and nothing is stored.
    response = send(body)
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"][:2] == ["body", next(iter(change))]
    assert_nothing_stored(client)
