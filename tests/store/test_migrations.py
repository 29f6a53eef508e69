"""Schema migrations: one Alembic history for both backends, `flask db upgrade`, and databases of
lyftr 1.0 (made before migrations existed) upgraded in place with their data."""

import json
import sqlite3
import threading
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from helpers import SECRET, Sender, sample_message
from sqlalchemy import inspect, text

from lyftr import create_app
from lyftr.extensions import db
from lyftr.store import schema

RELEASE_1_0 = Path(__file__).parents[1] / "data" / "lyftr-1.0.sql"
HEAD = ScriptDirectory.from_config(schema.alembic_config()).get_current_head()


def flask_db(app, *args):
    result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def revision(app):
    with app.app_context(), db.engine.connect() as connection:
        return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def tables(app):
    with app.app_context():
        return set(inspect(db.engine).get_table_names())


def test_create_app_makes_no_connection(app):
    # The factory only wires: a database that does not exist yet is not created by it.
    assert tables(app) == set()


def test_new_database_is_at_head_after_the_first_request(app):
    assert app.test_client().get("/health/ready").status_code == 200
    assert revision(app) == HEAD
    assert {"messages", "sender_counts", "alembic_version"} <= tables(app)


def test_flask_db_upgrade_brings_a_new_database_to_head(app):
    flask_db(app, "upgrade")
    assert revision(app) == HEAD


def test_flask_db_upgrade_at_head_changes_nothing(app, send):
    assert send(sample_message()).status_code == 200
    flask_db(app, "upgrade")
    assert revision(app) == HEAD
    assert app.test_client().get("/stats").get_json()["total_messages"] == 1


def test_models_and_migrations_agree(app):
    # `flask db check` fails if autogenerate would write a new migration: the models and the
    # history describe the same schema (on this backend).
    flask_db(app, "upgrade")
    flask_db(app, "check")


def test_downgrade_to_nothing_and_back(app, send):
    flask_db(app, "downgrade", "base")
    assert not {"messages", "sender_counts"} & tables(app)
    flask_db(app, "upgrade")
    storage_app = create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": app.config["DATABASE_URL"]})
    client = storage_app.test_client()
    assert Sender(client)(sample_message()).status_code == 200
    assert client.get("/stats").get_json()["total_messages"] == 1


def test_concurrent_upgrades_apply_once(database_url):
    # Workers and hosts that start together each try to migrate: the lock lets one do it.
    apps, errors = [], []
    start = threading.Barrier(4)

    def boot():
        app = create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": database_url})
        start.wait()
        try:
            assert app.test_client().get("/health/ready").status_code == 200
            apps.append(app)
        except Exception as exc:  # the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=boot) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert [revision(app) for app in apps] == [HEAD] * 4
    client = apps[0].test_client()
    assert Sender(client)(sample_message()).status_code == 200
    assert apps[3].test_client().get("/messages").get_json()["total"] == 1


def test_hour_counts_are_backfilled_by_0006(app, send):
    # Rows stored before revision 0006 are counted by it: since= totals stay exact across it.
    stamps = ["2025-01-15T09:59:59Z", "2025-01-15T10:00:00Z", "2025-01-15T10:30:00.5Z"]
    for i, ts in enumerate(stamps):
        assert send(sample_message(message_id=f"m{i}", ts=ts)).status_code == 200
    flask_db(app, "downgrade", "0003")
    assert not {"ts_hour_counts", "arrival_hour_counts"} & tables(app)
    flask_db(app, "upgrade")
    client = app.test_client()
    for since, expected in [
        ("2025-01-15T09:59:59Z", 3),
        ("2025-01-15T10:00:00Z", 2),
        ("2025-01-15T10:30:00.6Z", 0),
    ]:
        assert client.get("/messages", query_string={"since": since}).get_json()["total"] == (
            expected
        ), since
    with app.app_context(), db.engine.connect() as connection:
        arrived = connection.exec_driver_sql("SELECT sum(count) FROM arrival_hour_counts").scalar()
    assert arrived == 3


@pytest.fixture
def release_1_0_database(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(RELEASE_1_0.read_text(encoding="utf-8"))
    connection.close()
    return path


@pytest.mark.sqlite_only
@pytest.mark.parametrize("how", ["flask db upgrade", "first request"])
def test_release_1_0_database_upgrades_in_place(release_1_0_database, how):
    url = f"sqlite:///{release_1_0_database}"
    if how == "flask db upgrade":
        # The container's way: the migration runs before the server starts.
        app = create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": url})
        flask_db(app, "upgrade")
    app = create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": url})
    client = app.test_client()
    listed = client.get("/messages").get_json()
    assert revision(app) == HEAD

    assert [m["message_id"] for m in listed["data"]] == ["old-2", "old-1", "old-3"]
    assert listed["data"][1] == {
        "message_id": "old-1",
        "from": "+919876543210",
        "to": "+14155550100",
        "ts": "2025-01-15T10:00:00Z",
        "text": "Hello from 1.0",
    }
    # Rows from before revision 0002 came through /webhook.
    record = client.get("/messages/old-1").get_json()
    assert (record["provider"], record["type"], record["raw"]) == ("webhook", "text", None)
    stats = client.get("/stats").get_json()
    assert stats["total_messages"] == 3
    assert stats["messages_per_sender"][0] == {"from": "+919876543210", "count": 2}
    assert client.get("/messages", query_string={"q": "école"}).get_json()["total"] == 1
    # Revision 0006 counted the old rows per hour: since= totals come from those counts.
    for since, expected in [
        ("2025-01-15", 3),
        ("2025-01-15T09:00:00.3Z", 2),
        ("2025-01-16", 1),
        ("2025-01-17", 0),
    ]:
        assert client.get("/messages", query_string={"since": since}).get_json()["total"] == (
            expected
        ), since

    # And it keeps working as a current database: a new message, a duplicate of an old one.
    send = Sender(client)
    assert send(sample_message(message_id="new-1", text="after the upgrade")).status_code == 200
    assert send(sample_message(message_id="old-1", text="changed")).status_code == 200
    assert client.get("/stats").get_json()["total_messages"] == 4
    assert (
        client.get("/messages", query_string={"q": "1.0"}).get_json()["data"][0]["text"]
        == "Hello from 1.0"
    )
    with sqlite3.connect(release_1_0_database) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 1
    connection.close()


def test_unsupported_database_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="not supported"):
        create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": "mysql://root@127.0.0.1/test"})


def test_0004_backfills_the_record_from_raw(app):
    # Rows stored before 0004 kept the provider's payload in raw (WhatsApp: the message object
    # alone; Twilio: the form): the new fields are read from it.
    flask_db(app, "upgrade", "0003")
    whatsapp = {
        "from": "16505551234",
        "id": "wamid.old",
        "timestamp": "1749416383",
        "type": "location",
        "context": {"from": "15550783881", "id": "wamid.ctx"},
        "location": {"latitude": 37.46, "longitude": -122.21, "name": "HQ", "address": "1 Way"},
    }
    twilio = {
        "MessageSid": "MMold",
        "From": "whatsapp:+14155550100",
        "To": "whatsapp:+14155550199",
        "Body": "",
        "NumMedia": "1",
        "MediaUrl0": "https://api.twilio.com/media/ME1",
        "MediaContentType0": "image/jpeg",
        "ProfileName": "Ada",
        "OriginalRepliedMessageSid": "SMparent",
    }
    insert = (
        "INSERT INTO messages (message_id, from_msisdn, to_msisdn, ts, ts_key, text, created_at, "
        "provider, type, raw) VALUES (:id, '+1', '+2', 't', 't', NULL, '2025', :provider, 't', "
        ":raw)"
    )
    with app.app_context(), db.engine.begin() as connection:
        for message_id, provider, raw in (
            ("wamid.old", "whatsapp", whatsapp),
            ("MMold", "twilio", twilio),
            ("w1", "webhook", None),
        ):
            connection.execute(
                text(insert),
                {"id": message_id, "provider": provider, "raw": raw and json.dumps(raw)},
            )
    flask_db(app, "upgrade")
    columns = "channel, sender_name, media, location, reply_to, reactions, edited_at, revoked_at"
    with app.app_context(), db.engine.connect() as connection:
        rows = {
            row[0]: row[1:]
            for row in connection.execute(text(f"SELECT message_id, {columns} FROM messages"))
        }
    assert rows["w1"] == ("webhook", None, None, None, None, None, None, None)
    channel, name, media, location, reply_to, *rest = rows["wamid.old"]
    assert (channel, name, media, reply_to, rest) == (
        "whatsapp",
        None,
        None,
        "wamid.ctx",
        [None] * 3,
    )
    assert json.loads(location) == whatsapp["location"]
    channel, name, media, location, reply_to, *rest = rows["MMold"]
    assert (channel, name, location, reply_to) == ("whatsapp", "Ada", None, "SMparent")
    assert json.loads(media) == [{"url": twilio["MediaUrl0"], "mime_type": "image/jpeg"}]
