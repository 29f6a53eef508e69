"""``import_lines.fast_load`` and ``ImportedMessageSchema`` agree on every line: the fast path
accepts exactly the lines the schema accepts, and loads them to the same message."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
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

from lyftr.api.schemas import ImportedMessageSchema, parse_instant
from lyftr.ops.import_lines import fast_load

SCHEMA = ImportedMessageSchema()

instants = st.sampled_from(
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00+05:30",
        "2026-01-01T00:00:00",
        "2026-01-01",
        "yesterday",
        "2026-01-01T00:00:00.123Z",
        "\ud800",
    ]
)
FIELDS = {
    "message_id": identifiers,
    "from": numbers | st.text(max_size=4),
    "to": numbers,
    "ts": stamps,
    "text": texts,
    "provider": st.sampled_from(["webhook", "whatsapp", "twilio", "other", "Webhook"]),
    "type": st.sampled_from(["text", "image", "", "\udfff"]),
    "raw": json_values,
    "received_at": st.none() | instants,
}
valid_lines = st.fixed_dictionaries(
    {
        "message_id": valid_message_ids,
        "from": valid_msisdns,
        "to": valid_msisdns,
        "ts": valid_stamps,
    },
    optional={
        "text": st.none() | st.text(max_size=20),
        "provider": st.sampled_from(["webhook", "whatsapp", "twilio"]),
        "type": st.text(max_size=5),
        "raw": json_values,
        "received_at": st.none()
        | st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T05:30+05:30"]),
        "extra": json_values,
    },
)
lines = changed(valid_lines, FIELDS)


def schema_load(data):
    try:
        return SCHEMA.load(data)
    except ValidationError:
        return None


def assert_agree(data):
    assert fast_load(data) == schema_load(data), data


@settings(max_examples=1500, deadline=None, database=None)
@given(lines)
def test_fast_path_and_schema_agree(data):
    assert_agree(data)


@settings(max_examples=300, deadline=None, database=None)
@given(json_values)
def test_they_agree_on_any_json(data):
    assert_agree(data)


@pytest.mark.parametrize(
    "line",
    [
        {"message_id": "m1", "from": "+91", "to": "+1", "ts": "2025-01-15T10:00:00Z"},
        {"message_id": "m1", "from": "+91", "to": "+1", "ts": "2025-01-15T10:00:00Z", "text": None},
        {
            "message_id": "wa1",
            "from": "US.1234",
            "to": "+1",
            "ts": "2025-01-15T10:00:00.5Z",
            "text": "héllo",
            "provider": "whatsapp",
            "type": "image",
            "raw": {"id": "wa1", "nested": [1, None]},
            "received_at": "2026-01-01T00:00:00+05:30",
        },
    ],
)
def test_valid_lines_take_the_fast_path(line):
    # Written as `flask export` writes them: the fast path (not the fallback) accepts them.
    data = json.loads(json.dumps(line))
    assert fast_load(data) is not None
    assert_agree(data)


@pytest.mark.parametrize(
    "change",
    [
        {"message_id": ""},
        {"from": "US.1234"},  # a user ID needs a provider other than webhook
        {"to": "US.1234"},
        {"ts": "2025-02-30T00:00:00Z"},
        {"text": "x" * 4097},
        {"text": "\ud800"},
        {"provider": None},
        {"type": None},
        {"received_at": "2026-01-01T00:00:00"},
    ],
)
def test_each_check_refuses_as_the_schema_does(change):
    line = {"message_id": "m1", "from": "+91", "to": "+1", "ts": "2025-01-15T10:00:00Z", **change}
    assert fast_load(line) is None
    assert schema_load(line) is None


@given(
    moment=st.datetimes(
        min_value=datetime(1000, 1, 2), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
    ),
    offset_minutes=st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
    written=st.sampled_from(["Z", "Z, milliseconds", "+00:00", "offset", "offset, milliseconds"]),
)
def test_an_arrival_time_is_read_as_the_same_instant_however_it_is_written(
    moment, offset_minutes, written
):
    """``received_at`` as every export writes it comes back unchanged; any other spelling of the
    instant comes back as that spelling of it (UTC, microseconds, "Z")."""
    if written.endswith("milliseconds"):
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    text = {
        "Z": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "Z, milliseconds": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "+00:00": moment.isoformat(timespec="microseconds"),
        "offset": local.isoformat(timespec="microseconds"),
        "offset, milliseconds": local.isoformat(timespec="milliseconds"),
    }[written]
    assert parse_instant(text) == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
