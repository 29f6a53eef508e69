"""Every read the API serves stops at QUERY_BUDGET_MS: 503 with the reason, never a 500 or a
stalled worker; on SQLite the heavy reads can run on threads off the gevent hub."""

import logging
import threading

import pytest
from sqlalchemy import text

from lyftr.store import postgres
from lyftr.store.sqlite import reads
from lyftr.store.sqlite.offload import ReadThreads

# Seconds of work on either backend, unless the budget stops it.
_SQLITE_SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT count(*) FROM (SELECT x FROM c LIMIT 300000000)"
)


@pytest.fixture
def slow_total(monkeypatch, backend):
    """Make the search's total a statement that runs for many seconds."""
    if backend == "sqlite":

        def total(connection, *args):
            return connection.execute(_SQLITE_SLOW).fetchone()[0]

        monkeypatch.setattr(reads, "total", total)
    else:

        def total(connection, *args):
            return connection.execute(text("SELECT pg_sleep(30)")).scalar()

        monkeypatch.setattr(postgres, "_total", total)


def test_a_read_over_its_budget_is_503_with_the_reason(make_app, slow_total, caplog):
    client = make_app(QUERY_BUDGET_MS=50).test_client()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lyftr.request"):
        response = client.get("/messages?q=hello")
    assert response.status_code == 503
    assert response.get_json() == {
        "detail": "query took too long (over its 50 ms budget); narrow it or retry later"
    }
    assert response.headers["Retry-After"] == "1"
    [line] = [r for r in caplog.records if r.name == "lyftr.request"]
    assert line.cause == "query too long"


def test_a_stopped_read_leaves_the_connections_usable(make_app, send, slow_total, monkeypatch):
    app = make_app(QUERY_BUDGET_MS=50)
    client = app.test_client()
    for _ in range(3):  # more than once: a connection given back must not keep a stale limit
        assert client.get("/messages?q=hello").status_code == 503
    monkeypatch.undo()
    assert client.get("/messages?q=hello").status_code == 200
    assert client.get("/stats").status_code == 200


def test_reads_within_their_budget_are_answered(make_app):
    client = make_app(QUERY_BUDGET_MS=5000).test_client()
    for path in ("/messages?q=the%20the", "/stats", "/feed", "/messages/none", "/ui/"):
        assert client.get(path).status_code in (200, 302, 401, 404), path


@pytest.mark.sqlite_only
def test_sqlite_reads_run_on_threads_when_offloaded(app, client, monkeypatch):
    """What a gevent worker does (under the test client reads stay on the caller's thread)."""
    storage = app.extensions["lyftr.storage"]
    storage.read_threads = ReadThreads(2, enabled=lambda: True)
    threads = []
    real_total = reads.total

    def total(*args):
        threads.append(threading.get_ident())
        return real_total(*args)

    monkeypatch.setattr(reads, "total", total)
    assert client.get("/messages?q=hello").status_code == 200
    assert threads and threads[0] != threading.get_ident()


@pytest.mark.sqlite_only
def test_an_offloaded_read_over_its_budget_is_503(make_app, slow_total):
    app = make_app(QUERY_BUDGET_MS=50)
    app.extensions["lyftr.storage"].read_threads = ReadThreads(2, enabled=lambda: True)
    response = app.test_client().get("/messages?q=hello")
    assert response.status_code == 503
    assert response.get_json()["detail"].startswith("query took too long")


def test_read_threads_give_back_results_and_errors():
    threads = ReadThreads(2, enabled=lambda: True)
    assert threads.run(threading.get_ident) != threading.get_ident()
    with pytest.raises(ZeroDivisionError):
        threads.run(lambda: 1 / 0)
    inline = ReadThreads(0, enabled=lambda: True)
    assert inline.run(threading.get_ident) == threading.get_ident()


def test_no_pooled_connection_free_in_time_is_503_not_500(make_app, backend, caplog):
    """A flood of requests (2,000 long polls) can take every pooled PostgreSQL connection."""
    if backend != "postgres":
        pytest.skip("SQLite has no connection pool to exhaust")
    from lyftr.extensions import db

    app = make_app(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_CONNECT_TIMEOUT_S=1)
    client = app.test_client()
    assert client.get("/stats").status_code == 200  # the schema is checked once, before
    caplog.clear()
    with app.app_context(), db.engine.connect(), caplog.at_level(logging.INFO, "lyftr.request"):
        response = client.get("/stats")
    assert response.status_code == 503
    assert response.get_json() == {"detail": "database unavailable"}
    assert response.headers["Retry-After"] == "1"
    [line] = [r for r in caplog.records if r.name == "lyftr.request"]
    assert line.cause == "no connection free"
