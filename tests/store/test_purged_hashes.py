"""Purged IDs remembered as 8-byte hashes, by default for ever: a captured delivery replayed
any time after its message was purged is a duplicate, through every way in; the IDs an older
database remembered are kept through the migration."""

from datetime import UTC, datetime, timedelta

import pytest
from helpers import POSTGRES_URL, SECRET, Sender, sample_message, stored_row, stored_total
from sqlalchemy import text

from lyftr import create_app, store
from lyftr.extensions import db
from lyftr.ops import retention
from lyftr.store import sql

FUTURE = "2100-01-01T00:00:00Z"
IDS = ["m1", "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=", "é/ü 🙂", "x" * 256]


def test_a_replay_years_after_the_purge_is_a_duplicate(make_app):
    # The settings retention runs with; the app itself has none, so no retention thread of its
    # own outlives the test (and its database).
    app = make_app()
    settings = {**app.config, "RETENTION_DAYS": 1}
    assert settings["PURGED_IDS_KEEP_DAYS"] is None  # unset: remembered for ever
    with app.app_context():
        assert store.insert_message(stored_row("m1"))
        years_later = datetime.now(UTC) + timedelta(days=3650)
        assert retention.purge_once(settings, now=years_later) == 1
        assert retention.purge_once(settings, now=years_later + timedelta(days=3650)) == 0
    client = app.test_client()
    send = Sender(client)
    assert send(sample_message(message_id="m1")).status_code == 200  # the captured request
    assert stored_total(client) == 0
    with app.app_context():
        assert store.insert_batch([stored_row("m1"), stored_row("m2")]) == 1
        assert store.bulk_insert([stored_row("m1"), stored_row("m3")]) == 1
    assert sorted(m["message_id"] for m in client.get("/messages").get_json()["data"]) == [
        "m2",
        "m3",
    ]


def test_each_purged_id_is_one_8_byte_hash(app, send):
    for message_id in IDS:
        assert send(message_id=message_id).status_code == 200
    with app.app_context():
        assert store.purge(FUTURE) == len(IDS)
        with db.engine.connect() as connection:
            remembered = connection.execute(text("SELECT hash FROM purged_hashes")).scalars()
            assert sorted(remembered) == sorted(sql.id_hash(i) for i in IDS)
    assert all(-(2**63) <= sql.id_hash(i) < 2**63 for i in IDS)


def test_forgetting_after_a_configured_time_still_works(make_app):
    app = make_app()
    settings = {**app.config, "RETENTION_DAYS": 1, "PURGED_IDS_KEEP_DAYS": 8}
    send = Sender(app.test_client())
    with app.app_context():
        assert store.insert_message(stored_row("m1"))
        now = datetime.now(UTC) + timedelta(days=2)
        assert retention.purge_once(settings, now=now) == 1
        retention.purge_once(settings, now=now + timedelta(days=9))
    assert send(sample_message(message_id="m1")).status_code == 200
    assert stored_total(app.test_client()) == 1


@pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL computes the hash in SQL")
def test_postgres_computes_the_same_hash(make_app, backend):
    if backend != "postgres":
        pytest.skip("PostgreSQL only")
    with make_app().app_context(), db.engine.connect() as connection:
        for message_id in IDS:
            statement = text(f"SELECT {sql.pg_id_hash('CAST(:m AS VARCHAR)')}")
            assert connection.execute(statement, {"m": message_id}).scalar() == sql.id_hash(
                message_id
            )


def test_ids_remembered_before_the_migration_are_kept(database_url):
    app = create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": database_url})
    upgrade = app.test_cli_runner().invoke(args=["db", "upgrade", "0003"])
    assert upgrade.exit_code == 0, upgrade.output
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO purged_ids (message_id, purged_at) VALUES (:m, :at)"),
            [{"m": message_id, "at": "2026-01-01T00:00:00.000000Z"} for message_id in IDS],
        )
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    client = create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": database_url}).test_client()
    for message_id in [*IDS, "new"]:
        assert Sender(client)(sample_message(message_id=message_id)).status_code == 200
    assert [m["message_id"] for m in client.get("/messages").get_json()["data"]] == ["new"]
