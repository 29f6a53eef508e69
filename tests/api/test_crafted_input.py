"""Crafted input to the read API is a 422 that says what is wrong, never a 500: cursors deep or
long, integers of thousands of digits, over-long searches; and the strict JSON reader itself."""

import base64
import json

import pytest

from lyftr.api import strict_json
from lyftr.api.schemas import Q_MAX


def cursor_of(raw):
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of(b"[" * 1500),  # RecursionError in json.loads
        cursor_of(json.dumps(["2025-01-15T10:00:00.", "m" * 900]).encode()),  # over 1 KiB
        "A" * 5000,
    ],
    ids=["nested", "long", "very-long"],
)
def test_a_crafted_cursor_is_422(client, send, cursor):
    send()
    response = client.get("/messages", query_string={"cursor": cursor})
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("name", ["offset", "limit"])
def test_an_integer_of_4400_digits_is_422(client, name):
    response = client.get("/messages", query_string={name: "9" * 4400})
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"] == ["query", name]


def test_leading_zeros_do_not_count_against_the_digit_limit(client, send):
    send()
    response = client.get("/messages", query_string={"offset": "0" * 4400 + "1"})
    assert response.status_code == 200 and response.get_json()["offset"] == 1


def test_q_is_limited_to_256_characters(client, send):
    send(text="the " * 100)
    assert client.get("/messages", query_string={"q": "the " * 64}).status_code == 200
    response = client.get("/messages", query_string={"q": "the " * 64 + "x"})
    assert response.status_code == 422
    (detail,) = response.get_json()["detail"]
    assert detail["loc"] == ["query", "q"] and f"at most {Q_MAX} characters" in detail["msg"]


@pytest.mark.parametrize(
    "text",
    ['{"a": 1, "a": 2}', '{"x": {"k": 1, "k": 1}}', "[NaN]", "[1e999]"],
)
def test_strict_json_refuses_what_readers_disagree_on(text):
    with pytest.raises(ValueError):
        strict_json.loads(text)


def test_strict_json_bounds_the_depth_without_recursing():
    deep = "[" * 65 + "]" * 65
    assert strict_json.loads(deep, max_depth=65) is not None
    with pytest.raises(strict_json.TooDeep):
        strict_json.loads(deep, max_depth=64)
    document = current = []
    for _ in range(100_000):  # deeper than any recursive walk could go
        current.append([])
        current = current[0]
    assert strict_json.depth_exceeds(document, 64)


def test_pretty_is_bounded_in_size_and_depth():
    deep = "[" * 900 + "]" * 900
    assert strict_json.pretty(deep, max_chars=10_000) == deep  # as stored, not indented
    shown = strict_json.pretty(json.dumps(["x" * 100_000]), max_chars=1000)
    assert len(shown) < 1100 and "more characters" in shown
    assert strict_json.pretty('{"a": [1]}', max_chars=100) == '{\n  "a": [\n    1\n  ]\n}'
