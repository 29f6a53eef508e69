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

from . import database_errors, sql
from .backend import MessageRecord, MessageRow, Stats
from .folding import NUL_STANDIN, index_answers, indexed_text
from .timestamps import now_iso

# Any constant: every process that migrates takes this lock first.
MIGRATION_LOCK_KEY = 0x6C796674  # "lyft"
BULK_BATCH_ROWS = 50_000
_COLUMNS = (*sql.MESSAGE_COLUMNS, "text_escaped", "text_folded")
_INSERT = text(sql.insert_message(_COLUMNS, returning="1"))
_RECORD = text(
    f"SELECT {sql.RECORD_COLUMNS}, text_escaped FROM messages WHERE message_id = :message_id"
)
_COUNT = text(sql.COUNT_SENDER)
_STAGE = (
    "CREATE TEMPORARY TABLE lyftr_bulk (seq bigint, message_id text, from_msisdn text, "
    "to_msisdn text, ts text, ts_key text, text text, provider text, type text, raw text, "
    "created_at text, text_escaped boolean, text_folded text) ON COMMIT DROP"
)
# The staged rows in order (the first of a repeated message_id wins), their senders counted.
_BULK_MOVE = (
    "WITH added AS ("
    f" INSERT INTO messages ({', '.join(_COLUMNS)})"
    f" SELECT {', '.join(_COLUMNS)} FROM lyftr_bulk ORDER BY seq"
    " ON CONFLICT (message_id) DO NOTHING RETURNING from_msisdn),"
    " counted AS ("
    " INSERT INTO sender_counts (from_msisdn, count)"
    " SELECT from_msisdn, count(*) FROM added GROUP BY from_msisdn"
    " ON CONFLICT (from_msisdn) DO UPDATE SET count = sender_counts.count + excluded.count)"
    " SELECT count(*) FROM added"
)
_SELECT = f"SELECT {sql.PAGE_COLUMNS}, text_escaped FROM messages"
_READ_ONLY = "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"


class PostgresBackend:
    """``backend.Backend`` on a PostgreSQL database."""

    def __init__(self, engine, config):
        self.engine = engine
        # Connections from a parent's pool are not used in a forked child (Gunicorn workers, CLI).
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))

    @contextmanager
    def migration_transaction(self):
        with self.engine.connect() as connection, connection.begin():
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            yield connection

    def insert_message(self, message):
        with self.engine.begin() as connection:
            if connection.execute(_INSERT, _row(message, now_iso())).first() is None:
                return False
            connection.execute(_COUNT, {"from_msisdn": message["from_msisdn"], "n": 1})
        return True

    def insert_batch(self, messages):
        """See ``backend.Backend``: the bulk load's one transaction, at any size."""
        return self._insert_batch(messages) if messages else 0

    def get_message(self, message_id):
        """See ``backend.Backend``."""
        with self.engine.connect() as connection:
            row = connection.execute(_RECORD, {"message_id": message_id}).first()
        if row is None:
            return None
        text_value = json.loads(row.text) if row.text_escaped else row.text
        return MessageRecord(*row[:4], text_value, *row[5:9])

    def bulk_insert(self, messages, *, batch_size=BULK_BATCH_ROWS):
        """Copy each batch into a temporary table, then move it with one INSERT ... SELECT."""
        return sum(self._insert_batch(batch) for batch in sql.batched(messages, batch_size))

    def _insert_batch(self, messages):
        created_at = now_iso()
        with self.engine.begin() as connection:
            connection.exec_driver_sql(_STAGE)
            cursor = connection.connection.driver_connection.cursor()
            with cursor.copy(f"COPY lyftr_bulk (seq, {', '.join(_COLUMNS)}) FROM STDIN") as copy:
                for seq, message in enumerate(messages):
                    row = _row(message, created_at)
                    copy.write_row((seq, *(row[name] for name in _COLUMNS)))
            return connection.exec_driver_sql(_BULK_MOVE).scalar()

    def after_bulk_load(self):
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE messages")
            connection.exec_driver_sql("ANALYZE sender_counts")

    def check_writable(self):
        with self.engine.connect() as connection:
            read_only = connection.execute(text(_READ_ONLY)).scalar()
        return database_errors.READ_ONLY if read_only else None

    @contextmanager
    def _snapshot(self):
        """A REPEATABLE READ transaction: several reads from one snapshot."""
        connection = self.engine.connect().execution_options(isolation_level="REPEATABLE READ")
        with connection, connection.begin():
            yield connection

    def list_messages(self, *, limit, offset, from_msisdn=None, since_key=None, q=None, after=None):
        """See ``backend.Backend``."""
        filters, params = sql.filters(from_msisdn=from_msisdn, since_key=since_key)
        folded = q.casefold() if q else None
        if folded is not None:
            filters.append("text_folded LIKE :pattern ESCAPE '\\'")
            params["pattern"] = _like_pattern(folded)

        with self._snapshot() as connection:
            if folded is not None and not index_answers(folded):
                return _exact_search(connection, filters, params, folded, after, limit, offset)
            total = _total(connection, filters, params, from_msisdn, since_key, folded)
            if after is not None:
                condition, after_params = sql.after(after)
                filters, params = [*filters, condition], {**params, **after_params}
            query = _SELECT + sql.where(filters) + sql.PAGE_ORDER + " LIMIT :limit OFFSET :offset"
            params.update(limit=limit + 1, offset=offset)
            return _decoded(connection.execute(text(query), params)), total

    def stats(self, top):
        """See ``backend.Backend``."""
        with self._snapshot() as connection:
            total, senders = connection.execute(text(sql.STATS_TOTALS)).one()
            ranked = connection.execute(text(sql.STATS_TOP), {"top": top}).all()
            first = connection.execute(text(sql.FIRST_TS)).scalar()
            last = connection.execute(text(sql.LAST_TS)).scalar()
        return Stats(int(total), senders, [tuple(row) for row in ranked], first, last)


def _stored_text(value):
    """(text column, text_escaped, text_folded) for a message text (None stays None)."""
    if value is None:
        return None, False, None
    folded = indexed_text(value)
    if "\x00" in value:
        return json.dumps(value), True, folded
    return value, False, folded


def _row(message, created_at):
    row = dict(zip(sql.MESSAGE_COLUMNS, sql.message_values(message, created_at), strict=True))
    row["text"], row["text_escaped"], row["text_folded"] = _stored_text(message["text"])
    return row


def _like_pattern(folded):
    escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped.replace("\x00", NUL_STANDIN) + "%"


def _decoded(result):
    """MessageRows, with texts stored escaped read back."""
    return [
        MessageRow(*row[:4], json.loads(row[4]) if row[6] else row[4], row[5]) for row in result
    ]


def _total(connection, filters, params, from_msisdn, since_key, folded):
    # The maintained counts answer the unfiltered and the sender-only totals without a scan.
    if folded is None and since_key is None:
        query = sql.TOTAL if from_msisdn is None else sql.SENDER_TOTAL
    else:
        query = "SELECT count(*) FROM messages" + sql.where(filters)
    return int(connection.execute(text(query), params).scalar() or 0)


def _exact_search(connection, filters, params, folded, after, limit, offset):
    """A term with NUL or U+FFFF: the index finds candidates (a superset), each is checked here."""
    query = _SELECT + sql.where(filters) + sql.PAGE_ORDER
    matches = [
        row
        for row in _decoded(connection.execute(text(query), params))
        if row.text is not None and folded in row.text.casefold()
    ]
    page = matches
    if after is not None:
        page = [row for row in page if (row.ts_key, row.message_id) > tuple(after)]
    return page[offset : offset + limit + 1], len(matches)
