"""What only the PostgreSQL backend has: its connection pool per worker, and pools across fork."""

import os

import pytest
from helpers import SECRET, Sender, sample_message

from lyftr import create_app
from lyftr.extensions import db


@pytest.fixture
def pg_app(backend, database_url):
    if backend != "postgres":
        pytest.skip("PostgreSQL-specific")
    app = create_app(
        {
            "WEBHOOK_SECRET": SECRET,
            "DATABASE_URL": database_url,
            "DB_POOL_SIZE": 3,
            "DB_MAX_OVERFLOW": 2,
        }
    )
    yield app
    with app.app_context():
        db.engine.dispose()


def backend_pid(connection):
    return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def test_pool_is_sized_from_the_configuration(pg_app):
    with pg_app.app_context():
        pool = db.engine.pool
        assert pool.size() == 3
        assert pool._max_overflow == 2
        assert pool._pre_ping is True


def test_plain_postgresql_url_uses_psycopg(pg_app, database_url):
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    app = create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": plain})
    with app.app_context():
        assert db.engine.dialect.driver == "psycopg"
        db.engine.dispose()


def test_forked_child_never_uses_the_parents_connections(pg_app):
    with pg_app.app_context():
        with db.engine.connect() as connection:
            parent_pid = backend_pid(connection)  # now idle in the pool, inherited by a fork
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # the child: query through the app, report which server process answered
            code = 1
            try:
                os.close(read_end)
                with db.engine.connect() as connection:
                    os.write(write_end, str(backend_pid(connection)).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        child_pid = int(os.read(read_end, 64) or b"0")
        os.close(read_end)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert child_pid not in (0, parent_pid)
        # The parent's pooled connection was left alone: it still works, as the same session.
        with db.engine.connect() as connection:
            assert backend_pid(connection) == parent_pid
    client = pg_app.test_client()
    assert Sender(client)(sample_message()).status_code == 200
