"""Retention: purge by hand (``flask purge``) and automatically (RETENTION_DAYS), exact counts
after it, and purged IDs still answered as duplicates."""

import pytest
from helpers import SECRET, stored_row, stored_total

from lyftr import create_app, store
from lyftr.ops import retention

FUTURE = "2100-01-01T00:00:00Z"


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def stats(client):
    return client.get("/stats").get_json()


def test_purge_dry_run_counts_and_changes_nothing(runner, client, send):
    for i in range(3):
        assert send(message_id=f"m{i}").status_code == 200
    result = runner.invoke(args=["purge", "--before", FUTURE, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("would purge 3 messages")
    assert stored_total(client) == 3


def test_purge_removes_from_messages_stats_search_and_feed(runner, client, send):
    for i, sender in enumerate(["+111", "+111", "+222"]):
        assert send(message_id=f"old{i}", text=f"needle {i}", **{"from": sender}).status_code == 200
    feed_before = client.get("/feed").get_json()
    result = runner.invoke(args=["purge", "--before", FUTURE])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("purged 3 messages")
    assert stats(client) == {
        "total_messages": 0,
        "senders_count": 0,
        "messages_per_sender": [],
        "first_message_ts": None,
        "last_message_ts": None,
    }
    assert client.get("/messages?q=needle").get_json()["total"] == 0
    assert client.get("/messages/old0").status_code == 404
    assert client.get("/feed").get_json()["data"] == []

    # Newer messages are kept and counted exactly; their feed positions are new ones.
    assert send(message_id="new", **{"from": "+222"}).status_code == 200
    assert stats(client)["messages_per_sender"] == [{"from": "+222", "count": 1}]
    item = client.get("/feed").get_json()["data"][0]
    assert item["message_id"] == "new"
    assert item["seq"] > feed_before["next_after"]


def test_purge_keeps_what_arrived_after_the_instant(runner, client, send):
    assert send(message_id="m1").status_code == 200
    result = runner.invoke(args=["purge", "--before", "2020-01-01T00:00:00Z"])
    assert result.output.startswith("purged 0 messages")
    assert stored_total(client) == 1


@pytest.mark.parametrize("before", ["yesterday", "2025-13-01", ""])
def test_purge_needs_a_date(runner, before):
    result = runner.invoke(args=["purge", "--before", before])
    assert result.exit_code != 0
    assert "--before" in result.output


def test_a_purged_message_retried_is_a_duplicate(runner, client, send):
    assert send(message_id="m1", text="first").status_code == 200
    runner.invoke(args=["purge", "--before", FUTURE])
    assert send(message_id="m1", text="retried").status_code == 200
    assert stored_total(client) == 0
    # Also in a batch (a WhatsApp redelivery goes through the batch insert).
    with client.application.app_context():
        assert store.insert_batch([stored_row("m1"), stored_row("m2")]) == 1
    assert [m["message_id"] for m in client.get("/messages").get_json()["data"]] == ["m2"]


def test_purged_ids_are_forgotten_after_the_keep_time(app, client, send):
    assert send(message_id="m1").status_code == 200
    with app.app_context():
        assert store.purge(FUTURE, forget_before="2000-01-01T00:00:00Z") == 1
        assert store.purge(FUTURE, forget_before=FUTURE) == 0  # forgets m1's ID
    assert send(message_id="m1").status_code == 200
    assert stored_total(client) == 1


def test_retention_days_purges_by_arrival(make_app):
    app = make_app(RETENTION_DAYS=1, PURGED_IDS_KEEP_DAYS=8)
    with app.app_context():  # no request: the app's own retention thread stays out of the way
        assert store.insert_batch([stored_row("m1")]) == 1
        assert retention.purge_once(app.config) == 0  # arrived just now
        from datetime import UTC, datetime, timedelta

        later = datetime.now(UTC) + timedelta(days=2)
        assert retention.purge_once(app.config, now=later) == 1
        assert store.stats().total == 0


def test_one_purge_at_a_time(app):
    with app.app_context():
        store.sequence()  # the schema exists
        with store.exclusive_purge() as first:
            assert first is True
            other = create_app(dict(app.config, WEBHOOK_SECRET=SECRET))
            with other.app_context(), store.exclusive_purge() as second:
                assert second is False
                assert retention.purge_once(dict(app.config, RETENTION_DAYS=1)) is None
        with store.exclusive_purge() as again:
            assert again is True


@pytest.mark.parametrize(
    ("first", "took_s", "sizes", "pauses"),
    [
        # Each batch held the writer 80 ms: the next ones are as small as allowed (20 rows), and
        # each pause is as long as the hold.
        (40, 0.080, [40, 20, 20], [0.080, 0.080]),
        # Each took 1 ms: they double (at most) toward the 10 ms hold; pauses of 60 ms at least.
        (5, 0.001, [5, 10, 20, 40, 80], [0.06] * 4),
    ],
)
def test_purge_batches_adapt_to_how_long_they_hold_the_writer(
    app, send, monkeypatch, first, took_s, sizes, pauses
):
    for i in range(60):
        assert send(message_id=f"m{i}").status_code == 200
    with app.app_context():
        backend, seen, slept = store.backend(), [], []
        purge_batch = backend.purge

        def spy(before, limit, purged_at):
            seen.append(limit)
            done, _ = purge_batch(before, limit, purged_at)
            return done, took_s  # as if each batch held the writer took_s

        monkeypatch.setattr(backend, "purge", spy)
        monkeypatch.setattr(store, "PURGE_BATCH", first)
        purged = store.purge(FUTURE, sleep=slept.append)
    assert purged == 60
    assert seen == sizes
    assert slept == pytest.approx(pauses)
    assert stored_total(app.test_client()) == 0
