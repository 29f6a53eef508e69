"""GET /feed: every stored message once, in commit order, with long polling."""

import threading
import time

import pytest
from helpers import SECRET, Sender, sample_message

from lyftr import create_app


def consume(client, after=0, limit=1000):
    """Follow the feed from ``after`` to its end; return the message IDs and the last next_after."""
    seen = []
    while True:
        page = client.get("/feed", query_string={"after": after, "limit": limit}).get_json()
        seen += [item["message_id"] for item in page["data"]]
        if not page["data"]:
            assert page["next_after"] == after
            return seen, after
        assert page["next_after"] == page["data"][-1]["seq"]
        after = page["next_after"]


def test_empty_feed(client):
    assert client.get("/feed").get_json() == {"data": [], "next_after": 0}
    assert client.get("/feed?after=42").get_json() == {"data": [], "next_after": 42}


def test_items_are_full_records_in_arrival_order(client, send):
    # ts order is not arrival order: the feed follows arrival.
    for message_id, ts in (("late", "2025-01-01T00:00:00Z"), ("early", "2024-01-01T00:00:00Z")):
        assert send(message_id=message_id, ts=ts).status_code == 200
    page = client.get("/feed").get_json()
    assert [item["message_id"] for item in page["data"]] == ["late", "early"]
    first = page["data"][0]
    assert first == {
        **sample_message(message_id="late", ts="2025-01-01T00:00:00Z"),
        "seq": first["seq"],
        "provider": "webhook",
        "type": "text",
        "received_at": first["received_at"],
        "raw": None,
        # The normalized record: a contract message has none of the providers' extras.
        "channel": "webhook",
        "sender_name": None,
        "media": None,
        "location": None,
        "reply_to": None,
        "reactions": [],
        "edited_at": None,
        "revoked_at": None,
    }
    assert 0 < first["seq"] < page["data"][1]["seq"] == page["next_after"]
    assert client.get("/messages/late").get_json() == first


def test_paging_with_next_after_sees_each_message_once(client, send):
    for i in range(25):
        assert send(message_id=f"m{i:02d}").status_code == 200
    seen, last = consume(client, limit=7)
    assert seen == [f"m{i:02d}" for i in range(25)]
    assert send(message_id="m25").status_code == 200
    assert send(message_id="m00").status_code == 200  # a duplicate is not a new item
    assert consume(client, after=last)[0] == ["m25"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("after=-1", "after"),
        ("after=x", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("wait=31", "wait"),
        ("wait=-1", "wait"),
        ("wait=0.5", "wait"),
    ],
)
def test_bad_values_are_422(client, query, name):
    response = client.get(f"/feed?{query}")
    assert response.status_code == 422
    assert [entry["loc"] for entry in response.get_json()["detail"]] == [["query", name]]


def test_token_rule_is_the_messages_rule(make_app):
    client = make_app(API_TOKEN="t0ken").test_client()
    assert client.get("/feed").status_code == 401
    assert client.get("/feed", headers={"Authorization": "Bearer t0ken"}).status_code == 200


def test_long_poll_answers_soon_after_a_commit(app, client, send):
    outcome = {}

    def poll():
        started = time.monotonic()
        outcome["page"] = client.get("/feed?wait=10").get_json()
        outcome["answered"] = time.monotonic()
        outcome["started"] = started

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.5)
    assert "page" not in outcome  # nothing yet: it waits
    committed = time.monotonic()
    assert Sender(app.test_client())(message_id="wake").status_code == 200
    waiter.join(10)
    assert [item["message_id"] for item in outcome["page"]["data"]] == ["wake"]
    assert outcome["answered"] - committed < 1.0


def test_long_poll_is_woken_by_a_commit_of_another_app(make_app, backend, monkeypatch):
    # Two apps on one database, as two hosts: B's commit wakes A's long poll. On PostgreSQL the
    # wake is B's NOTIFY (the fallback poll is set beyond the wait, so nothing else could answer
    # before the wait is over); on SQLite (one host) it is the 100 ms poll.
    from lyftr.store import commit_signal

    monkeypatch.setattr(commit_signal, "FALLBACK_POLL_S", 60)
    reader, writer = make_app(), make_app()
    signal = reader.extensions["lyftr.storage"].commit_signal
    outcome = {}

    def poll():
        outcome["page"] = reader.test_client().get("/feed?wait=30").get_json()
        outcome["answered"] = time.monotonic()

    waiter = threading.Thread(target=poll)
    waiter.start()
    deadline = time.monotonic() + 10
    while backend == "postgres" and not signal._listening and time.monotonic() < deadline:
        time.sleep(0.01)  # the reader's listener is up (it starts with the first wait)
    time.sleep(0.2)
    assert "page" not in outcome
    seen = signal.seen()
    committed = time.monotonic()
    assert Sender(writer.test_client())(message_id="from-b").status_code == 200
    waiter.join(30)
    assert [item["message_id"] for item in outcome["page"]["data"]] == ["from-b"]
    assert outcome["answered"] - committed < 5  # long before the 30 s wait is over
    if backend == "postgres":
        assert signal.seen() > seen


def test_long_poll_answers_empty_at_wait(client):
    started = time.monotonic()
    assert client.get("/feed?after=0&wait=1").get_json() == {"data": [], "next_after": 0}
    assert 0.9 < time.monotonic() - started < 3


def test_concurrent_writers_and_a_consumer_exactly_once(database_url):
    # Writers in threads, each with its own app (as workers would be), while a consumer follows.
    apps = [create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": database_url}) for _ in range(3)]
    sent = [f"w{w}-{i}" for w in range(3) for i in range(40)]

    def write(w):
        send = Sender(apps[w].test_client())
        for i in range(40):
            # A busy database answers 503 and the sender retries, as providers do.
            for _attempt in range(20):
                status = send(message_id=f"w{w}-{i}").status_code
                if status != 503:
                    break
                time.sleep(0.05)
            assert status == 200

    writers = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    for writer in writers:
        writer.start()
    reader = apps[0].test_client()
    seen, after = [], 0
    while any(writer.is_alive() for writer in writers):
        response = reader.get("/feed", query_string={"after": after, "limit": 5})
        if response.status_code == 503:  # busy: a consumer tries again too
            continue
        page = response.get_json()
        seen += [item["message_id"] for item in page["data"]]
        after = page["next_after"]
        time.sleep(0.005)
    for writer in writers:
        writer.join()
    seen += consume(reader, after=after)[0]
    assert len(seen) == len(set(seen)) == len(sent)
    assert set(seen) == set(sent)


def test_a_slow_commit_is_not_skipped(app, client, send, backend):
    # PostgreSQL: writers commit in any order. A delivery whose transaction stays open (its
    # sender's count row is locked) while later ones commit must still reach the consumer, after
    # them, and exactly once.
    if backend != "postgres":
        pytest.skip("SQLite has one writer at a time: no commit can overtake another")
    from sqlalchemy import text

    from lyftr.extensions import db

    slow_sender = "+15550000001"
    assert send(message_id="x0", **{"from": slow_sender}).status_code == 200
    with app.app_context():
        locker = db.engine.connect()
    lock = locker.begin()
    locker.execute(
        text("SELECT count FROM sender_counts WHERE from_msisdn = :s FOR UPDATE"),
        {"s": slow_sender},
    )
    answers = {}
    slow = threading.Thread(
        target=lambda: answers.update(
            slow=Sender(app.test_client())(message_id="slow", **{"from": slow_sender}).status_code
        )
    )
    slow.start()
    time.sleep(0.5)  # its row is inserted, its transaction waits on the lock
    assert "slow" not in answers
    for i in range(3):
        assert send(message_id=f"fast{i}").status_code == 200
    seen, after = consume(client)
    assert seen == ["x0", "fast0", "fast1", "fast2"]

    lock.rollback()
    locker.close()
    slow.join(10)
    assert answers == {"slow": 200}
    assert consume(client, after=after)[0] == ["slow"]
    assert consume(client)[0] == ["x0", "fast0", "fast1", "fast2", "slow"]


def test_a_bulk_load_is_numbered_as_written_after_what_was_waiting(app, client, send):
    from bench.synthetic import synthetic_messages
    from lyftr import store

    assert send(message_id="before-1").status_code == 200
    assert send(message_id="before-2").status_code == 200
    with app.app_context():
        assert store.bulk_insert(synthetic_messages(5, seed=7), batch_size=2) == 5
        # Nothing is left for a reader to number: a feed read after a big import stays cheap.
        assert store.sequence() == 0
    seen, _ = consume(client)
    assert seen[:2] == ["before-1", "before-2"]
    assert sorted(seen[2:]) == [f"s7-{i:08d}" for i in range(5)]


def test_rows_a_bulk_load_skips_take_no_feed_position(app, client):
    from bench.synthetic import synthetic_messages
    from lyftr import store

    first, later = list(synthetic_messages(3, seed=3)), list(synthetic_messages(4, seed=3))[3:]
    with app.app_context():
        assert store.bulk_insert(first) == 3
        assert store.bulk_insert(first) == 0  # a no-op re-import
        # Old and new mixed, a repeat inside the batch: only the new row is numbered.
        assert store.bulk_insert([first[1], later[0], later[0], first[0]]) == 1
    items = client.get("/feed", query_string={"after": 0}).get_json()["data"]
    assert [item["seq"] for item in items] == [1, 2, 3, 4]
    assert items[-1]["message_id"] == later[0]["message_id"]
