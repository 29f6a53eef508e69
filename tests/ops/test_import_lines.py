"""``import_lines.fast_load`` and ``ImportedMessageSchema`` agree on every line: the fast path
accepts exactly the lines the schema accepts, and loads them to the same message."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from lyftr.api.schemas import ImportedMessageSchema
from lyftr.ops.import_lines import fast_load

SCHEMA = ImportedMessageSchema()
ABSENT = object()

# Values near each check's edges, mixed with arbitrary JSON values.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=5,
)
numbers = st.sampled_from(
    ["+919876543210", "+1", "+1234567890123456", "+", "919876543210", "+91 98", "+٣", "US.123", ""]
)
identifiers = st.sampled_from(["m1", "", "x" * 256, "x" * 257, "a\x00b", "\ud800", "é"]) | st.text()
stamps = st.sampled_from(
    [
        "2025-01-15T10:00:00Z",
        "2025-01-15T10:00:00.123456789Z",
        "2025-02-30T00:00:00Z",
        "2025-01-15T10:00:00z",
        "2025-01-15T10:00:00+00:00",
        "2025-01-15",
        "0001-01-01T00:00:00Z",
        "2025-01-15T24:00:00Z",
        "2025-01-15T10:00:00.Z",
    ]
)
texts = (
    st.none() | st.text(max_size=8) | st.sampled_from(["x" * 4096, "x" * 4097, "\ud83d", "\x00"])
)
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
# A valid line (as `flask export` or a /webhook client writes it) ...
valid_stamps = st.builds(
    lambda moment, digits: moment.strftime("%Y-%m-%dT%H:%M:%S") + digits + "Z",
    st.datetimes(),
    st.sampled_from(["", ".0", ".5", ".123456789"]),
)
valid_lines = st.fixed_dictionaries(
    {
        "message_id": st.text(min_size=1, max_size=20).filter(lambda v: "\x00" not in v),
        "from": st.from_regex(r"\+[0-9]{1,15}", fullmatch=True),
        "to": st.from_regex(r"\+[0-9]{1,15}", fullmatch=True),
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
# ... with up to two fields changed to values near each check's edge, any JSON, or left out.
changes = st.dictionaries(
    st.sampled_from(sorted(FIELDS)),
    st.one_of(*FIELDS.values(), json_values, st.just(ABSENT)),
    max_size=2,
)
lines = st.builds(
    lambda line, change: {k: v for k, v in {**line, **change}.items() if v is not ABSENT},
    valid_lines,
    changes | st.just({}),
)


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
