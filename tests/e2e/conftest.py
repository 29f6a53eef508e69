"""Fixtures of the end-to-end tier: real Gunicorn servers on a temporary database of each backend
(``database_url``, from the unit tests' conftest)."""

import contextlib
import itertools
import uuid

import pytest

from .server import Server

_DEFAULT = object()


@pytest.fixture
def db_url(database_url):
    return database_url


@pytest.fixture
def start_server(tmp_path, db_url):
    """Factory: ``start_server(secret=..., database_url=..., workers=4, env={...})``.

    Returns a live Server.

    ``secret=None`` leaves WEBHOOK_SECRET unset; the default is a random secret per test. Servers
    started with the same ``database_url`` (default: this test's) share the database. Every server
    still running at teardown is stopped with SIGTERM (SIGKILL after 30 s).
    """
    stack = contextlib.ExitStack()
    numbers = itertools.count(1)
    test_secret = f"e2e-secret-{uuid.uuid4().hex}"

    def start(*, secret=_DEFAULT, database_url=None, workers=4, env=None):
        server = Server(
            tmp_path,
            name=f"server-{next(numbers)}",
            secret=test_secret if secret is _DEFAULT else secret,
            database_url=database_url or db_url,
            workers=workers,
            env=env,
        )
        stack.callback(server.stop)  # every server is stopped, even if stopping another fails
        return server.start()

    with stack:
        yield start


@pytest.fixture
def server(start_server):
    """A server with 4 workers, a random secret and an empty database."""
    return start_server()
