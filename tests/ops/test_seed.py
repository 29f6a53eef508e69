"""Bulk loading: store.bulk_insert and ``flask seed`` leave what the webhook would, faster."""

import contextlib
import json
from collections import Counter

import pytest
from helpers import SECRET, PostgresSchema, Sender, sample_message, stored_row

from bench.synthetic import RARE_WORDS, synthetic_messages
from lyftr import create_app, store
from lyftr.api import schemas
from lyftr.extensions import db
from lyftr.ops import retention


def webhook_body(message):
    """The webhook JSON of a message as bulk_insert takes it."""
    return {
        "message_id": message["message_id"],
        "from": message["from_msisdn"],
        "to": message["to_msisdn"],
        "ts": message["ts"],
        "text": message["text"],
    }


def stored(message):
    """A webhook body as the schema loads it: what insert_message and bulk_insert take."""
    return schemas.WebhookMessageSchema().load(message)


def every_message(client, **filters):
    """All pages of /messages with ``filters``; checks ``total`` against the rows on the way."""
    rows, offset = [], 0
    while True:
        body = client.get(
            "/messages", query_string={**filters, "limit": 100, "offset": offset}
        ).get_json()
        rows.extend(body["data"])
        offset += 100
        if offset >= body["total"]:
            assert len(rows) == body["total"]
            return rows


def derived_tables(app):
    """Everything bulk_insert must keep consistent: counts and the search index, by message."""
    if app.config["DATABASE_URL"].startswith("sqlite"):
        search_sql = (
            "SELECT m.message_id, f.text_folded FROM messages_fts f "
            "JOIN messages m ON m.rowid = f.rowid ORDER BY 1"
        )
        orphans_sql = (
            "SELECT count(*) FROM messages_fts WHERE rowid NOT IN (SELECT rowid FROM messages)"
        )
    else:  # the search column is part of the row: it cannot be orphaned
        search_sql = (
            "SELECT message_id, text_folded FROM messages WHERE text_folded <> '' ORDER BY 1"
        )
        orphans_sql = "SELECT 0"
    with app.app_context(), db.engine.connect() as connection:
        counts = connection.exec_driver_sql(
            "SELECT from_msisdn, count FROM sender_counts ORDER BY 1"
        ).all()
        search = connection.exec_driver_sql(search_sql).all()
        orphans = connection.exec_driver_sql(orphans_sql).scalar()
    return {"counts": counts, "search": search, "orphans": orphans}


@pytest.fixture
def two_apps(backend, tmp_path):
    """One app fed through the webhook one message at a time, one through bulk_insert."""
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            urls = [f"sqlite:///{tmp_path}/one.db", f"sqlite:///{tmp_path}/bulk.db"]
        else:
            urls = [stack.enter_context(PostgresSchema()).url for _ in range(2)]
        apps = [create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": url}) for url in urls]
        yield apps
        for app in apps:
            with app.app_context():
                db.engine.dispose()


def corpus():
    """Synthetic messages plus the awkward cases: duplicates with other content, null and empty
    texts, non-ASCII case, literal % and _, fractional seconds of every width."""
    messages = list(synthetic_messages(200, senders=30, vocabulary=200, seed=7))
    extra = [
        sample_message(message_id="x1", text="ÉCOLE 100% fun_stuff", ts="2025-03-01T10:00:00.5Z"),
        sample_message(message_id="x2", text="", ts="2025-03-01T10:00:00.50Z"),
        sample_message(message_id="x3", text=None, ts="2025-03-01T10:00:00.000001Z"),
        sample_message(message_id="x4", text="Straße ß ǅ ﬁ", ts="2025-03-01T10:00:00Z"),
        sample_message(
            message_id="x1", text="a duplicate: never stored", ts="2025-03-02T10:00:00Z"
        ),
        sample_message(message_id="s7-00000003", text="duplicate of a synthetic message"),
    ]
    return messages + [stored(m) for m in extra] + messages[:20]


def feed_one_by_one(app, messages):
    send = Sender(app.test_client())
    for message in messages:
        assert send(webhook_body(message)).status_code == 200


def test_bulk_insert_matches_the_webhook_one_by_one(two_apps):
    one, bulk = two_apps
    messages = corpus()
    feed_one_by_one(one, messages)
    with bulk.app_context():
        # Small batches: duplicates fall within a batch, across batches and on stored rows.
        assert store.bulk_insert(messages[:100], batch_size=7) == 100
        assert store.bulk_insert(messages[100:], batch_size=64) == 204 - 100

    a, b = one.test_client(), bulk.test_client()
    assert every_message(a) == every_message(b)
    assert len(every_message(b)) == 204
    assert a.get("/stats").get_json() == b.get("/stats").get_json()
    sender = b.get("/stats").get_json()["messages_per_sender"][0]["from"]
    queries = [
        {"from": sender},
        {"since": "2025-06-01"},
        {"since": "2025-03-01T10:00:00.5Z"},
        {"q": "école"},
        {"q": "%"},
        {"q": "_s"},
        {"q": "SS"},
        {"q": "ss"},
        {"q": "fi"},
        {"q": "the"},
        {"q": "hello"},
        {"q": "e"},
        {"q": "duplicate"},
        {"q": "zz"},
        {"from": sender, "q": "o", "since": "2025-02-01"},
    ]
    for query in queries:
        assert every_message(a, **query) == every_message(b, **query), query
    assert derived_tables(one) == derived_tables(bulk)


def test_first_write_wins(app, client, send):
    assert send(sample_message(message_id="m1", text="first")).status_code == 200
    with app.app_context():
        new = store.bulk_insert(
            [
                stored(sample_message(message_id="m1", text="bulk")),
                stored(sample_message(message_id="m2", text="second")),
                stored(sample_message(message_id="m2", text="second again", **{"from": "+1999"})),
            ]
        )
    assert new == 1
    data = client.get("/messages").get_json()["data"]
    assert [(m["message_id"], m["text"]) for m in data] == [("m1", "first"), ("m2", "second")]
    assert client.get("/stats").get_json()["messages_per_sender"] == [
        {"from": sample_message()["from"], "count": 2}
    ]
    assert client.get("/messages", query_string={"q": "again"}).get_json()["total"] == 0
    assert client.get("/messages", query_string={"q": "bulk"}).get_json()["total"] == 0


def test_bulk_insert_twice_adds_nothing(app, client):
    messages = list(synthetic_messages(300, senders=20, seed=1))
    with app.app_context():
        assert store.bulk_insert(messages, batch_size=100) == 300
        before = derived_tables(app)
        assert store.bulk_insert(messages, batch_size=100) == 0
        assert store.bulk_insert(iter(messages[::-1])) == 0
        assert derived_tables(app) == before
    assert client.get("/stats").get_json()["total_messages"] == 300


def test_bulk_insert_empty(app, client):
    with app.app_context():
        assert store.bulk_insert([]) == 0
        assert store.bulk_insert(iter(())) == 0
    assert client.get("/stats").get_json()["total_messages"] == 0


def test_bulk_insert_of_batches_without_any_text(app, client):
    """A batch whose every text is null or empty indexes nothing, and the next batch's texts are
    found by their own messages."""
    blank = [stored(sample_message(message_id=f"b{n}", text=None)) for n in range(3)]
    blank.append(stored(sample_message(message_id="b3", text="")))
    worded = [stored(sample_message(message_id=f"w{n}", text=f"word{n} here")) for n in range(4)]
    with app.app_context():
        assert store.bulk_insert(blank + worded, batch_size=3) == 8
    search = derived_tables(app)["search"]
    assert search == [(f"w{n}", f"word{n} here") for n in range(4)]
    found = client.get("/messages", query_string={"q": "word2"}).get_json()["data"]
    assert [item["message_id"] for item in found] == ["w2"]


def test_a_bulk_load_past_purged_and_stored_rows_numbers_and_indexes_only_the_new(app, client):
    """Rows skipped inside a chunk (purged, already stored, repeated) leave no gap in the feed
    and no search entry; each new row's text is found by its own message."""
    with app.app_context():
        assert store.bulk_insert([stored_row("gone", text="purged words")]) == 1
        assert retention.purge_once({**app.config, "RETENTION_DAYS": 0}) == 1
        assert store.bulk_insert([stored_row("kept", text="kept words")]) == 1
        chunk = [
            stored_row("n1", text="fresh alpha"),
            stored_row("gone", text="purged again"),
            stored_row("kept", text="kept again"),
            stored_row("n2", text="fresh beta"),
            stored_row("n1", text="fresh repeat"),
            stored_row("n3", text=None),
        ]
        assert store.bulk_insert(chunk) == 3
    items = client.get("/feed", query_string={"after": 0}).get_json()["data"]
    assert [(item["seq"], item["message_id"]) for item in items] == [
        (2, "kept"), (3, "n1"), (4, "n2"), (5, "n3"),
    ]  # fmt: skip
    assert derived_tables(app)["search"] == [
        ("kept", "kept words"), ("n1", "fresh alpha"), ("n2", "fresh beta"),
    ]  # fmt: skip
    assert derived_tables(app)["orphans"] == 0
    found = client.get("/messages", query_string={"q": "fresh"}).get_json()["data"]
    assert [(item["message_id"], item["text"]) for item in found] == [
        ("n1", "fresh alpha"), ("n2", "fresh beta"),
    ]  # fmt: skip


@pytest.mark.sqlite_only
def test_bulk_insert_leaves_the_connection_settings_alone(app):
    with app.app_context():
        with db.engine.connect() as connection:
            before = connection.exec_driver_sql("PRAGMA cache_size").scalar()
        store.bulk_insert(list(synthetic_messages(10)))
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == before


def test_webhook_after_bulk_insert(app, client, send):
    with app.app_context():
        store.bulk_insert(list(synthetic_messages(50, senders=5, seed=2)))
    assert send(sample_message(message_id="late", text="after the bulk load")).status_code == 200
    assert send(sample_message(message_id="s2-00000001")).status_code == 200  # a duplicate
    assert client.get("/stats").get_json()["total_messages"] == 51
    assert client.get("/messages", query_string={"q": "BULK LOAD"}).get_json()["total"] == 1


# --- synthetic data -------------------------------------------------------------------------------


def test_synthetic_messages_are_what_the_webhook_stores():
    for message in synthetic_messages(3000, senders=100, vocabulary=500, seed=5):
        body = webhook_body(message)
        assert stored(json.loads(json.dumps(body))) == message


def test_synthetic_messages_are_deterministic():
    first = list(synthetic_messages(500, seed=11))
    assert first == list(synthetic_messages(500, seed=11))
    assert first != list(synthetic_messages(500, seed=12))
    assert len({m["message_id"] for m in first}) == 500


def test_synthetic_messages_look_real():
    messages = list(synthetic_messages(20_000, senders=1000, vocabulary=2000, seed=3))
    senders = Counter(m["from_msisdn"] for m in messages)
    assert 500 <= len(senders) <= 1000
    top = senders.most_common(1)[0][1]
    assert top > 10 * len(messages) / len(senders)  # skewed: a few busy senders
    keys = [m["ts_key"] for m in messages]
    assert keys == sorted(keys)
    assert keys[0] < "2025-01-02" and keys[-1] > "2025-12-30"
    fractional = sum("." in m["ts"] for m in messages)
    assert 0.15 < fractional / len(messages) < 0.35
    texts = [m["text"] for m in messages]
    assert 0 < texts.count(None) < 0.05 * len(texts) and "" in texts
    folded = [t.casefold() for t in texts if t]
    common = sum("hello" in t for t in folded)
    rare = sum(RARE_WORDS[0] in t for t in folded)
    assert common > 0.03 * len(folded)
    assert rare < 0.001 * len(folded)
    assert any(t != t.casefold() for t in texts if t)  # mixed case
    assert any(not t.isascii() for t in texts if t)


# --- flask seed -----------------------------------------------------------------------------------


def test_seed_command(app, client):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["seed", "--count", "2000", "--senders", "50", "--vocabulary", "300", "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    assert "seeded 2000 new messages" in result.output
    stats = client.get("/stats").get_json()
    assert stats["total_messages"] == 2000
    assert 1 < stats["senders_count"] <= 50
    assert sum(s["count"] for s in stats["messages_per_sender"]) < 2000
    expected = list(synthetic_messages(2000, senders=50, vocabulary=300, seed=4))
    word = RARE_WORDS[0]
    matching = [m for m in expected if m["text"] and "hello" in m["text"].casefold()]
    assert client.get("/messages", query_string={"q": "hello"}).get_json()["total"] == len(matching)
    rare = client.get("/messages", query_string={"q": word.upper()}).get_json()["total"]
    assert rare == sum(1 for m in expected if m["text"] and word in m["text"].casefold())

    again = runner.invoke(
        args=["seed", "--count", "2000", "--senders", "50", "--vocabulary", "300", "--seed", "4"]
    )
    assert again.exit_code == 0, again.output
    assert "seeded 0 new messages (2000 skipped: already stored or purged)" in again.output
    assert client.get("/stats").get_json() == stats


def test_seed_command_adds_to_existing_data(app, client, send):
    assert send().status_code == 200
    result = app.test_cli_runner().invoke(args=["seed", "--count", "100", "--seed", "9"])
    assert result.exit_code == 0, result.output
    assert client.get("/stats").get_json()["total_messages"] == 101


@pytest.mark.parametrize("args", [["--count", "-1"], ["--senders", "0"], ["--vocabulary", "1"]])
def test_seed_command_refuses_bad_options(app, args):
    result = app.test_cli_runner().invoke(args=["seed", *args])
    assert result.exit_code != 0
