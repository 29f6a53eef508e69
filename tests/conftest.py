"""Fixtures: an app on a temporary database, its test client and a signed-request helper.

Every test that uses ``database_url`` (through ``app``, ``client``, ``make_app`` or the end-to-end
servers) runs twice: on a new SQLite file, and on PostgreSQL in a new schema of its own when
LYFTR_TEST_POSTGRES_URL is set (skipped, with the reason, when it is not). Tests of what only
SQLite has (its file, its locks, its search index) are marked ``sqlite_only``.
"""

import pytest
from helpers import NO_POSTGRES, POSTGRES_URL, SECRET, PostgresSchema, Sender

from lyftr import create_app


def pytest_report_header(config):
    if POSTGRES_URL:
        return f"PostgreSQL tier: on ({POSTGRES_URL})"
    return f"PostgreSQL tier: off, its tests are skipped. {NO_POSTGRES}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    """The database backend this test runs on."""
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip(NO_POSTGRES)
        if request.node.get_closest_marker("sqlite_only"):
            pytest.skip("SQLite-specific")
    return request.param


@pytest.fixture
def database_url(backend, tmp_path):
    """A new, empty database of the test's backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/app.db"
        return
    with PostgresSchema() as schema:
        yield schema.url


@pytest.fixture
def app(database_url):
    return create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": database_url})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def send(client):
    return Sender(client)


@pytest.fixture
def make_app(database_url):
    """Build another app with settings of the test's choosing (default: the ``app`` fixture's)."""

    def make(**overrides):
        # SECRET_KEY: a test that sets API_TOKEN needs one (lyftr.console refuses to start without).
        config = {"WEBHOOK_SECRET": SECRET, "DATABASE_URL": database_url, "SECRET_KEY": "test-key"}
        config.update(overrides)
        return create_app(config)

    return make
