"""Storage: the one API the blueprints and commands use, served by the backend DATABASE_URL names.

SQLite (``sqlite_store``) is the embedded default; PostgreSQL (``postgres_store``) is the shared
store for several hosts. Both give the same answers to the same calls: insert-once with the first
write winning, chronological order, the same filters and search semantics, counts kept with each
insert. The schema is the Alembic history in ``lyftr/migrations``, one history for both backends,
applied by ``flask db upgrade`` and, if still pending, by the first request a process serves (under
a lock, so workers and hosts starting together apply it once).
"""

import base64
import binascii
import json
import logging
import os
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from flask import current_app
from sqlalchemy import text
from sqlalchemy.engine import make_url

from . import postgres_store, sqlite_store
from .extensions import db

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
_BACKENDS = {"sqlite": sqlite_store, "postgresql": postgres_store}
TOP_SENDERS = 10
logger = logging.getLogger(__name__)


def init_app(app):
    """Bind the backend for the app's database and apply the schema if the database is reachable."""
    backend = backend_for(app.config["SQLALCHEMY_DATABASE_URI"])
    with app.app_context():
        backend.configure(db.engine, app.config)
        app.extensions["lyftr.storage"] = backend
        app.extensions["lyftr.schema_applied"] = False
        try:
            ensure_schema()
        except Exception:  # unreachable now: readiness reports it, later requests retry
            app.logger.warning("database not available at start", exc_info=True)


def backend_for(uri):
    """The backend module of a database URI; ValueError for one that is not SQLite or PostgreSQL
    (the factory asks before any engine is made, so the error names the cause)."""
    name = make_url(uri).get_backend_name()
    if name not in _BACKENDS:
        raise ValueError(f"DATABASE_URL: {name} is not supported (sqlite or postgresql)")
    return _BACKENDS[name]


def backend():
    return current_app.extensions["lyftr.storage"]


def ensure_schema():
    """Apply pending migrations (once per process; safe from several processes and hosts)."""
    if current_app.extensions.get("lyftr.schema_applied"):
        return
    with migration_transaction() as connection:
        upgrade(connection)
    current_app.extensions["lyftr.schema_applied"] = True


def forget_schema():
    """After a database error, check the schema again on the next request (the file may be new)."""
    current_app.extensions["lyftr.schema_applied"] = False


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


@contextmanager
def migration_transaction():
    """A transaction that no other process's migration runs beside (used by migrations/env.py)."""
    store = backend()
    store.prepare()
    with store.migration_transaction() as connection:
        yield connection


def insert_message(message):
    """Store ``message`` unless its ``message_id`` exists: True if stored, False if a duplicate.

    Returns once the row, its sender's count and its search entry are committed together.
    """
    ensure_schema()
    return backend().insert_message(message)


def bulk_insert(messages, **options):
    """Store many messages as ``insert_message`` would, in big transactions; return how many were new."""
    ensure_schema()
    return backend().bulk_insert(messages, **options)


def after_bulk_load():
    """Leave the database tidy after a bulk load (checkpoint the WAL, refresh planner statistics)."""
    backend().after_bulk_load()


def list_messages(*, limit, offset, from_msisdn=None, since_key=None, q=None, after=None):
    """One page in (ts, message_id) order: (rows, total matching the filters, next cursor or None)."""
    ensure_schema()
    # One row more than the page: whether it comes back says whether a next page exists.
    rows, total = backend().list_messages(
        limit=limit, offset=offset, from_msisdn=from_msisdn, since_key=since_key, q=q, after=after
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][5], rows[-1][0])
    data = [
        {"message_id": r[0], "from": r[1], "to": r[2], "ts": r[3], "text": r[4]} for r in rows
    ]
    return data, total, next_cursor


def stats():
    ensure_schema()
    total, senders, ranked, first, last = backend().stats(TOP_SENDERS)
    return {
        "total_messages": total,
        "senders_count": senders,
        "messages_per_sender": [{"from": sender, "count": count} for sender, count in ranked],
        "first_message_ts": first,
        "last_message_ts": last,
    }


def check_database():
    """Raise if the database cannot be reached or lacks the schema; used by /health/ready."""
    ensure_schema()
    with db.engine.connect() as connection:
        connection.execute(text("SELECT 1 FROM messages LIMIT 1")).all()
        connection.execute(text("SELECT 1 FROM sender_counts LIMIT 1")).all()


def encode_cursor(ts_key, message_id):
    raw = json.dumps([ts_key, message_id], ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor):
    """The ``(ts_key, message_id)`` a cursor points after, or None if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts_key, message_id = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, TypeError):
        return None
    if not (isinstance(ts_key, str) and isinstance(message_id, str)):
        return None
    return ts_key, message_id
