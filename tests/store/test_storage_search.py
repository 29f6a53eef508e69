"""Search, totals and paging at volume.

Every query plan of store.list_messages gives exactly what a plain scan of the rows would (case
folding, literal characters, NUL, order, totals).
"""

import sqlite3
from pathlib import Path

import pytest
from helpers import SECRET, Sender, sample_message

from bench.synthetic import synthetic_messages
from lyftr import create_app, store
from lyftr.store.sqlite import reads as sqlite_reads
from lyftr.timestamps import query_ts_key

SPECIAL_TEXTS = [
    "abc\x00cdefgh hello",
    "\x00\x00",
    "x\x00",
    "NUL\x00 then the rest: quixotic",
    "standin \uffff here",
    "both \x00\uffff",
    "ÉCOLE 100% fun_stuff",
    "Straße STRASSE ß",
    "ﬁne ǅ",
    '"quoted" NEAR/2 AND OR NOT * ^x (a) {b} col:umn',
    "the the the",
    "",
    None,
    "HELLO hello HeLLo",
]

RELEASE_1_0 = Path(__file__).parents[1] / "data" / "lyftr-1.0.sql"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """An app holding 3,000 synthetic messages (bulk) and awkward texts (webhook), and the rows."""
    path = tmp_path_factory.mktemp("search")
    app = create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": f"sqlite:///{path}/app.db"})
    messages = list(synthetic_messages(3000, senders=40, vocabulary=300, seed=21))
    with app.app_context():
        store.bulk_insert(messages, batch_size=1000)
    send = Sender(app.test_client())
    for i, text in enumerate(SPECIAL_TEXTS):
        message = sample_message(
            message_id=f"special-{i:02d}", text=text, ts=f"2025-06-{i + 1:02d}T12:00:00.{i}Z"
        )
        assert send(message).status_code == 200
        messages.append(
            {
                "message_id": message["message_id"],
                "from_msisdn": message["from"],
                "to_msisdn": message["to"],
                "ts": message["ts"],
                "ts_key": f"2025-06-{i + 1:02d}T12:00:00.{i or ''}",
                "text": text,
            }
        )
    messages.sort(key=lambda m: (m["ts_key"], m["message_id"]))
    return app.test_client(), messages


def expected(messages, q=None, sender=None, since=None):
    rows = messages
    if sender is not None:
        rows = [m for m in rows if m["from_msisdn"] == sender]
    if since is not None:
        key = query_ts_key(since)
        rows = [m for m in rows if m["ts_key"] >= key]
    if q:
        rows = [m for m in rows if m["text"] is not None and q.casefold() in m["text"].casefold()]
    return [m["message_id"] for m in rows]


QUERIES = [
    "the",
    "hello",
    "HELLO",
    "quixotic",
    "zeppelin",
    "e",
    "ss",
    "ß",
    "STRASSE",
    "école",
    "%",
    "_",
    "100%",
    "fun_",
    '"',
    '"quoted"',
    "NEAR",
    "AND",
    "*",
    "^x",
    "(a)",
    "col:umn",
    "\x00",
    "c\x00c",
    "\x00\x00",
    "\uffff",
    "n\uffff",
    " \uffff h",
    "efgh",
    "the rest",
    "fine",
    "ǆ",
    "to you",
    "xyzzy",
]


@pytest.mark.parametrize("q", QUERIES)
@pytest.mark.parametrize("offset", [0, 37, 900])
def test_search_pages_and_totals(corpus, q, offset):
    client, messages = corpus
    want = expected(messages, q=q)
    body = client.get("/messages", query_string={"q": q, "offset": offset, "limit": 100}).get_json()
    assert body["total"] == len(want)
    assert [m["message_id"] for m in body["data"]] == want[offset : offset + 100]


@pytest.mark.parametrize("q", ["the", "hello", "quixotic", "e", "\x00", "\uffff"])
def test_search_with_filters(corpus, q):
    client, messages = corpus
    top = client.get("/stats").get_json()["messages_per_sender"][0]["from"]
    for query in (
        {"from": top},
        {"since": "2025-07-01"},
        {"from": top, "since": "2025-03-01T10:00:00Z"},
    ):
        want = expected(messages, q=q, sender=query.get("from"), since=query.get("since"))
        for offset in (0, 60):
            body = client.get(
                "/messages", query_string={**query, "q": q, "offset": offset}
            ).get_json()
            assert body["total"] == len(want), query
            assert [m["message_id"] for m in body["data"]] == want[offset : offset + 50], query


@pytest.mark.parametrize("q", [None, "the", "hello", "quixotic", "\x00"])
def test_cursor_walk_with_search(corpus, q):
    client, messages = corpus
    want = expected(messages, q=q)
    seen, params = [], {"limit": 100, **({"q": q} if q else {})}
    while True:
        body = client.get("/messages", query_string=params).get_json()
        assert body["total"] == len(want)
        seen.extend(m["message_id"] for m in body["data"])
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert seen == want


def test_since_totals(corpus):
    client, messages = corpus
    for since in ("2025-01-01", "2025-06-15", "2025-12-31T23:00:00Z", "2026-01-01"):
        body = client.get("/messages", query_string={"since": since}).get_json()
        assert body["total"] == len(expected(messages, since=since))


@pytest.mark.parametrize("offset", [0, 7, 120, 5000])
def test_newest_first_pages_are_the_list_backwards(corpus, offset):
    client, messages = corpus
    sender = messages[0]["from_msisdn"]
    ids = expected(messages, sender=sender)
    with client.application.app_context():
        page = store.list_messages(limit=25, offset=offset, from_msisdn=sender, newest_first=True)
    assert [row.message_id for row in page.rows] == ids[::-1][offset : offset + 25]
    assert page.total == len(ids)
    assert page.has_more == (len(ids) > offset + 25)
    with client.application.app_context(), pytest.raises(ValueError):
        store.list_messages(limit=1, offset=0, q="hello", newest_first=True)


def test_texts_with_nul_indexed_before_version_1_are_reindexed(tmp_path):
    # A database of lyftr 1.0 (no Alembic history yet): its index held such texts only up to the
    # NUL.
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(RELEASE_1_0.read_text(encoding="utf-8"))
        connection.execute(
            "INSERT INTO messages VALUES ('n1', '+919876543210', '+14155550100', "
            "'2025-01-15T10:00:00Z', '2025-01-15T10:00:00.', 'abc' || char(0) || 'cdefgh', "
            "'2025-01-15T10:00:03.000Z')"
        )
        connection.execute(
            "INSERT INTO messages_fts (rowid, text_folded) "
            "SELECT rowid, 'abc' FROM messages WHERE message_id = 'n1'"
        )
    connection.close()
    again = create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": f"sqlite:///{path}"})
    client = again.test_client()
    for q in ("efg", "abc", "c\x00c"):
        assert client.get("/messages", query_string={"q": q}).get_json()["total"] == 1, q
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 1
    connection.close()


@pytest.mark.parametrize("walk", [True, False], ids=["walk", "fetch-and-sort"])
@pytest.mark.parametrize("q", ["the", "hello", "quixotic", "e", "ss", "%", "NEAR", "xyzzy"])
def test_both_page_plans_agree(corpus, monkeypatch, walk, q):
    client, messages = corpus
    monkeypatch.setattr(sqlite_reads, "walk_is_cheaper", lambda *args: walk)
    want = expected(messages, q=q)
    top = client.get("/stats").get_json()["messages_per_sender"][0]["from"]
    for params in ({"offset": 0}, {"offset": 75}, {"from": top}, {"since": "2025-09-01"}):
        body = client.get("/messages", query_string={"q": q, "limit": 30, **params}).get_json()
        rows = expected(messages, q=q, sender=params.get("from"), since=params.get("since"))
        offset = params.get("offset", 0)
        assert body["total"] == len(rows)
        assert [m["message_id"] for m in body["data"]] == rows[offset : offset + 30]
    assert len(want) == client.get("/messages", query_string={"q": q}).get_json()["total"]
