"""POST /webhook: size limit, then signature, then validation, then insert-once."""

import io
import json
import logging

import pytest
from helpers import SECRET, assert_nothing_stored, sample_message, stored_total

from lyftr.providers.signing import sign


def body_of(message):
    return json.dumps(message).encode("utf-8")


def stored_messages(client):
    return client.get("/messages").get_json()["data"]


# --- a valid delivery -------------------------------------------------------------------------


def test_valid_message_is_stored(client, send):
    response = send()
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert stored_messages(client) == [sample_message()]


# --- signature ----------------------------------------------------------------------------------


def test_missing_signature(client):
    response = client.post("/webhook", data=body_of(sample_message()))
    assert response.status_code == 401
    assert response.get_json() == {"detail": "invalid signature"}
    assert_nothing_stored(client)


def test_signature_with_another_secret(client, send):
    body = body_of(sample_message())
    response = send.raw(body, signature=sign("not-the-secret", body))
    assert response.status_code == 401
    assert response.get_json() == {"detail": "invalid signature"}
    assert_nothing_stored(client)


@pytest.mark.parametrize(
    "signature",
    ["", "sha256=", "0" * 64, "z" * 64, "é" * 64, "not a signature"],
)
def test_malformed_signature(client, send, signature):
    response = send.raw(body_of(sample_message()), signature=signature)
    assert response.status_code == 401
    assert response.get_json() == {"detail": "invalid signature"}
    assert_nothing_stored(client)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"\xff\xfe\x00", b"[]", body_of(sample_message(ts="2025-02-30T10:00:00Z"))],
    ids=["invalid-json", "invalid-utf8", "not-an-object", "invalid-field"],
)
def test_signature_checked_before_parsing(client, send, body):
    # An unauthenticated body is never parsed: a bad signature answers 401, not 422.
    response = send.raw(body, signature=sign("not-the-secret", body))
    assert response.status_code == 401
    assert response.get_json() == {"detail": "invalid signature"}
    assert_nothing_stored(client)


def test_signature_of_reserialised_json_is_refused(client, send):
    message = sample_message()
    signed = json.dumps(message, separators=(",", ":")).encode()
    sent = json.dumps(message, indent=2).encode()
    assert json.loads(signed) == json.loads(sent)
    response = send.raw(sent, signature=sign(SECRET, signed))
    assert response.status_code == 401
    assert_nothing_stored(client)


@pytest.mark.parametrize(
    "shape",
    [
        lambda hex_: "sha256=" + hex_,
        lambda hex_: "SHA256=" + hex_,
        lambda hex_: hex_.upper(),
        lambda hex_: "sha256=" + hex_.upper(),
    ],
    ids=["prefixed", "prefix-upper", "upper-hex", "prefixed-upper-hex"],
)
def test_signature_spellings_accepted(client, send, shape):
    body = body_of(sample_message())
    response = send.raw(body, signature=shape(sign(SECRET, body)))
    assert response.status_code == 200
    assert stored_total(client) == 1


def test_previous_secret_accepted_and_logged(make_app, caplog):
    client = make_app(WEBHOOK_SECRET_PREVIOUS="old").test_client()
    body = body_of(sample_message())
    with caplog.at_level(logging.INFO, logger="lyftr.request"):
        response = client.post("/webhook", data=body, headers={"X-Signature": sign("old", body)})
    assert response.status_code == 200
    assert stored_total(client) == 1
    (line,) = [r for r in caplog.records if r.name == "lyftr.request" and r.path == "/webhook"]
    assert line.key == "previous"
    assert line.result == "created"


def test_current_secret_logged_as_current(send, caplog):
    with caplog.at_level(logging.INFO, logger="lyftr.request"):
        assert send().status_code == 200
    (line,) = [r for r in caplog.records if r.name == "lyftr.request" and r.path == "/webhook"]
    assert line.key == "current"


def test_previous_secret_does_not_open_other_keys(make_app):
    client = make_app(WEBHOOK_SECRET_PREVIOUS="old").test_client()
    body = body_of(sample_message())
    response = client.post("/webhook", data=body, headers={"X-Signature": sign("other", body)})
    assert response.status_code == 401
    assert_nothing_stored(client)


def test_empty_previous_secret_is_not_a_key(client, send):
    # WEBHOOK_SECRET_PREVIOUS defaults to "": an HMAC under the empty key must not be accepted.
    body = body_of(sample_message())
    response = send.raw(body, signature=sign("", body))
    assert response.status_code == 401
    assert_nothing_stored(client)


# --- size limit ---------------------------------------------------------------------------------

LIMIT = 64 * 1024


def padded(size, **overrides):
    """A valid, signed-able message body of exactly ``size`` bytes (padded in an unknown field)."""
    message = sample_message(pad="", **overrides)
    base = len(body_of(message))
    message["pad"] = "x" * (size - base)
    body = body_of(message)
    assert len(body) == size
    return body


def test_body_over_limit_is_413(client, send):
    response = send.raw(padded(LIMIT + 1))
    assert response.status_code == 413
    detail = response.get_json()["detail"]
    assert isinstance(detail, str) and detail
    assert_nothing_stored(client)


def test_size_checked_before_signature(client):
    response = client.post("/webhook", data=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert isinstance(response.get_json()["detail"], str)
    assert_nothing_stored(client)


def test_body_at_limit_is_accepted(client, send):
    response = send.raw(padded(LIMIT))
    assert response.status_code == 200
    assert stored_total(client) == 1


def post_chunked(client, body):
    """Post ``body`` the way Gunicorn hands over a chunked request: no length, input terminated."""
    return client.post(
        "/webhook",
        input_stream=io.BytesIO(body),
        headers={"X-Signature": sign(SECRET, body), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_chunked_body_over_limit_is_413(client):
    response = post_chunked(client, padded(LIMIT + 1))
    assert response.status_code == 413
    assert isinstance(response.get_json()["detail"], str)
    assert_nothing_stored(client)


@pytest.mark.parametrize("size", [LIMIT, LIMIT - 1, 200])
def test_chunked_body_within_limit_is_accepted(client, size):
    response = post_chunked(client, padded(size))
    assert response.status_code == 200
    assert stored_total(client) == 1


def test_maximal_valid_message_is_accepted(client, send):
    # 4096 astral-plane characters, each written as a 12-byte surrogate-pair escape.
    text = "\U0001f600" * 4096
    body = body_of(sample_message(text=text))
    assert b"\\ud83d\\ude00" in body
    assert len(body) > 48 * 1024
    response = send.raw(body)
    assert response.status_code == 200
    assert stored_messages(client)[0]["text"] == text


# --- validation ---------------------------------------------------------------------------------

VALID = [
    pytest.param({"text": "x" * 4096}, id="text-4096"),
    pytest.param({"text": None}, id="text-null"),
    pytest.param({"text": ""}, id="text-empty"),
    pytest.param({"from": "+" + "9" * 15}, id="from-15-digits"),
    pytest.param({"to": "+" + "1" * 15}, id="to-15-digits"),
    pytest.param({"from": "+1"}, id="from-1-digit"),
    pytest.param({"ts": "2024-02-29T10:00:00Z"}, id="ts-leap-day"),
    pytest.param({"ts": "2025-01-15T10:00:00.123Z"}, id="ts-millis"),
    pytest.param({"ts": "2025-01-15T10:00:00.123456789Z"}, id="ts-nanos"),
    pytest.param({"ts": "2025-12-31T23:59:59Z"}, id="ts-end-of-year"),
    pytest.param({"message_id": "m" * 256}, id="message-id-256"),
    pytest.param({"message_id": "ünïcødé-ид"}, id="message-id-unicode"),
]


@pytest.mark.parametrize("overrides", VALID)
def test_valid_boundaries(client, send, overrides):
    message = sample_message(**overrides)
    response = send(message)
    assert response.status_code == 200, response.get_json()
    assert stored_messages(client) == [message]


def test_text_missing_is_stored_as_null(client, send):
    message = sample_message()
    del message["text"]
    assert send(message).status_code == 200
    assert stored_messages(client) == [sample_message(text=None)]


INVALID = [
    pytest.param({"text": "x" * 4097}, "text", id="text-4097"),
    pytest.param({"text": 42}, "text", id="text-number"),
    pytest.param({"text": ["a"]}, "text", id="text-list"),
    pytest.param({"from": "+" + "9" * 16}, "from", id="from-16-digits"),
    pytest.param({"to": "+" + "1" * 16}, "to", id="to-16-digits"),
    pytest.param({"from": "+"}, "from", id="from-plus-alone"),
    pytest.param({"from": "919876543210"}, "from", id="from-no-plus"),
    pytest.param({"from": "+\u0669\u0661\u0669"}, "from", id="from-arabic-indic-digits"),
    pytest.param({"from": 919876543210}, "from", id="from-number"),
    pytest.param({"from": "+123\n"}, "from", id="from-trailing-newline"),
    pytest.param({"from": " +123"}, "from", id="from-leading-space"),
    pytest.param({"from": "+1 23"}, "from", id="from-inner-space"),
    pytest.param({"to": None}, "to", id="to-null"),
    pytest.param({"to": "+14155550100\n"}, "to", id="to-trailing-newline"),
    pytest.param({"ts": "2025-02-30T10:00:00Z"}, "ts", id="ts-feb-30"),
    pytest.param({"ts": "2025-02-29T10:00:00Z"}, "ts", id="ts-feb-29-non-leap"),
    pytest.param({"ts": "2025-01-15T10:00:00+00:00"}, "ts", id="ts-offset"),
    pytest.param({"ts": "2025-01-15T10:00:00"}, "ts", id="ts-missing-z"),
    pytest.param({"ts": "2025-01-15t10:00:00z"}, "ts", id="ts-lowercase"),
    pytest.param({"ts": "2025-01-15T10:00:00z"}, "ts", id="ts-lowercase-z"),
    pytest.param({"ts": "2025-01-15t10:00:00Z"}, "ts", id="ts-lowercase-t"),
    pytest.param({"ts": "2025-01-15T25:00:00Z"}, "ts", id="ts-25h"),
    pytest.param({"ts": "2025-01-15T10:60:00Z"}, "ts", id="ts-60min"),
    pytest.param({"ts": "2025-01-15"}, "ts", id="ts-date-only"),
    pytest.param({"ts": "2025-01-15 10:00:00Z"}, "ts", id="ts-space-separator"),
    pytest.param({"ts": "yesterday"}, "ts", id="ts-garbage"),
    pytest.param({"ts": "2025-01-15T10:00:00.Z"}, "ts", id="ts-empty-fraction"),
    pytest.param({"ts": "2025-01-15T10:00:00Z\n"}, "ts", id="ts-trailing-newline"),
    pytest.param({"ts": 1736935200}, "ts", id="ts-number"),
    pytest.param({"message_id": ""}, "message_id", id="message-id-empty"),
    pytest.param({"message_id": 1}, "message_id", id="message-id-number"),
    pytest.param({"message_id": None}, "message_id", id="message-id-null"),
    pytest.param({"message_id": "m" * 257}, "message_id", id="message-id-257"),
    pytest.param({"text": "\ud800"}, "text", id="text-lone-surrogate"),
    pytest.param({"message_id": "\udfff"}, "message_id", id="message-id-lone-surrogate"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID)
def test_invalid_field(client, send, overrides, field):
    message = sample_message(**overrides)
    response = send(message)  # json.dumps writes lone surrogates as \ud800 escapes
    assert response.status_code == 422
    (entry,) = response.get_json()["detail"]
    assert entry["loc"] == ["body", field]
    assert entry["input"] == message[field]
    assert_nothing_stored(client)


@pytest.mark.parametrize("field", ["message_id", "from", "to", "ts"])
def test_required_field_missing(client, send, field):
    message = sample_message()
    del message[field]
    response = send(message)
    assert response.status_code == 422
    (entry,) = response.get_json()["detail"]
    assert entry["loc"] == ["body", field]
    assert entry["type"] == "missing"
    assert_nothing_stored(client)


@pytest.mark.parametrize("body", ["[]", '"x"', "1", "null", "true", '[{"message_id": "m1"}]'])
def test_non_object_body(client, send, body):
    response = send.raw(body)
    assert response.status_code == 422
    (entry,) = response.get_json()["detail"]
    assert entry["loc"] == ["body"]
    assert entry["input"] == json.loads(body)
    assert_nothing_stored(client)


NOT_JSON = [
    pytest.param(b"", id="empty"),
    pytest.param(b"{", id="truncated"),
    pytest.param(b'{"message_id": "m1",}', id="trailing-comma"),
    pytest.param(b"{'message_id': 'm1'}", id="single-quotes"),
    pytest.param(b"hello", id="garbage"),
    # Python's json module reads these, but they are not JSON (RFC 8259), and echoing them back as
    # "input" would make the 422 body itself invalid JSON.
    pytest.param(b"NaN", id="nan"),
    pytest.param(body_of(sample_message())[:-1] + b', "score": -Infinity}', id="infinity-field"),
    pytest.param(b"[" * 5000 + b"]" * 5000, id="deep-nesting"),
]


@pytest.mark.parametrize("body", NOT_JSON)
def test_invalid_json(client, send, body):
    response = send.raw(body)
    assert response.status_code == 422
    (entry,) = response.get_json()["detail"]
    assert entry["loc"] == ["body"]
    assert entry["type"] == "json_invalid"
    assert_nothing_stored(client)


@pytest.mark.parametrize("where", ["body", "text"])
def test_deeply_nested_json_is_422_at_any_depth(client, send, where):
    # Near the interpreter's recursion limit parsing can succeed while echoing "input" back cannot;
    # past it parsing fails. Either way the answer is a 422, never a 500.
    for depth in range(900, 1100, 5):
        nested = "[" * depth + "]" * depth
        if where == "body":
            body = nested
        else:
            body = json.dumps(sample_message(text=None)).replace("null", nested)
        response = send.raw(body)
        assert response.status_code == 422, depth
        assert response.get_json()["detail"][0]["loc"][0] == "body"
    assert_nothing_stored(client)


@pytest.mark.parametrize(
    "body",
    [
        (
            b'{"message_id": "m1", "from": "+1", "to": "+1", "ts": "2025-01-15T10:00:00Z", '
            b'"text": "\xff"}'
        ),
        (
            b'{"message_id": "m1", "from": "+1", "to": "+1", "ts": "2025-01-15T10:00:00Z", '
            b'"text": "\xed\xa0\x80"}'
        ),
        (
            b'{"message_id": "m1", "from": "+1", "to": "+1", "ts": "2025-01-15T10:00:00Z", '
            b'"text": "\xc3"}'
        ),
    ],
    ids=["invalid-byte", "encoded-surrogate", "truncated-sequence"],
)
def test_invalid_utf8(client, send, body):
    response = send.raw(body)
    assert response.status_code == 422
    assert response.get_json()["detail"][0]["loc"] == ["body"]
    assert_nothing_stored(client)


def test_lone_surrogate_escape_is_422_not_500(client, send):
    body = (
        b'{"message_id": "m1", "from": "+1", "to": "+1", "ts": "2025-01-15T10:00:00Z", '
        b'"text": "\\ud800"}'
    )
    response = send.raw(body)
    assert response.status_code == 422
    (entry,) = response.get_json()["detail"]
    assert entry["loc"] == ["body", "text"]
    assert_nothing_stored(client)


def test_unknown_fields_ignored(client, send):
    response = send(sample_message(extra="ignored", nested={"a": [1, 2]}, priority=3))
    assert response.status_code == 200
    assert stored_messages(client) == [sample_message()]


def test_error_shape(client, send):
    response = send(sample_message(**{"from": "0123", "ts": "2025-02-30T10:00:00Z"}))
    assert response.status_code == 422
    assert response.is_json
    detail = response.get_json()["detail"]
    assert isinstance(detail, list)
    assert len(detail) == 2
    for entry in detail:
        assert set(entry) == {"type", "loc", "msg", "input"}
        assert isinstance(entry["type"], str) and entry["type"]
        assert isinstance(entry["msg"], str) and entry["msg"]
    by_loc = {tuple(entry["loc"]): entry for entry in detail}
    assert by_loc.keys() == {("body", "from"), ("body", "ts")}
    assert by_loc["body", "from"]["input"] == "0123"
    assert by_loc["body", "ts"]["input"] == "2025-02-30T10:00:00Z"
    assert_nothing_stored(client)


def test_every_bad_field_reported(client, send):
    message = {"message_id": "", "from": 1, "to": "+", "ts": "nope", "text": "x" * 4097}
    response = send(message)
    assert response.status_code == 422
    locs = sorted(tuple(entry["loc"]) for entry in response.get_json()["detail"])
    assert locs == [("body", f) for f in sorted(["message_id", "from", "to", "ts", "text"])]


# --- insert once --------------------------------------------------------------------------------


def test_duplicate_keeps_first_write(client, send):
    first = sample_message()
    second = sample_message(
        **{
            "from": "+15550001111",
            "to": "+15550002222",
            "ts": "2026-06-01T00:00:00Z",
            "text": "Changed",
        }
    )
    r1, r2 = send(first), send(second)
    assert (r1.status_code, r1.get_json()) == (200, {"status": "ok"})
    assert (r2.status_code, r2.get_json()) == (200, {"status": "ok"})
    assert stored_messages(client) == [first]
    stats = client.get("/stats").get_json()
    assert stats["total_messages"] == 1
    assert stats["senders_count"] == 1
    assert stats["messages_per_sender"] == [{"from": first["from"], "count": 1}]


def test_identical_redelivery_is_ok(client, send):
    for _ in range(3):
        response = send()
        assert (response.status_code, response.get_json()) == (200, {"status": "ok"})
    assert stored_total(client) == 1


def test_distinct_ids_are_distinct_rows(client, send):
    send(message_id="a")
    send(message_id="A")
    send(message_id="a ")
    assert sorted(m["message_id"] for m in stored_messages(client)) == ["A", "a", "a "]


# --- not configured -----------------------------------------------------------------------------


@pytest.fixture
def unconfigured(make_app):
    return make_app(WEBHOOK_SECRET="").test_client()


@pytest.mark.parametrize("key", ["", SECRET])
def test_no_secret_refuses_webhook(unconfigured, key):
    body = body_of(sample_message())
    response = unconfigured.post("/webhook", data=body, headers={"X-Signature": sign(key, body)})
    assert response.status_code == 503
    assert isinstance(response.get_json()["detail"], str)
    assert_nothing_stored(unconfigured)


def test_no_secret_previous_alone_is_not_enough(make_app):
    client = make_app(WEBHOOK_SECRET="", WEBHOOK_SECRET_PREVIOUS="old").test_client()
    body = body_of(sample_message())
    response = client.post("/webhook", data=body, headers={"X-Signature": sign("old", body)})
    assert response.status_code == 503
    assert_nothing_stored(client)


def test_no_secret_health(unconfigured):
    assert unconfigured.get("/health/live").status_code == 200
    response = unconfigured.get("/health/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert "webhook_secret" in body["detail"].lower()
    assert body["checks"]["webhook_secret"] != "ok"
    assert body["checks"]["database"] == "ok"


def test_message_id_with_nul_is_refused(client, send):
    # PostgreSQL cannot store NUL in text: refused alike on every backend, with nothing stored.
    response = send(sample_message(message_id="m\x001"))
    assert response.status_code == 422
    [entry] = response.get_json()["detail"]
    assert entry["loc"] == ["body", "message_id"]
    assert "NUL" in entry["msg"]
    assert_nothing_stored(client)


def test_text_with_nul_is_stored_and_read_back_exactly(client, send):
    text = "before\x00after \uffff end"
    assert send(sample_message(text=text)).status_code == 200
    assert client.get("/messages").get_json()["data"][0]["text"] == text
    for q, found in (("e\x00a", 1), ("\uffff", 1), ("\x00\x00", 0), ("after", 1)):
        assert client.get("/messages", query_string={"q": q}).get_json()["total"] == found, q


@pytest.mark.parametrize(
    "body",
    [
        {"message_id": 1, "from": 2, "to": 3, "ts": 4, "text": 5},
        # Type errors are found before the validators run; the list is still in field order.
        {"message_id": "", "from": "+1", "to": 3, "ts": "nope", "text": 5},
    ],
)
def test_422_detail_is_in_the_order_the_fields_are_declared(send, body):
    response = send(body)
    assert response.status_code == 422
    fields = [entry["loc"][1] for entry in response.get_json()["detail"]]
    expected = [name for name in ("message_id", "from", "to", "ts", "text") if name in fields]
    assert fields == expected and len(fields) >= 3
