"""lyftr.timestamps: strict parsing of message and query timestamps and their chronological key."""

import random
import re
from datetime import datetime, timedelta

import pytest

from lyftr.timestamps import message_ts_key, now_iso, query_ts_key


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("2025-01-15T10:00:00Z", "2025-01-15T10:00:00."),
        ("2025-01-15T10:00:00.5Z", "2025-01-15T10:00:00.5"),
        ("2025-01-15T10:00:00.500Z", "2025-01-15T10:00:00.5"),
        ("2025-01-15T10:00:00.000Z", "2025-01-15T10:00:00."),
        ("2025-01-15T10:00:00.123456789Z", "2025-01-15T10:00:00.123456789"),
        ("2024-02-29T23:59:59Z", "2024-02-29T23:59:59."),
        ("2000-02-29T00:00:00Z", "2000-02-29T00:00:00."),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00."),
        ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999"),
    ],
)
def test_message_ts_key_valid(value, key):
    assert message_ts_key(value) == key


@pytest.mark.parametrize(
    "value",
    [
        "2025-02-30T10:00:00Z",  # no Feb 30
        "2025-02-29T10:00:00Z",  # not a leap year
        "1900-02-29T10:00:00Z",  # century, not a leap year
        "2025-04-31T10:00:00Z",
        "2025-13-01T10:00:00Z",
        "2025-00-10T10:00:00Z",
        "2025-01-00T10:00:00Z",
        "2025-01-15T25:00:00Z",
        "2025-01-15T24:00:00Z",
        "2025-01-15T10:60:00Z",
        "2025-01-15T10:00:60Z",  # no leap seconds
        "2025-01-15T10:00:00+00:00",
        "2025-01-15T10:00:00-05:00",
        "2025-01-15T10:00:00",
        "2025-01-15",
        "2025-01-15t10:00:00z",
        "2025-01-15T10:00:00z",
        "2025-01-15t10:00:00Z",
        "2025-01-15 10:00:00Z",
        "2025-01-15T10:00Z",
        "2025-01-15T10:00:00.Z",
        "2025-01-15T10:00:00.1234567890Z",
        "2025-01-15T10:00:00,5Z",
        "20250115T100000Z",
        "2025-1-15T10:00:00Z",
        " 2025-01-15T10:00:00Z",
        "2025-01-15T10:00:00Z ",
        "2025-01-15T10:00:00Z\n",
        "２０２５-01-15T10:00:00Z",  # full-width digits
        "2025-01-15T1٠:00:00Z",  # an Arabic-Indic zero
        "",
        "now",
        "Z",
    ],
)
def test_message_ts_key_invalid(value):
    assert message_ts_key(value) is None


def test_message_ts_keys_sort_chronologically():
    values = [
        "2024-12-31T23:59:59.999999999Z",
        "2025-01-15T09:59:59.9Z",
        "2025-01-15T10:00:00Z",
        "2025-01-15T10:00:00.0001Z",
        "2025-01-15T10:00:00.001Z",
        "2025-01-15T10:00:00.0011Z",
        "2025-01-15T10:00:00.123Z",
        "2025-01-15T10:00:00.5Z",
        "2025-01-15T10:00:00.999Z",
        "2025-01-15T10:00:01Z",
        "2025-01-15T10:00:10Z",
        "2025-01-15T10:01:00Z",
        "2025-10-01T00:00:00Z",
        "9999-01-01T00:00:00Z",
    ]
    shuffled = values[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled, key=message_ts_key) == values


def test_equal_instants_have_equal_keys():
    assert message_ts_key("2025-01-15T10:00:00.1Z") == message_ts_key("2025-01-15T10:00:00.100Z")
    assert message_ts_key("2025-01-15T10:00:00Z") == message_ts_key("2025-01-15T10:00:00.0Z")


@pytest.mark.parametrize(
    ("value", "instant"),
    [
        ("2025-01-15T10:00:00Z", "2025-01-15T10:00:00Z"),
        ("2025-01-15T10:00:00z", "2025-01-15T10:00:00Z"),
        ("2025-01-15T10:00:00", "2025-01-15T10:00:00Z"),  # naive: UTC
        ("2025-01-15", "2025-01-15T00:00:00Z"),
        ("2025-01-15T15:30:00+05:30", "2025-01-15T10:00:00Z"),
        ("2025-01-15T15:30:00+0530", "2025-01-15T10:00:00Z"),
        ("2025-01-15T15:30:00 05:30", "2025-01-15T10:00:00Z"),  # '+' decoded from a URL as ' '
        ("2025-01-15T05:00:00-05:00", "2025-01-15T10:00:00Z"),
        ("2025-01-15T00:30:00+01:00", "2025-01-14T23:30:00Z"),  # crosses midnight
        ("2025-03-01T00:30:00+01:00", "2025-02-28T23:30:00Z"),
        ("2025-01-15T10:00:00.25+00:00", "2025-01-15T10:00:00.25Z"),
        (" 2025-01-15T10:00:00Z ", "2025-01-15T10:00:00Z"),
    ],
)
def test_query_ts_key(value, instant):
    assert query_ts_key(value) == message_ts_key(instant)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "2025-02-30",
        "2025-01-15T25:00:00Z",
        "2025-01-15T10:00:00+24:00",
        "2025-01-15T10:00:00+05:60",
        "2025/01/15",
        "15-01-2025",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:00:00-01:00",
    ],
)
def test_query_ts_key_invalid(value):
    assert query_ts_key(value) is None


def test_now_iso_is_utc_with_z():
    value = now_iso()
    assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z", value)
    assert datetime.fromisoformat(value.replace("Z", "+00:00")).utcoffset() == timedelta(0)
    assert message_ts_key(value) is not None
