"""Storage: the one API the views and commands use, served by the backend DATABASE_URL names.

SQLite (``sqlite_store``) is the embedded default; PostgreSQL (``postgres_store``) is the shared
store for several hosts; both satisfy ``backend.Backend``. Every call first makes sure the schema is
applied (``schema``), and tells it about a failure that may mean a new database. Calls return rows;
the views decide what a response looks like.
"""

import contextlib
from typing import NamedTuple

from flask import current_app
from sqlalchemy import text
from sqlalchemy.engine import make_url

from . import database_errors, schema
from .backend import MessageRow
from .extensions import db
from .postgres_store import PostgresBackend
from .sqlite_store import SQLiteBackend

_BACKENDS = {"sqlite": SQLiteBackend, "postgresql": PostgresBackend}
TOP_SENDERS = 10


class Page(NamedTuple):
    rows: list[MessageRow]
    total: int
    has_more: bool


def backend_for(uri):
    """The backend class of a database URI; ValueError for one that is not SQLite or PostgreSQL
    (the factory asks before any engine is made, so the error names the cause)."""
    name = make_url(uri).get_backend_name()
    if name not in _BACKENDS:
        raise ValueError(f"DATABASE_URL: {name} is not supported (sqlite or postgresql)")
    return _BACKENDS[name]


def init_app(app):
    """Bind the app's backend (no connection is made here) and its schema state."""
    backend_class = backend_for(app.config["SQLALCHEMY_DATABASE_URI"])
    with app.app_context():
        app.extensions["lyftr.storage"] = backend_class(db.engine, app.config)
    schema.init_app(app)


def backend():
    return current_app.extensions["lyftr.storage"]


def _call(method, *args, **kwargs):
    state = schema.current()
    try:
        state.ensure()
        return method(*args, **kwargs)
    except Exception as exc:
        state.after_error(exc)
        raise


def insert_message(message):
    """Store ``message`` unless its ``message_id`` exists: True if stored, False if a duplicate."""
    return _call(backend().insert_message, message)


def insert_batch(messages):
    """Store every message of ``messages`` not stored yet, all in one transaction (all or none);
    return how many were new."""
    return _call(backend().insert_batch, messages) if messages else 0


def get_message(message_id):
    """The full record of one message (``backend.MessageRecord``), or None."""
    return _call(backend().get_message, message_id)


def bulk_insert(messages, **options):
    """Store many messages as ``insert_message`` would, in big transactions; return how many
    were new."""
    return _call(backend().bulk_insert, messages, **options)


def after_bulk_load():
    backend().after_bulk_load()


def list_messages(*, limit, offset, from_msisdn=None, since_key=None, q=None, after=None):
    """One page in (ts, message_id) order, the total matching the filters, and whether more rows
    follow the page."""
    rows, total = _call(
        backend().list_messages,
        limit=limit,
        offset=offset,
        from_msisdn=from_msisdn,
        since_key=since_key,
        q=q,
        after=after,
    )
    # The backend reads one row more than the page: whether it came says if a next page exists.
    return Page(rows[:limit], total, len(rows) > limit)


def stats():
    return _call(backend().stats, TOP_SENDERS)


def failure_cause(exc):
    """The cause of a failed storage call, for the log (see ``database_errors``). A database that
    cannot be opened is explained by its storage where it can be (a full or read-only disk)."""
    cause = database_errors.cause(exc)
    if cause == database_errors.UNREACHABLE:
        # If the server itself is unreachable, that is the cause.
        with contextlib.suppress(Exception):
            cause = backend().check_writable() or cause
    return cause


def database_problem():
    """Why the database cannot serve now (for readiness), or None: unable to take writes (full,
    read-only), unreachable, or without its schema."""
    try:
        cause = backend().check_writable()
        if cause is None:
            _call(_read_tables)
    except Exception as exc:
        reason = getattr(exc, "orig", None) or exc
        return f"{database_errors.cause(exc)}: {reason}"
    return f"cannot take writes: {cause}" if cause else None


def _read_tables():
    with db.engine.connect() as connection:
        connection.execute(text("SELECT 1 FROM messages LIMIT 1")).all()
        connection.execute(text("SELECT 1 FROM sender_counts LIMIT 1")).all()
