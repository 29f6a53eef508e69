"""``warm_up``: a worker's schema check, its first large reads and template compiling done before
its first request."""

import logging
import sqlite3
from contextlib import closing

import pytest
from helpers import Sender

from lyftr.ops.warm_up import warm_up


def test_warm_up_migrates_and_compiles_the_console(make_app, backend, tmp_path):
    app = make_app()
    warm_up(app)
    # The schema is at head before any request asked for it ...
    if backend == "sqlite":
        path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
        with sqlite3.connect(path) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        assert {"messages", "sender_counts", "alembic_version"} <= tables
    # ... and every console template is compiled and cached.
    names = app.jinja_env.list_templates(filter_func=lambda n: n.startswith("console/"))
    assert names
    cached = {name for _, name in list(app.jinja_env.cache.keys())}
    assert set(names) <= cached
    assert app.test_client().get("/messages").status_code == 200


def test_a_database_out_of_reach_is_logged_not_raised(make_app, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    app = make_app(DATABASE_URL=f"sqlite:///{blocker}/app.db")
    with caplog.at_level(logging.WARNING, logger="lyftr.ops.warm_up"):
        warm_up(app)
    assert [r.message for r in caplog.records] == ["worker started without the database"]
    client = app.test_client()
    assert client.get("/health/live").status_code == 200
    assert client.get("/messages").status_code == 503


def unsequenced(app):
    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT count(*) FROM messages WHERE seq IS NULL").fetchone()[0]


@pytest.mark.sqlite_only
def test_warm_up_reads_the_feed_quietly(make_app, caplog):
    app = make_app()
    client = app.test_client()
    send = Sender(client)
    for n in range(3):
        assert send(message_id=f"m{n}", text=f"hello zqxj {n}").status_code == 200
    assert unsequenced(app) == 3  # given their positions by the next feed read
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lyftr.ops.warm_up"):
        warm_up(app)
    # Neither the schema nor either read failed.
    assert [r for r in caplog.records if r.name == "lyftr.ops.warm_up"] == []
    assert unsequenced(app) == 0  # the warm-up read the feed
    assert [r["message_id"] for r in client.get("/feed").get_json()["data"]] == ["m0", "m1", "m2"]
    assert client.get("/messages", query_string={"q": "zqxj"}).get_json()["total"] == 3
