"""X-Signature spellings beyond test_webhook.py: only a full sha256 HMAC in hex is a signature.

test_webhook.py covers the accepted spellings (bare, ``sha256=``, upper-case hex), the previous
secret and the key logged; these are the near misses, which must all be 401 and store nothing.
"""

import hashlib
import json
import logging

import pytest
from helpers import SECRET, assert_nothing_stored, sample_message, stored_total

from lyftr.logs import LineFormatter
from lyftr.providers.signing import sign

BODY = json.dumps(sample_message()).encode()
GOOD = sign(SECRET, BODY)
PREVIOUS = "previous-secret-3f9a"
FORMATTER = LineFormatter()


def latin1(text):
    """How a UTF-8 header value reaches the app (WSGI headers are latin-1)."""
    return text.encode("utf-8").decode("latin-1")


NEAR_MISSES = {
    "sha1-prefix": "sha1=" + GOOD,
    "sha512-prefix": "sha512=" + GOOD,
    "colon-separator": "sha256:" + GOOD,
    "double-prefix": "sha256=sha256=" + GOOD,
    "prefix-only-upper": "SHA256=",
    "space-after-prefix": "sha256= " + GOOD[:-1],
    "space-inside": GOOD[:32] + " " + GOOD[32:],
    "space-replaces-a-digit": GOOD[:32] + " " + GOOD[33:],
    "63-chars": GOOD[:-1],
    "65-chars": GOOD + "0",
    "65-chars-leading": "0" + GOOD,
    "prefixed-63-chars": "sha256=" + GOOD[:-1],
    "prefixed-65-chars": "sha256=" + GOOD + "a",
    "one-digit-changed": GOOD[:-1] + ("0" if GOOD[-1] != "0" else "1"),
    "twice": GOOD + GOOD,
    "comma-list": f"sha256={GOOD[::-1]},sha256={GOOD}",
    "base64-not-hex": "sha256=" + "A" * 43 + "=",
    "non-ascii-digit": latin1(GOOD[:-1] + "\uff10"),  # a full-width zero, as UTF-8 bytes
    "non-ascii-appended": latin1(GOOD + "é"),
    "non-ascii-replacing": latin1(GOOD[:-1] + "é"),
    "latin1-replacing": GOOD[:-1] + "\xe9",
    "whitespace-only": " ",
    "hmac-of-empty-body": sign(SECRET, b""),
    "sha256-of-body-without-key": hashlib.sha256(BODY).hexdigest(),
    "hmac-with-secret-as-message": sign("", SECRET.encode()),
}


@pytest.mark.parametrize("signature", NEAR_MISSES.values(), ids=NEAR_MISSES.keys())
def test_near_miss_signature_is_401(client, caplog, signature):
    caplog.set_level(logging.DEBUG)
    response = client.post("/webhook", data=BODY, headers={"X-Signature": signature})
    assert response.status_code == 401
    assert response.mimetype == "application/json"
    assert response.get_json() == {"detail": "invalid signature"}
    assert_nothing_stored(client)
    (record,) = [r for r in caplog.records if r.name == "lyftr.request" and r.path == "/webhook"]
    line = json.loads(FORMATTER.format(record))
    assert (line["level"], line["result"]) == ("ERROR", "invalid_signature")
    assert "key" not in line
    assert GOOD not in caplog.text and SECRET not in caplog.text


@pytest.mark.parametrize(
    "header",
    [
        "sha256=" + GOOD.upper(),
        "Sha256=" + GOOD,
        GOOD.upper(),
        GOOD[:32] + GOOD[32:].upper(),
        f" {GOOD} ",
        f"\t{GOOD}",
    ],
    ids=[
        "prefixed-upper",
        "mixed-case-prefix",
        "upper",
        "mixed-case-hex",
        "spaces-around",
        "tab-before",
    ],
)
def test_case_and_surrounding_whitespace_are_not_part_of_the_signature(client, header):
    # Hex is case-insensitive and HTTP strips optional whitespace around a header value.
    response = client.post("/webhook", data=BODY, headers={"X-Signature": header})
    assert response.status_code == 200
    assert stored_total(client) == 1


def test_only_the_first_x_signature_header_counts(client):
    # Two X-Signature headers: the first one decides; a valid second one does not rescue it.
    response = client.post(
        "/webhook", data=BODY, headers=[("X-Signature", "0" * 64), ("X-Signature", GOOD)]
    )
    assert response.status_code == 401
    assert_nothing_stored(client)


@pytest.fixture
def rotating(make_app):
    """Mid-rotation: the new secret is current, the old one still accepted."""
    return make_app(WEBHOOK_SECRET_PREVIOUS=PREVIOUS).test_client()


def request_line(caplog):
    records = [r for r in caplog.records if r.name == "lyftr.request" and r.path == "/webhook"]
    return json.loads(FORMATTER.format(records[-1]))


@pytest.mark.parametrize(
    ("key", "shape", "logged"),
    [
        (SECRET, lambda hex_: hex_, "current"),
        (SECRET, lambda hex_: "sha256=" + hex_.upper(), "current"),
        (PREVIOUS, lambda hex_: hex_, "previous"),
        (PREVIOUS, lambda hex_: "sha256=" + hex_.upper(), "previous"),
    ],
    ids=["current", "current-prefixed-upper", "previous", "previous-prefixed-upper"],
)
def test_rotation_logs_which_key_signed(rotating, caplog, key, shape, logged):
    caplog.set_level(logging.DEBUG)
    response = rotating.post("/webhook", data=BODY, headers={"X-Signature": shape(sign(key, BODY))})
    assert response.status_code == 200
    line = request_line(caplog)
    assert (line["key"], line["result"]) == (logged, "created")
    # a redelivery under the other key is a duplicate, logged with that key
    other, other_name = (PREVIOUS, "previous") if logged == "current" else (SECRET, "current")
    assert (
        rotating.post("/webhook", data=BODY, headers={"X-Signature": sign(other, BODY)}).status_code
        == 200
    )
    line = request_line(caplog)
    assert (line["key"], line["result"], line["dup"]) == (other_name, "duplicate", True)
    assert stored_total(rotating) == 1
    for secret in (SECRET, PREVIOUS, sign(SECRET, BODY), sign(PREVIOUS, BODY)):
        assert secret not in caplog.text
        assert secret.upper() not in caplog.text


@pytest.mark.parametrize("signature", NEAR_MISSES.values(), ids=NEAR_MISSES.keys())
def test_near_misses_of_the_previous_key_are_401(rotating, signature):
    old = sign(PREVIOUS, BODY)
    response = rotating.post(
        "/webhook", data=BODY, headers={"X-Signature": signature.replace(GOOD, old)}
    )
    assert response.status_code == 401
    assert_nothing_stored(rotating)


def test_same_secret_as_current_and_previous_logs_current(make_app, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_app(WEBHOOK_SECRET_PREVIOUS=SECRET).test_client()
    assert client.post("/webhook", data=BODY, headers={"X-Signature": GOOD}).status_code == 200
    assert request_line(caplog)["key"] == "current"


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
    ],
)
def test_signature_covers_the_raw_bytes_whatever_the_content_type(client, content_type):
    # No form parsing or re-encoding happens before the HMAC: the exact bytes are verified and
    # stored.
    message = sample_message(text="a=1&b=2 é 😀")
    body = json.dumps(message, ensure_ascii=False).encode()
    headers = {"X-Signature": sign(SECRET, body)}
    response = client.post("/webhook", data=body, headers=headers, content_type=content_type)
    assert response.status_code == 200
    assert client.get("/messages").get_json()["data"] == [message]


def test_signed_form_body_is_422_not_500(client):
    body = b"message_id=m1&from=%2B919876543210&to=%2B14155550100&ts=2025-01-15T10%3A00%3A00Z"
    response = client.post(
        "/webhook",
        data=body,
        headers={"X-Signature": sign(SECRET, body)},
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"] == ["body"]
    assert_nothing_stored(client)
