"""insert_message under concurrency: deliveries queued together are written in one transaction,
each with the outcome it would have had alone."""

import sqlite3
import threading
import time

import pytest
from helpers import SECRET
from sqlalchemy.exc import DBAPIError, OperationalError

from lyftr import create_app, store
from lyftr.api import schemas
from lyftr.store import schema


def message(message_id, sender="+919876543210", text="hello"):
    return schemas.WebhookMessageSchema().load(
        {
            "message_id": message_id,
            "from": sender,
            "to": "+14155550100",
            "ts": "2025-01-15T10:00:00Z",
            "text": text,
        }
    )


@pytest.fixture
def app(tmp_path):
    app = create_app(
        {
            "WEBHOOK_SECRET": SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/app.db",
            "DB_BUSY_TIMEOUT_MS": 2000,
        }
    )
    with app.app_context():
        schema.current().ensure()
    return app


def insert_concurrently(app, messages):
    """Call insert_message for every message at once, from one thread each, while the process's
    write lock is held, so that all of them queue and go into one batch when it is released."""
    outcomes = [None] * len(messages)

    def deliver(i):
        with app.app_context():
            try:
                outcomes[i] = store.insert_message(messages[i])
            except Exception as exc:  # the test looks at it
                outcomes[i] = exc

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(len(messages))]
    writer = app.extensions["lyftr.storage"].writer
    with writer.lock:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(writer.pending) < len(messages):
            assert time.monotonic() < deadline, "deliveries did not queue"
            time.sleep(0.01)
    for thread in threads:
        thread.join(10)
    return outcomes


def rows(app):
    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        found = connection.execute(
            "SELECT message_id, text FROM messages ORDER BY message_id"
        ).fetchall()
        counts = dict(connection.execute("SELECT from_msisdn, count FROM sender_counts").fetchall())
        indexed = connection.execute("SELECT count(*) FROM messages_fts").fetchone()[0]
    connection.close()
    return found, counts, indexed


def test_one_batch_same_outcomes_as_one_by_one(app):
    batch = [
        message("a"),
        message("b", text="second"),
        message("a", text="dup in batch"),
        message("c", sender="+1555", text=None),
        message("d"),
    ]
    outcomes = insert_concurrently(app, batch)
    # The two deliveries of "a" race: whichever queued first is stored, the other is a duplicate.
    assert sorted([outcomes[0], outcomes[2]]) == [False, True]
    assert [outcomes[1], outcomes[3], outcomes[4]] == [True, True, True]
    first_a = "hello" if outcomes[0] else "dup in batch"
    found, counts, indexed = rows(app)
    assert found == [("a", first_a), ("b", "second"), ("c", None), ("d", "hello")]
    assert counts == {"+919876543210": 3, "+1555": 1}
    assert indexed == 3
    with app.app_context():
        assert store.insert_message(message("b")) is False


def test_a_failing_delivery_fails_alone(app):
    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON sender_counts WHEN NEW.from_msisdn = '+666' "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
    connection.close()
    outcomes = insert_concurrently(
        app, [message("ok1"), message("bad", sender="+666"), message("ok2")]
    )
    assert outcomes[0] is True and outcomes[2] is True
    assert isinstance(outcomes[1], DBAPIError)
    found, counts, indexed = rows(app)
    assert [m for m, _ in found] == ["ok1", "ok2"]  # nothing of "bad", not even its row
    assert counts == {"+919876543210": 2}
    assert indexed == 2


@pytest.mark.sqlite_only
def test_waiting_past_the_busy_timeout_is_a_503_and_stores_nothing(make_app):
    app = make_app(DB_BUSY_TIMEOUT_MS=200)
    with app.app_context():
        schema.current().ensure()
    writer = app.extensions["lyftr.storage"].writer
    outcomes = []

    def deliver(message_id):
        with app.app_context():
            try:
                outcomes.append(store.insert_message(message(message_id)))
            except OperationalError as exc:
                outcomes.append(exc)

    with writer.lock:  # held longer than the busy timeout
        threads = [threading.Thread(target=deliver, args=(m,)) for m in ("x", "y")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert len(outcomes) == 2 and all(isinstance(o, OperationalError) for o in outcomes)
    assert writer.pending == []
    assert rows(app)[0] == []
    with app.app_context():  # and the next delivery goes through
        assert store.insert_message(message("x")) is True
