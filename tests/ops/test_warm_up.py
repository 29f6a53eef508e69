"""``warm_up``: a worker's schema check and template compiling done before its first request."""

import logging
import sqlite3

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
