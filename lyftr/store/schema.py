"""The database schema: the Alembic history in ``store/migrations`` and the one way it is applied.

``flask db upgrade`` applies it (the container does so before serving). A process that meets a
database without it (a new file, a server that was down at start) applies it itself, once, before
its first storage call, under the backend's migration lock, so workers and hosts starting together
apply it once. After an error saying the database went away or lost its tables, the next storage
call checks again: a database that appears later becomes ready without a restart. A locked or full
database is left alone: its schema is fine, and checking it would queue on the same lock.
"""

import logging
import os
import threading

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from flask import current_app

from lyftr.store import database_errors

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
# Causes after which the database may be a different (new, empty) one than the one checked.
RECHECK_AFTER = frozenset({database_errors.UNREACHABLE, database_errors.SCHEMA_MISSING})
logger = logging.getLogger(__name__)


class Schema:
    """Whether this process has seen the database at head; kept in ``app.extensions``."""

    def __init__(self, backend):
        self.backend = backend
        self.applied = False
        self._lock = threading.Lock()

    def ensure(self):
        """Apply pending migrations, unless this process already found the database at head."""
        if self.applied:
            return
        with self._lock:
            if not self.applied:
                with self.backend.migration_transaction() as connection:
                    upgrade(connection)
                self.applied = True

    def after_error(self, exc):
        """A storage call failed with ``exc``: check the schema again if the database changed."""
        if database_errors.cause(exc) in RECHECK_AFTER:
            self.applied = False


def init_app(app):
    app.extensions["lyftr.schema"] = Schema(app.extensions["lyftr.storage"])


def current():
    return current_app.extensions["lyftr.schema"]


def alembic_config(connection=None):
    config = Config(os.path.join(MIGRATIONS_DIR, "alembic.ini"))
    config.attributes["connection"] = connection
    return config


def upgrade(connection):
    """Run the migrations up to head inside ``connection``'s (locked) transaction."""
    before = MigrationContext.configure(connection).get_current_revision()
    command.upgrade(alembic_config(connection), "head")
    after = MigrationContext.configure(connection).get_current_revision()
    if after != before:
        logger.info("schema migrated", extra={"from_revision": before, "to_revision": after})
