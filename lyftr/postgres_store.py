"""The PostgreSQL backend: the same answers as SQLite's, for several hosts sharing one database.

- Insert-once is ``INSERT ... ON CONFLICT (message_id) DO NOTHING RETURNING``: concurrent deliveries
  of one message_id, from any host, wait on each other's row lock and exactly one gets a row back.
  The sender's count is raised in the same transaction.
- Keys (message_id, from_msisdn, ts_key) use the "C" collation: code-point order, as on SQLite.
- Search: ``text_folded`` holds the folded text (``folding.indexed_text``, as SQLite's index),
  served by a pg_trgm GIN index; the term is matched with ``LIKE`` with ``%``/``_``/``\\`` escaped.
- PostgreSQL text cannot hold NUL. A text with NUL is stored as its JSON string (``text_escaped``);
  the rare term the index cannot answer (``folding.index_answers``) is checked row by row.
"""

import json
import os
from contextlib import contextmanager

from sqlalchemy import text

from .extensions import db
from .folding import NUL_STANDIN, index_answers, indexed_text
from .timestamps import now_iso

# Any constant: every process that migrates takes this lock first.
MIGRATION_LOCK_KEY = 0x6C796674  # "lyft"
BULK_BATCH_ROWS = 50_000


def configure(engine, config):
    """Connections from a parent's pool are not used in a forked child (Gunicorn workers, CLI)."""
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))


def prepare():
    """Nothing to create before connecting: the server and database exist or the URL is wrong."""


@contextmanager
def migration_transaction():
    with db.engine.connect() as connection, connection.begin():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        yield connection


def _stored_text(value):
    """(text column, text_escaped, text_folded) for a message text (None stays None)."""
    if value is None:
        return None, False, None
    folded = indexed_text(value)
    if "\x00" in value:
        return json.dumps(value), True, folded
    return value, False, folded


def _read_text(value, escaped):
    return json.loads(value) if escaped else value


_INSERT = text(
    "INSERT INTO messages (message_id, from_msisdn, to_msisdn, ts, ts_key, text, text_escaped, "
    "text_folded, created_at) VALUES (:message_id, :from_msisdn, :to_msisdn, :ts, :ts_key, :text, "
    ":text_escaped, :text_folded, :created_at) ON CONFLICT (message_id) DO NOTHING RETURNING 1"
)
_COUNT = text(
    "INSERT INTO sender_counts (from_msisdn, count) VALUES (:from_msisdn, :n) "
    "ON CONFLICT (from_msisdn) DO UPDATE SET count = sender_counts.count + excluded.count"
)


def _row(message, created_at):
    stored, escaped, folded = _stored_text(message["text"])
    return {
        "message_id": message["message_id"], "from_msisdn": message["from_msisdn"],
        "to_msisdn": message["to_msisdn"], "ts": message["ts"], "ts_key": message["ts_key"],
        "text": stored, "text_escaped": escaped, "text_folded": folded, "created_at": created_at,
    }


def insert_message(message):
    with db.engine.begin() as connection:
        if connection.execute(_INSERT, _row(message, now_iso())).first() is None:
            return False
        connection.execute(_COUNT, {"from_msisdn": message["from_msisdn"], "n": 1})
    return True


_STAGE = (
    "CREATE TEMPORARY TABLE lyftr_bulk (seq bigint, message_id text, from_msisdn text, "
    "to_msisdn text, ts text, ts_key text, text text, text_escaped boolean, text_folded text, "
    "created_at text) ON COMMIT DROP"
)
_COLUMNS = ("message_id", "from_msisdn", "to_msisdn", "ts", "ts_key", "text", "text_escaped",
            "text_folded", "created_at")
# The staged rows in order (the first of a repeated message_id wins), their senders counted.
_BULK_MOVE = (
    "WITH added AS ("
    " INSERT INTO messages (message_id, from_msisdn, to_msisdn, ts, ts_key, text, text_escaped,"
    " text_folded, created_at)"
    " SELECT message_id, from_msisdn, to_msisdn, ts, ts_key, text, text_escaped, text_folded,"
    " created_at FROM lyftr_bulk ORDER BY seq"
    " ON CONFLICT (message_id) DO NOTHING RETURNING from_msisdn),"
    " counted AS ("
    " INSERT INTO sender_counts (from_msisdn, count)"
    " SELECT from_msisdn, count(*) FROM added GROUP BY from_msisdn"
    " ON CONFLICT (from_msisdn) DO UPDATE SET count = sender_counts.count + excluded.count)"
    " SELECT count(*) FROM added"
)


def bulk_insert(messages, *, batch_size=BULK_BATCH_ROWS):
    """Copy each batch into a temporary table, then move it with one INSERT ... SELECT."""
    stored = 0
    batch = []
    for message in messages:
        batch.append(message)
        if len(batch) >= batch_size:
            stored += _insert_batch(batch)
            batch = []
    if batch:
        stored += _insert_batch(batch)
    return stored


def _insert_batch(messages):
    created_at = now_iso()
    with db.engine.begin() as connection:
        connection.exec_driver_sql(_STAGE)
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(f"COPY lyftr_bulk (seq, {', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for seq, message in enumerate(messages):
                row = _row(message, created_at)
                copy.write_row((seq, *(row[name] for name in _COLUMNS)))
        return connection.exec_driver_sql(_BULK_MOVE).scalar()


def after_bulk_load():
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE messages")
        connection.exec_driver_sql("ANALYZE sender_counts")


def _like_pattern(folded):
    escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped.replace("\x00", NUL_STANDIN) + "%"


def list_messages(*, limit, offset, from_msisdn=None, since_key=None, q=None, after=None):
    """As sqlite_store.list_messages: up to ``limit + 1`` rows from ``offset``, and the total."""
    filters, params = [], {}
    if from_msisdn is not None:
        filters.append("from_msisdn = :from_msisdn")
        params["from_msisdn"] = from_msisdn
    if since_key is not None:
        filters.append("ts_key >= :since_key")
        params["since_key"] = since_key
    folded = q.casefold() if q else None
    if folded is not None:
        filters.append("text_folded LIKE :pattern ESCAPE '\\'")
        params["pattern"] = _like_pattern(folded)
    exact = folded is not None and not index_answers(folded)

    # REPEATABLE READ: the page and the total from one snapshot.
    with db.engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
        with connection.begin():
            if exact:
                rows, total = _exact_search(connection, filters, params, folded, after,
                                            limit, offset)
            else:
                total = _total(connection, filters, params, from_msisdn, since_key, folded)
                rows = _page(connection, filters, params, after, limit, offset)
    return rows, total


_SELECT = "SELECT message_id, from_msisdn, to_msisdn, ts, text, ts_key, text_escaped FROM messages"
_ORDER = " ORDER BY ts_key, message_id"


def _where(filters):
    return (" WHERE " + " AND ".join(filters)) if filters else ""


def _page(connection, filters, params, after, limit, offset):
    filters, params = list(filters), dict(params)
    if after is not None:
        filters.append("(ts_key, message_id) > (:after_ts_key, :after_message_id)")
        params.update(after_ts_key=after[0], after_message_id=after[1])
    sql = _SELECT + _where(filters) + _ORDER + " LIMIT :limit OFFSET :offset"
    return _decoded(connection.execute(text(sql), {**params, "limit": limit + 1, "offset": offset}))


def _decoded(result):
    """Rows (message_id, from, to, ts, text, ts_key), with texts stored escaped read back."""
    return [(*row[:4], _read_text(row[4], row[6]), row[5]) for row in result]


def _total(connection, filters, params, from_msisdn, since_key, folded):
    # The maintained counts answer the unfiltered and the sender-only totals without a scan.
    if folded is None and since_key is None:
        if from_msisdn is None:
            sql = "SELECT coalesce(sum(count), 0) FROM sender_counts"
        else:
            sql = "SELECT count FROM sender_counts WHERE from_msisdn = :from_msisdn"
    else:
        sql = "SELECT count(*) FROM messages" + _where(filters)
    return int(connection.execute(text(sql), params).scalar() or 0)


def _exact_search(connection, filters, params, folded, after, limit, offset):
    """A term with NUL or U+FFFF: the index finds candidates (a superset), each is checked here."""
    sql = _SELECT + _where(filters) + _ORDER
    matches = [
        row for row in _decoded(connection.execute(text(sql), params))
        if row[4] is not None and folded in row[4].casefold()
    ]
    page = matches
    if after is not None:
        page = [row for row in page if (row[5], row[0]) > tuple(after)]
    return page[offset:offset + limit + 1], len(matches)


def stats(top):
    """As sqlite_store.stats: (total, senders, top senders, first ts, last ts), one snapshot."""
    with db.engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
        with connection.begin():
            total, senders = connection.execute(
                text("SELECT coalesce(sum(count), 0), count(*) FROM sender_counts")
            ).one()
            ranked = connection.execute(
                text("SELECT from_msisdn, count FROM sender_counts "
                     "ORDER BY count DESC, from_msisdn LIMIT :n"), {"n": top}
            ).all()
            first = connection.execute(
                text("SELECT ts FROM messages ORDER BY ts_key, message_id LIMIT 1")
            ).scalar()
            last = connection.execute(
                text("SELECT ts FROM messages ORDER BY ts_key DESC, message_id DESC LIMIT 1")
            ).scalar()
    return int(total), senders, ranked, first, last
