"""Fixtures: an app on a temporary database, its test client and a signed-request helper.

Every test that uses ``database_url`` (through ``app``, ``client``, ``make_app`` or the end-to-end
servers) runs twice: on a new SQLite file, and on PostgreSQL in a new schema of its own when
LYFTR_TEST_POSTGRES_URL is set (skipped, with the reason, when it is not). Tests of what only
SQLite has (its file, its locks, its search index) are marked ``sqlite_only``.
"""

import json
import os
import uuid

import pytest
from sqlalchemy.engine import make_url

from lyftr import create_app
from lyftr.signing import sign

SECRET = "test-secret"
POSTGRES_URL = os.environ.get("LYFTR_TEST_POSTGRES_URL", "")
NO_POSTGRES = (
    "PostgreSQL tier: set LYFTR_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
)


def postgres_admin():
    """A psycopg connection (autocommit) to the test server's database, for setup and checks."""
    import psycopg

    url = make_url(POSTGRES_URL).set(drivername="postgresql")
    return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)


class PostgresSchema:
    """A fresh schema for one test; the URL given to the app puts it first on the search_path.
    ``application_name`` marks the test's connections, so teardown can end any left open."""

    def __init__(self):
        self.name = f"lyftr_test_{uuid.uuid4().hex[:12]}"
        self.url = make_url(POSTGRES_URL).update_query_dict({
            "options": f"-csearch_path={self.name},public",
            "application_name": self.name,
        }).render_as_string(hide_password=False)

    def __enter__(self):
        with postgres_admin() as connection:
            # pg_trgm once per database, in public: a per-test schema would take it along when dropped.
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
            connection.execute(f'CREATE SCHEMA "{self.name}"')
        return self

    def __exit__(self, *exc):
        with postgres_admin() as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()", (self.name,)
            )
            connection.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')


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


def sample_message(**overrides):
    message = {
        "message_id": "m1",
        "from": "+919876543210",
        "to": "+14155550100",
        "ts": "2025-01-15T10:00:00Z",
        "text": "Hello",
    }
    message.update(overrides)
    return message


class Sender:
    """Posts to /webhook the way the provider does: raw bytes, signed with the secret."""

    def __init__(self, client, secret=SECRET):
        self.client = client
        self.secret = secret

    def raw(self, body, signature=None, **headers):
        if isinstance(body, str):
            body = body.encode("utf-8")
        if signature is None:
            signature = sign(self.secret, body)
        return self.client.post("/webhook", data=body, headers={"X-Signature": signature, **headers})

    def __call__(self, message=None, **overrides):
        body = json.dumps(message if message is not None else sample_message(**overrides))
        return self.raw(body)


@pytest.fixture
def send(client):
    return Sender(client)


@pytest.fixture
def make_app(database_url):
    """Build another app with settings of the test's choosing (default: the ``app`` fixture's)."""

    def make(**overrides):
        config = {"WEBHOOK_SECRET": SECRET, "DATABASE_URL": database_url}
        config.update(overrides)
        return create_app(config)

    return make


def stored_total(client):
    """How many messages the service holds, asked both ways the contract offers."""
    listed = client.get("/messages").get_json()["total"]
    counted = client.get("/stats").get_json()["total_messages"]
    assert listed == counted
    return listed


def assert_nothing_stored(client):
    assert stored_total(client) == 0
    assert client.get("/stats").get_json()["senders_count"] == 0


def metric(client, name, **labels):
    """The value of one sample scraped from /metrics (0.0 when the series does not exist yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0
