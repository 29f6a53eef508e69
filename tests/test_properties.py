"""Property-based tests: whatever a client sends, the service answers in the contract's terms.

Each property builds its own app inside the test body (never from a function-scoped fixture under
``@given``): either one app per test, whose counts are checked against what should have been stored
so far, or a fresh temporary database per example where an example must read back exactly what it
wrote. The expectations come from an oracle written from the contract (``is_valid``,
``model_query``), not from the implementation. Random draws hit a given boundary only now and then,
so every boundary value is also run as a plain parametrized case (``test_boundary_mutations``,
``test_query_cases``).
"""

import json
import math
import re
import tempfile
from contextlib import contextmanager
from datetime import datetime

import pytest
from helpers import SECRET
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lyftr import create_app
from lyftr.extensions import db
from lyftr.providers.signing import sign

# No example database (it would be kept in ./.hypothesis): a failure prints its falsifying example.
PROPERTY = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FIELDS = ("message_id", "from", "to", "ts", "text")
ABSENT = object()  # a field left out of the body


# --- the app ---------------------------------------------------------------------------------


def new_app(directory):
    return create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": f"sqlite:///{directory}/app.db"})


@contextmanager
def fresh_client():
    """A test client on a database of its own, removed afterwards."""
    with tempfile.TemporaryDirectory() as directory:
        app = new_app(directory)
        try:
            yield app.test_client()
        finally:
            with app.app_context():
                db.engine.dispose()


def post(client, body, signature=ABSENT):
    headers = {}
    if signature is ABSENT:
        signature = sign(SECRET, body)
    if signature is not None:
        headers["X-Signature"] = signature
    return client.post("/webhook", data=body, headers=headers)


def counts(client):
    """Rows as /messages and /stats see them: (total, total_messages, senders_count)."""
    listed = client.get("/messages")
    stats = client.get("/stats")
    assert listed.status_code == stats.status_code == 200
    return (
        listed.get_json()["total"],
        stats.get_json()["total_messages"],
        stats.get_json()["senders_count"],
    )


def assert_json_error(response, status, location):
    assert response.status_code == status, (response.status_code, response.get_data())
    assert response.is_json
    detail = response.get_json()["detail"]
    assert isinstance(detail, list) and detail
    for entry in detail:
        assert set(entry) >= {"type", "loc", "msg", "input"}
        assert entry["loc"][0] == location


# --- an oracle written from the contract (and docs/api.md's documented bounds) -----------------

MSISDN = re.compile(r"\+[0-9]{1,15}")
TS = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,9})?Z"
)
MESSAGE_ID_MAX = 256  # docs/api.md: message_id is 1-256 characters
TEXT_MAX = 4096


def _strict(constant):
    raise ValueError(constant)


def _finite(literal):
    value = float(literal)
    if math.isinf(value):
        raise ValueError(literal)
    return value


def parse_json(body):
    """The JSON value of ``body``, or ABSENT if it is not JSON.

    JSON as in RFC 8259: UTF-8, no NaN/Infinity.
    """
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_strict, parse_float=_finite)
    except (ValueError, RecursionError):
        return ABSENT


def utf8_string(value):
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def valid_ts(value):
    match = TS.fullmatch(value)
    if match is None:
        return False
    try:
        datetime(*map(int, match.groups()))
    except ValueError:  # Feb 30, 24:00, a leap second, year 0 ...
        return False
    return True


def is_valid(payload):
    if not isinstance(payload, dict):
        return False
    for field in ("message_id", "from", "to", "ts"):
        if not utf8_string(payload.get(field)):
            return False
    text = payload.get("text")
    return (
        1 <= len(payload["message_id"]) <= MESSAGE_ID_MAX
        and "\x00" not in payload["message_id"]
        and MSISDN.fullmatch(payload["from"]) is not None
        and MSISDN.fullmatch(payload["to"]) is not None
        and valid_ts(payload["ts"])
        and (text is None or (utf8_string(text) and len(text) <= TEXT_MAX))
    )


# --- strategies --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)

msisdns = st.from_regex(r"\+[0-9]{1,15}", fullmatch=True)
fractions = st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True))
valid_timestamps = st.builds(
    lambda moment, fraction: moment.isoformat(timespec="seconds") + fraction + "Z",
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    fractions,
)
emoji = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
unicode_text = st.text(st.characters(codec="utf-8"), max_size=40)  # no surrogates, any plane
valid_texts = st.one_of(
    st.none(), st.just(ABSENT), st.text(max_size=60), st.text(emoji, max_size=20)
)

valid_messages = st.fixed_dictionaries(
    {
        "message_id": st.one_of(
            st.text(min_size=1, max_size=40), st.text(emoji, min_size=1, max_size=10)
        ),
        "from": msisdns,
        "to": msisdns,
        "ts": valid_timestamps,
        "text": valid_texts,
    }
)

wrong_types = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
lone_surrogates = st.builds(
    lambda prefix, surrogate: prefix + surrogate,
    st.text(max_size=5),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
)
ts_like = st.from_regex(
    r"[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,3}[Tt ]?[0-9]{2}:[0-9]{2}(:[0-9]{2})?(\.[0-9]{0,11})?"
    r"(Z|z|\+00:00|-05:30|)",
    fullmatch=True,
)
BOUNDARIES = {
    "message_id": [
        "",
        " ",
        "x" * MESSAGE_ID_MAX,
        "x" * (MESSAGE_ID_MAX + 1),
        "😀" * MESSAGE_ID_MAX,
        "😀" * (MESSAGE_ID_MAX + 1),
        "\x00",
        "null",
    ],
    "from": [
        "+",
        "+1",
        "+" + "9" * 15,
        "+" + "9" * 16,
        "9" * 10,
        "++1",
        "+1 ",
        " +1",
        "+1\n",
        "+١٢٣",
        "+１２３",
        "",
        "+0",
    ],
    "ts": [
        "2025-02-28T10:00:00Z",
        "2025-02-29T10:00:00Z",
        "2024-02-29T23:59:59.999999999Z",
        "2025-02-30T10:00:00Z",
        "2025-01-15T24:00:00Z",
        "2025-01-15T23:59:60Z",
        "2025-01-15T10:00:00.1234567890Z",
        "2025-01-15T10:00:00.Z",
        "2025-01-15T10:00:00z",
        "2025-01-15t10:00:00Z",
        "2025-01-15T10:00:00+00:00",
        "2025-01-15 10:00:00Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
        "2025-01-15",
        "",
        "2025-01-15T10:00:00Z ",
        "２０２５-01-15T10:00:00Z",
    ],
    "text": [
        "",
        "a" * TEXT_MAX,
        "a" * (TEXT_MAX + 1),
        "😀" * TEXT_MAX,
        "😀" * (TEXT_MAX + 1),
        "é" * TEXT_MAX,
        "\x00",
        "%_",
        "<script>",
    ],
}
BOUNDARIES["to"] = BOUNDARIES["from"]


@st.composite
def near_valid_messages(draw):
    """A valid message with at most one field replaced by something nearby or something wrong."""
    message = draw(valid_messages)
    field = draw(st.sampled_from(FIELDS + ("none",)))
    if field == "none":
        return message
    replacements = [
        wrong_types,
        st.sampled_from(BOUNDARIES[field]),
        st.text(max_size=30),
        unicode_text,
        st.text(emoji, max_size=10),
        ts_like,
        lone_surrogates,
        st.just(ABSENT),
    ]
    if field == "ts":
        replacements += [
            valid_timestamps,
            st.builds(lambda ts, zone: ts[:-1] + zone, valid_timestamps, st.text(max_size=2)),
        ]
    message[field] = draw(st.one_of(replacements))
    return message


def encode(message, ensure_ascii):
    present = {k: v for k, v in message.items() if v is not ABSENT}
    # surrogatepass: a lone surrogate written raw is invalid UTF-8, as a JSON escape it is valid
    # JSON.
    return json.dumps(present, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


def expected_row(message):
    row = {k: v for k, v in message.items() if k in FIELDS}
    if row.get("text", ABSENT) is ABSENT:
        row["text"] = None
    return row


# --- POST /webhook: arbitrary bytes ------------------------------------------------------------

byte_bodies = st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda tail: b'{"message_id": "m1", "from": ' + tail, st.binary(max_size=200)),
    st.builds(lambda text: text.encode("utf-8"), st.text(max_size=200)),
)
# Header values a client can send: no line breaks; werkzeug sends them as latin-1.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
)


@st.composite
def bad_signatures(draw, body):
    good = sign(SECRET, body)
    return draw(
        st.one_of(
            st.none(),
            header_text,
            st.just(sign("not-" + SECRET, body)),
            st.just(sign("", body)),
            st.binary(max_size=50)
            .filter(lambda other: other != body)
            .map(lambda other: sign(SECRET, other)),
            st.just(good[:-1]),
            st.just(good + "0"),
            st.just("sha1=" + good),
            st.integers(0, 63).map(
                lambda i: good[:i] + ("0" if good[i] != "0" else "1") + good[i + 1 :]
            ),
        )
    )


def test_arbitrary_bytes(tmp_path):
    client = new_app(tmp_path).test_client()
    stored, senders = set(), set()

    @PROPERTY
    @given(data=st.data(), body=byte_bodies, signed=st.booleans())
    def check(data, body, signed):
        if signed:
            response = post(client, body)
            payload = parse_json(body)
            if is_valid(payload):  # not expected from random bytes, but then it must be stored
                assert response.status_code == 200
                stored.add(payload["message_id"])
                senders.add(payload["from"])
            else:
                assert_json_error(response, 422, "body")
        else:
            response = post(client, body, data.draw(bad_signatures(body)))
            assert response.status_code == 401, response.get_data()
            assert response.get_json() == {"detail": "invalid signature"}
        assert counts(client) == (len(stored), len(stored), len(senders))

    check()


# --- POST /webhook: arbitrary JSON values --------------------------------------------------------

json_bodies = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=7),
    valid_messages.flatmap(
        lambda m: st.fixed_dictionaries(
            {k: st.just(v) for k, v in m.items()}, optional={"extra": json_values}
        )
    ),
)


def test_arbitrary_json(tmp_path):
    client = new_app(tmp_path).test_client()
    stored, senders = set(), set()

    @PROPERTY
    @given(value=json_bodies, ensure_ascii=st.booleans())
    def check(value, ensure_ascii):
        body = (
            encode(value, ensure_ascii) if isinstance(value, dict) else json.dumps(value).encode()
        )
        response = post(client, body)
        payload = json.loads(body)
        if is_valid(payload):
            assert response.status_code == 200, response.get_json()
            assert response.get_json() == {"status": "ok"}
            if payload["message_id"] not in stored:  # the first write wins
                stored.add(payload["message_id"])
                senders.add(payload["from"])
        else:
            assert_json_error(response, 422, "body")
        assert counts(client) == (len(stored), len(stored), len(senders))

    check()


# --- POST /webhook: near-valid messages, read back exactly --------------------------------------


def check_delivery(client, message, ensure_ascii=True):
    """Post ``message`` to an empty database: 200 iff valid, and then read back exactly as sent."""
    body = encode(message, ensure_ascii)
    payload = parse_json(body)
    response = post(client, body)
    if not is_valid(payload):
        assert_json_error(response, 422, "body")
        assert counts(client) == (0, 0, 0)
        return
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "ok"}
    listed = client.get("/messages").get_json()
    assert listed["total"] == 1
    assert listed["data"] == [expected_row(message)]
    stats = client.get("/stats").get_json()
    assert stats["first_message_ts"] == stats["last_message_ts"] == message["ts"]
    assert stats["messages_per_sender"] == [{"from": message["from"], "count": 1}]
    # a redelivery of anything under the same message_id changes nothing
    other = dict(message, text="changed", ts="2030-01-01T00:00:00Z")
    assert post(client, encode(other, True)).status_code == 200
    assert client.get("/messages").get_json()["data"] == [expected_row(message)]


@PROPERTY
@given(message=near_valid_messages(), ensure_ascii=st.booleans())
def test_near_valid_messages(message, ensure_ascii):
    with fresh_client() as client:
        check_delivery(client, message, ensure_ascii)


# Random draws reach a given boundary only now and then: every one of them, every run.
WRONG_TYPES = [None, 0, 1, -1, 1.5, 0.0, True, False, [], ["m1"], {}, {"a": 1}]
MUTATIONS = [
    (field, value)
    for field in FIELDS
    for value in BOUNDARIES[field] + WRONG_TYPES + [ABSENT, "\ud83d", "x\udc00"]
]


# Written both ways where that differs: \u escapes, or raw UTF-8 (invalid for a lone surrogate).
MUTATION_CASES = [
    (field, value, ensure_ascii)
    for field, value in MUTATIONS
    for ensure_ascii in (
        (True, False) if isinstance(value, str) and not value.isascii() else (True,)
    )
]


@pytest.mark.parametrize(
    ("field", "value", "ensure_ascii"),
    MUTATION_CASES,
    ids=[f"{field}-{i}" for i, (field, _, _) in enumerate(MUTATION_CASES)],
)
def test_boundary_mutations(client, field, value, ensure_ascii):
    message = {
        "message_id": "m1",
        "from": "+919876543210",
        "to": "+14155550100",
        "ts": "2025-01-15T10:00:00Z",
        "text": "Hello 😀",
    }
    message[field] = value
    check_delivery(client, message, ensure_ascii)


# --- GET /messages: arbitrary query strings -------------------------------------------------------

PARAMS = ("limit", "offset", "from", "since", "q", "cursor")
SEED = [
    {
        "message_id": "a",
        "from": "+919876543210",
        "to": "+14155550100",
        "ts": "2025-01-15T10:00:00Z",
        "text": "Hello",
    },
    {
        "message_id": "b",
        "from": "+14155550100",
        "to": "+919876543210",
        "ts": "2025-01-15T09:00:00Z",
        "text": 'ÉCOLE 100% _done_ "quoted" NEAR* ^x',
    },
    {
        "message_id": "c",
        "from": "+919876543210",
        "to": "+14155550100",
        "ts": "2025-01-16T00:00:00Z",
        "text": None,
    },
    {
        "message_id": "d",
        "from": "+447700900123",
        "to": "+14155550100",
        "ts": "2025-01-15T10:00:00Z",
        "text": "emoji 😀 and ß straße",
    },
]

QUERY_SAMPLES = [
    "",
    " ",
    "+919876543210",
    " 919876543210",
    "919876543210",
    "+14155550100",
    "+4477",
    "+",
    "2025-01-15",
    "2025-01-15T10:00:00Z",
    "2025-01-15T10:00:00+05:30",
    "2025-01-15T10:00:00 05:30",
    "2025-02-30",
    "école",
    "ÉCOLE",
    "%",
    "_",
    "100%",
    "_done_",
    '"',
    '"quoted"',
    "*",
    "NEAR*",
    "^x",
    "ß",
    "SS",
    "strasse",
    "STRASSE",
    "😀",
    "hello",
    "HeLLo",
    "lo",
    "o",
    "a",
    "\x00",
    "1e3",
    "1.5",
    "٣",
    "00",
    "0",
    "100",
    "101",
    "0100",
    "+5",
    " 5",
]
query_values = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec="utf-8"), max_size=10),
    st.integers(-5, 150).map(str),
    st.sampled_from(QUERY_SAMPLES),
    ts_like,
)
query_strings = st.dictionaries(
    st.sampled_from(PARAMS) | st.text(max_size=8),
    query_values | st.lists(query_values, max_size=3),
    max_size=6,
)


def first(value):
    if isinstance(value, list):
        return value[0] if value else ABSENT
    return value


def model_query(params):
    """For a query without ``since`` and ``cursor``: (the invalid parameters, None), or
    (set(), (the matching SEED rows in order, limit, offset))."""
    limit, offset = params.get("limit", "50"), params.get("offset", "0")
    sender, q = params.get("from"), params.get("q") or None
    if sender is not None and sender.startswith(" "):
        sender = "+" + sender[1:]
    invalid = {
        "limit": not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 100),
        "offset": not (offset.isascii() and offset.isdigit()),
        "from": sender is not None and MSISDN.fullmatch(sender) is None,
    }
    if any(invalid.values()):
        return {name for name, bad in invalid.items() if bad}, None
    rows = sorted(SEED, key=lambda m: (m["ts"], m["message_id"]))
    if sender is not None:
        rows = [m for m in rows if m["from"] == sender]
    if q is not None:
        rows = [m for m in rows if m["text"] is not None and q.casefold() in m["text"].casefold()]
    return set(), (rows, int(limit), int(offset))


def check_query(client, query):
    """GET /messages with ``query`` against the SEED database: 200 or 422, and the model's rows."""
    response = client.get("/messages", query_string=query)
    assert response.status_code in (200, 422), (response.status_code, response.get_data())
    assert response.is_json
    body = response.get_json()
    params = {k: first(v) for k, v in query.items() if first(v) is not ABSENT}
    if response.status_code == 422:
        assert_json_error(response, 422, "query")
        for entry in body["detail"]:
            assert entry["loc"][1] in params and entry["loc"][1] in PARAMS
    else:
        assert {"data", "total", "limit", "offset"} <= body.keys()
        assert len(body["data"]) <= body["limit"] <= 100 and body["total"] >= 0
    if "since" in params or "cursor" in params:
        return
    bad, expected = model_query(params)
    if bad:
        assert response.status_code == 422
        assert {entry["loc"][1] for entry in body["detail"]} == bad
        return
    assert response.status_code == 200, body
    rows, limit, offset = expected
    assert (body["total"], body["limit"], body["offset"]) == (len(rows), limit, offset)
    assert body["data"] == rows[offset : offset + limit]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """One app holding SEED for every query case (they only read)."""
    app = new_app(tmp_path_factory.mktemp("seeded"))
    client = app.test_client()
    for message in SEED:
        assert post(client, json.dumps(message).encode()).status_code == 200
    yield client
    with app.app_context():
        db.engine.dispose()


@PROPERTY
@given(query=query_strings)
def test_arbitrary_query_strings(seeded, query):
    check_query(seeded, query)


QUERY_CASES = (
    [{"q": value} for value in QUERY_SAMPLES]
    + [{"from": value} for value in QUERY_SAMPLES]
    + [{"limit": value} for value in QUERY_SAMPLES + ["1", "2", "99", "-1"]]
    + [{"offset": value} for value in QUERY_SAMPLES + ["1", "3", "4", "5", "-1"]]
    + [
        {"q": "o", "from": " 919876543210", "limit": "1", "offset": "1"},
        {"q": "ÉCOLE", "limit": "0", "offset": "x", "from": "1"},
        {"q": "%", "limit": ["1", "x"]},
        {"limit": []},
        {"LIMIT": "0", "Q": "x", "unknown": ""},
    ]
)


@pytest.mark.parametrize("query", QUERY_CASES, ids=[str(i) for i in range(len(QUERY_CASES))])
def test_query_cases(seeded, query):
    check_query(seeded, query)
