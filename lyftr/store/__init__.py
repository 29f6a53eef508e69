"""Storage: the one API the views and commands use, served by the backend DATABASE_URL names.

SQLite (``store.sqlite``) is the embedded default; PostgreSQL (``store.postgres``) is the shared
store for several hosts; both satisfy ``backend.Backend``. Every call first makes sure the schema is
applied (``schema``), and tells it about a failure that may mean a new database. Calls return rows;
the views decide what a response looks like.
"""

import contextlib
import itertools
import tempfile
import time
from typing import NamedTuple

from flask import current_app
from sqlalchemy import text
from sqlalchemy.engine import make_url

from lyftr.extensions import db, migrate
from lyftr.store import database_errors, schema, sql, staging
from lyftr.store.backend import MessageRow
from lyftr.store.postgres import PostgresBackend
from lyftr.store.sqlite.backend import SQLiteBackend
from lyftr.timestamps import now_iso

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
    """Bind the database, the migrations and the app's backend (no connection is made here)."""
    db.init_app(app)
    migrate.init_app(app, db, directory=schema.MIGRATIONS_DIR)
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


def prepare():
    """What the first storage call of a process does first: apply pending migrations, or find the
    database at head. Raises what the database raises."""
    schema.current().ensure()


def insert_message(message):
    """Store ``message`` unless its ``message_id`` exists: True if stored, False if a duplicate."""
    return _call(backend().insert_message, message)


def insert_batch(messages, actions=()):
    """Store every message of ``messages`` not stored yet, all in one transaction (all or none),
    applying the edits, revokes and reactions among them (``actions``); return how many were
    new."""
    return _call(backend().insert_batch, messages, list(actions)) if messages else 0


# --- statuses and rejections -------------------------------------------------------------------


def insert_statuses(statuses):
    """Store the delivery status events not stored yet; return how many were new."""
    return _call(backend().insert_statuses, statuses) if statuses else 0


def record_rejection(rejection):
    """Keep a refused delivery, and only the newest REJECTIONS_KEEP of them."""
    keep = max(current_app.config.get("REJECTIONS_KEEP", 10_000), 1)
    _call(backend().record_rejection, rejection, keep)


def list_statuses(*, limit, after=0, message_id=None, status=None, since_key=None):
    """Up to ``limit`` status events after id ``after``, and whether more follow."""
    rows = _call(
        backend().list_statuses,
        message_id=message_id,
        status=status,
        since_key=since_key,
        after=after,
        limit=limit + 1,
    )
    return rows[:limit], len(rows) > limit


def list_rejections(*, limit, before=None, provider=None):
    """Up to ``limit`` rejections before id ``before``, newest first, and whether more follow."""
    rows = _call(backend().list_rejections, provider=provider, before=before, limit=limit + 1)
    return rows[:limit], len(rows) > limit


def get_message(message_id):
    """The full record of one message (``backend.MessageRecord``), or None."""
    record = _call(backend().get_message, message_id)
    if record is not None and record.seq is None:  # just arrived: give it its feed position
        sequence()
        record = _call(backend().get_message, message_id)
    return record


# --- the feed ------------------------------------------------------------------------------------

# Rows numbered per transaction: each feed read numbers what arrived since, this many at most.
SEQUENCE_BATCH = 10_000


def sequence():
    """Give the messages committed so far their feed positions (up to SEQUENCE_BATCH)."""
    return _call(backend().sequence, SEQUENCE_BATCH)


def feed(after, limit):
    """Up to ``limit`` records after position ``after``, in feed (commit) order."""
    sequence()
    return _call(backend().feed, after, limit)


def commits_seen():
    """A marker for ``wait_for_commit``: take it before reading the feed."""
    return backend().commits_seen()


def wait_for_commit(seen, timeout):
    """Wait until a message may have been committed since ``seen`` (by any host), or at most
    ``timeout`` seconds."""
    backend().wait_for_commit(seen, timeout)


# --- the data's lifecycle ----------------------------------------------------------------------

# A purge batch holds the one write turn (SQLite) or its rows' locks while it runs: its size adapts
# so that each transaction takes about PURGE_HOLD_S, and the pause after it is at least as long as
# it held the turn, and at least PURGE_PAUSE_S. Beside full-speed ingest that is about 1,100 rows a
# second (95 million a day); a day's arrivals at any lesser rate are purged in less than a day.
PURGE_BATCH = 500  # the first batch
PURGE_BATCH_MIN, PURGE_BATCH_MAX = 20, 5000
PURGE_HOLD_S = 0.010
# Between purge batches the write lock is left to ingest: 60 ms rather than 20 took ingest's p99
# beside a purge from 46-48 ms to 37-40 (ingest alone: 25-31), halving the purge's rate
# (docs/performance.md, "Purge beside ingest").
PURGE_PAUSE_S = 0.06


def next_purge_batch(batch, took_s):
    """The size of the next purge batch after one of ``batch`` rows held the writer ``took_s``
    seconds (waiting for the turn not counted: that is ingest's time, not the purge's):
    scaled toward PURGE_HOLD_S, at most doubled at a time, within the bounds."""
    wanted = batch * PURGE_HOLD_S / took_s if took_s > 0 else batch * 2
    return int(min(max(wanted, PURGE_BATCH_MIN), batch * 2, PURGE_BATCH_MAX))


def purge(before, *, dry_run=False, forget_before=None, sleep=time.sleep, progress=None):
    """Delete every message that arrived before ``before`` (an ISO-8601 UTC instant, as
    created_at is written), in short transactions (see PURGE_HOLD_S); return how many (or,
    dry, would be).

    Their IDs are remembered (as hashes, purged_hashes) so that a retried or replayed delivery is
    a duplicate; those remembered since before ``forget_before`` (if given) are forgotten.
    ``progress`` is told each batch's count."""
    if dry_run:
        return _call(backend().count_purgeable, before)
    purged, purged_at, batch = 0, now_iso(), PURGE_BATCH
    while True:
        done, took = _call(backend().purge, before, batch, purged_at)
        if not done:
            break
        purged += done
        if progress is not None:
            progress(done)
        batch = next_purge_batch(batch, took)
        sleep(max(PURGE_PAUSE_S, took))
    if forget_before is not None:
        _call(backend().forget_purged, forget_before)
    return purged


def revoke_session(nonce, expires_at):
    """Log the console session ``nonce`` out for every process, until ``expires_at`` (an ISO-8601
    UTC instant, as now_iso writes it)."""
    _call(backend().revoke_session, nonce, expires_at, now_iso())


def session_revoked(nonce):
    return _call(backend().session_revoked, nonce)


def exclusive_purge():
    """A context: True inside if no other process or host is purging (see Backend)."""
    return backend().exclusive_purge()


EXPORT_PAGE = 1000


def export(*, from_msisdn=None, since_key=None):
    """Every record in arrival order, a page at a time (flat memory at any size)."""
    while sequence():  # every exported record has its feed position
        pass
    position = None
    while True:
        page = _call(
            backend().export_page,
            from_msisdn=from_msisdn,
            since_key=since_key,
            position=position,
            limit=EXPORT_PAGE,
        )
        yield from page
        if len(page) < EXPORT_PAGE:
            return
        position = (page[-1].received_at, page[-1].message_id)


def backup(path):
    _call(backend().backup, path)


def bulk_insert(messages, *, batch_size=staging.ROWS):
    """Store many messages (dicts as the schemas load them) as ``insert_message`` would, in
    transactions of ``batch_size``; return how many were new."""
    with tempfile.TemporaryDirectory(prefix="lyftr-load-") as folder:
        rows = message_rows(messages)
        chunks = staging.stage_all(rows, folder, itertools.repeat(batch_size))
        return bulk_insert_staged(chunks)


def bulk_insert_staged(chunks):
    """``bulk_insert`` of the chunks ``staging`` wrote (perhaps in another process), each file
    removed once stored."""
    return _call(backend().bulk_insert, staging.consumed(chunks))


# message_rows reads the clock again every this many rows (one arrival time for millions of
# messages would put them all in one hour's count).
ROWS_PER_CLOCK = 10_000


def message_rows(messages):
    """Each message's values in the order the backends store them; one without an arrival time
    (created_at) arrives as its row is made, the clock read once per ROWS_PER_CLOCK rows."""
    for chunk in sql.batched(messages, ROWS_PER_CLOCK):
        created_at = now_iso()
        for message in chunk:
            yield sql.message_values(message, created_at)


def after_bulk_load():
    backend().after_bulk_load()


def list_messages(
    *, limit, offset, from_msisdn=None, since_key=None, q=None, after=None, newest_first=False
):
    """One page in (ts, message_id) order, the total matching the filters, and whether more rows
    follow the page. ``newest_first``: the order reversed and ``offset`` counted from the end (the
    console's latest pages of a long conversation, read without walking what comes before)."""
    if newest_first and (q or after is not None):
        raise ValueError("newest_first pages neither search nor continue a cursor")
    rows, total = _call(
        backend().list_messages,
        limit=limit,
        offset=offset,
        from_msisdn=from_msisdn,
        since_key=since_key,
        q=q,
        after=after,
        newest_first=newest_first,
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
    """Why the database cannot serve now (for readiness), or None: ``(cause, error)``, the cause
    in a few words (unable to take writes: full, read-only; unreachable; without its schema) and
    the driver's error, if any, which may name hosts and files (for the log only)."""
    try:
        cause = backend().check_writable()
        if cause is None:
            _call(_read_tables)
    except Exception as exc:
        reason = getattr(exc, "orig", None) or exc
        return database_errors.cause(exc), f"{type(reason).__name__}: {reason}"
    return (f"cannot take writes: {cause}", None) if cause else None


def _read_tables():
    with db.engine.connect() as connection:
        connection.execute(text("SELECT 1 FROM messages LIMIT 1")).all()
        connection.execute(text("SELECT 1 FROM sender_counts LIMIT 1")).all()


# --- the console ---------------------------------------------------------------------------------


def list_arrivals(*, limit, from_msisdn=None, received_since=None, q=None, before=None):
    """One page of records, newest arrival first, and the position after its last row if more
    rows follow it (else None)."""
    records = _call(
        backend().list_arrivals,
        limit=limit,
        from_msisdn=from_msisdn,
        received_since=received_since,
        q=q,
        before=before,
    )
    last = records[limit - 1] if len(records) > limit else None
    return records[:limit], (last.received_at, last.message_id) if last else None


def arrivals_per_hour(hours):
    """``[(hour, count)]`` for each of ``hours`` ('YYYY-MM-DDTHH', UTC)."""
    return _call(backend().arrivals_per_hour, list(hours)) if hours else []
