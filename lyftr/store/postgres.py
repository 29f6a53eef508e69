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

import itertools
import json
import os
from contextlib import contextmanager

from sqlalchemy import text

from lyftr.store import database_errors, sql
from lyftr.store.backend import MessageRecord, MessageRow, Stats
from lyftr.store.folding import NUL_STANDIN, index_answers, indexed_text
from lyftr.timestamps import now_iso

# Any constants: every process that migrates takes the first lock first; one numbering of the
# feed (sequence) runs at a time under the second; one purge at a time holds the third.
MIGRATION_LOCK_KEY = 0x6C796674  # "lyft"
SEQUENCE_LOCK_KEY = 0x6C796675
PURGE_LOCK_KEY = 0x6C796676
BULK_BATCH_ROWS = 50_000
_COLUMNS = (*sql.MESSAGE_COLUMNS, "text_escaped", "text_folded")
_INSERT = text(sql.insert_message(_COLUMNS, returning="1"))
_RECORD = text(
    f"SELECT {sql.RECORD_COLUMNS}, text_escaped FROM messages WHERE message_id = :message_id"
)
_COUNT = text(sql.COUNT_SENDER)
_STAGE = (
    "CREATE TEMPORARY TABLE lyftr_bulk (position bigint, message_id text, from_msisdn text, "
    "to_msisdn text, ts text, ts_key text, text text, provider text, type text, raw text, "
    "created_at text, text_escaped boolean, text_folded text) ON COMMIT DROP"
)


# The staged rows in order (the first of a repeated message_id wins), their senders counted; with
# NUMBERED, each given its feed position as it is written.
def _move_staged(numbered):
    seq_column, seq_value = (", seq", ", nextval('messages_seq')") if numbered else ("", "")
    return (
        "WITH added AS ("
        f" INSERT INTO messages ({', '.join(_COLUMNS)}{seq_column})"
        f" SELECT {', '.join(_COLUMNS)}{seq_value} FROM lyftr_bulk b"
        " WHERE NOT EXISTS (SELECT 1 FROM purged_ids p WHERE p.message_id = b.message_id)"
        " ORDER BY position"
        " ON CONFLICT (message_id) DO NOTHING RETURNING from_msisdn),"
        " counted AS ("
        " INSERT INTO sender_counts (from_msisdn, count)"
        " SELECT from_msisdn, count(*) FROM added GROUP BY from_msisdn"
        " ON CONFLICT (from_msisdn) DO UPDATE SET count = sender_counts.count + excluded.count)"
        " SELECT count(*) FROM added"
    )


_BULK_MOVE = {numbered: _move_staged(numbered) for numbered in (False, True)}
_SELECT = f"SELECT {sql.PAGE_COLUMNS}, text_escaped FROM messages"
# Numbers committed rows in arrival order. nextval is taken under SEQUENCE_LOCK_KEY, held to the
# commit: a later numbering starts after this one is visible, and takes higher numbers.
_SEQUENCE = text(
    "WITH pending AS ("
    " SELECT message_id FROM messages WHERE seq IS NULL"
    " ORDER BY created_at, message_id LIMIT :n FOR UPDATE),"  # LIMIT NULL: all
    " numbered AS (SELECT message_id, nextval('messages_seq') AS seq FROM pending)"
    " UPDATE messages m SET seq = numbered.seq FROM numbered"
    " WHERE m.message_id = numbered.message_id"
)
_FEED = text(
    f"SELECT {sql.RECORD_COLUMNS}, text_escaped FROM messages WHERE seq > :after "
    "ORDER BY seq LIMIT :limit"
)
# A batch of the oldest arrivals: their IDs remembered, their senders discounted, then deleted.
_PURGE = text(
    "WITH doomed AS ("
    " SELECT message_id FROM messages WHERE created_at < :before"
    " ORDER BY created_at, message_id LIMIT :n FOR UPDATE SKIP LOCKED),"
    " deleted AS (DELETE FROM messages m USING doomed WHERE m.message_id = doomed.message_id"
    " RETURNING m.message_id, m.from_msisdn),"
    " remembered AS (INSERT INTO purged_ids (message_id, purged_at)"
    " SELECT message_id, :purged_at FROM deleted ON CONFLICT (message_id) DO NOTHING),"
    " discounted AS (UPDATE sender_counts s SET count = s.count - d.n"
    " FROM (SELECT from_msisdn, count(*) AS n FROM deleted GROUP BY from_msisdn) d"
    " WHERE s.from_msisdn = d.from_msisdn RETURNING s.from_msisdn, s.count)"
    " SELECT (SELECT count(*) FROM deleted),"
    " ARRAY(SELECT from_msisdn FROM discounted WHERE count <= 0)"
)
_READ_ONLY = "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"


class PostgresBackend:
    """``backend.Backend`` on a PostgreSQL database."""

    def __init__(self, engine, config):
        self.engine = engine
        # Every read the API serves is stopped at this budget (statement_timeout, per statement).
        self.budget_ms = int(config["QUERY_BUDGET_MS"])
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
        return self._insert_batch(messages, numbered=False) if messages else 0

    def get_message(self, message_id):
        """See ``backend.Backend``."""
        with self._read() as connection:
            row = connection.execute(_RECORD, {"message_id": message_id}).first()
        if row is None:
            return None
        return _record(row)

    def sequence(self, limit):
        """See ``backend.Backend``."""
        with self.engine.connect() as connection:
            if connection.execute(text(sql.ANY_UNSEQUENCED)).first() is None:
                return 0
        with self.engine.begin() as connection:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCE_LOCK_KEY}
            )
            return connection.execute(_SEQUENCE, {"n": limit}).rowcount

    def feed(self, after, limit):
        with self._read() as connection:
            rows = connection.execute(_FEED, {"after": after, "limit": limit}).all()
        return [_record(row) for row in rows]

    def purge(self, before, limit, purged_at):
        """See ``backend.Backend``."""
        with self.engine.begin() as connection:
            purged, emptied = connection.execute(
                _PURGE, {"before": before, "n": limit, "purged_at": purged_at}
            ).one()
            if emptied:
                connection.execute(
                    text(
                        "DELETE FROM sender_counts WHERE from_msisdn = ANY(:senders) AND count <= 0"
                    ),
                    {"senders": list(emptied)},
                )
        return purged

    def count_purgeable(self, before):
        with self.engine.connect() as connection:
            return connection.execute(text(sql.PURGEABLE), {"before": before}).scalar()

    def forget_purged(self, before):
        with self.engine.begin() as connection:
            return connection.execute(text(sql.FORGET_PURGED), {"before": before}).rowcount

    @contextmanager
    def exclusive_purge(self):
        """A session advisory lock, not waited for, on a connection kept for the purge."""
        with self.engine.connect() as connection:
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": PURGE_LOCK_KEY}
            ).scalar()
            connection.commit()
            try:
                yield bool(got)
            finally:
                if got:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": PURGE_LOCK_KEY}
                    )
                    connection.commit()

    def export_page(self, *, from_msisdn, since_key, position, limit):
        statement, params = sql.export_page(
            from_msisdn=from_msisdn,
            since_key=since_key,
            position=position,
            columns=f"{sql.RECORD_COLUMNS}, text_escaped",
        )
        with self.engine.connect() as connection:
            rows = connection.execute(text(statement), {**params, "limit": limit}).all()
        return [_record(row) for row in rows]

    def backup(self, path):
        raise NotImplementedError(
            "on PostgreSQL, back up with pg_dump, given a libpq URL (postgresql://..., without "
            "'+psycopg'): pg_dump --format=custom --file=lyftr.dump postgresql://USER@HOST/DB; "
            "restore with pg_restore --clean --if-exists --dbname=postgresql://USER@HOST/DB "
            "lyftr.dump (see docs/operations.md)"
        )

    def bulk_insert(self, messages, *, batch_size=BULK_BATCH_ROWS):
        """Copy each batch into a temporary table, then move it with one INSERT ... SELECT."""
        batches = sql.batched(messages, batch_size)
        return sum(self._insert_batch(batch, numbered=True) for batch in batches)

    def _insert_batch(self, messages, *, numbered):
        created_at = now_iso()
        with self.engine.begin() as connection:
            if numbered:
                # A bulk load is numbered as it is written, holding the feed's numbering lock to
                # the commit (as sequence does), after the rows already waiting for a position.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCE_LOCK_KEY}
                )
                connection.execute(_SEQUENCE, {"n": None})
            connection.exec_driver_sql(_STAGE)
            cursor = connection.connection.driver_connection.cursor()
            columns = ", ".join(_COLUMNS)
            with cursor.copy(f"COPY lyftr_bulk (position, {columns}) FROM STDIN") as copy:
                for position, message in enumerate(messages):
                    row = _row(message, created_at)
                    copy.write_row((position, *(row[name] for name in _COLUMNS)))
            return connection.exec_driver_sql(_BULK_MOVE[numbered]).scalar()

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
        """A REPEATABLE READ transaction: several reads from one snapshot, each under the budget."""
        connection = self.engine.connect().execution_options(isolation_level="REPEATABLE READ")
        with connection, connection.begin():
            self._limit(connection)
            yield connection

    @contextmanager
    def _read(self):
        """A connection whose transaction's statements each stop at the budget."""
        with self.engine.connect() as connection:
            self._limit(connection)
            yield connection

    def _limit(self, connection):
        # SET LOCAL: for this transaction only; the pooled connection keeps no limit afterwards.
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {self.budget_ms}")

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

    # --- the console --------------------------------------------------------------------------

    def list_arrivals(self, *, limit, from_msisdn, received_since, q, before):
        """See ``backend.Backend``: one statement; the planner picks ix_messages_created_at
        backwards (a common sender or term), or the sender's or the trigram index and a sort."""
        conditions, params = sql.arrivals(received_since=received_since, before=before)
        folded = q.casefold() if q else None
        if from_msisdn is not None:
            conditions.append("from_msisdn = :from_msisdn")
            params["from_msisdn"] = from_msisdn
        if folded is not None:
            conditions.append("text_folded LIKE :pattern ESCAPE '\\'")
            params["pattern"] = _like_pattern(folded)
        query = (
            f"SELECT {sql.RECORD_COLUMNS}, text_escaped FROM messages{sql.where(conditions)}"
            f"{sql.ARRIVAL_ORDER}"
        )
        exact = folded is not None and not index_answers(folded)
        if not exact:
            query += " LIMIT :n"
            params["n"] = limit + 1
        with self._read() as connection:
            records = [_record(row) for row in connection.execute(text(query), params)]
        if exact:  # the index found candidates (a superset): each is checked here
            matches = (r for r in records if r.text is not None and folded in r.text.casefold())
            records = list(itertools.islice(matches, limit + 1))
        return records

    def arrivals_per_hour(self, hours):
        statement, params = sql.arrivals_per_hour(hours)
        with self._read() as connection:
            return [(hour, int(n)) for hour, n in connection.execute(text(statement), params)]


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


def _record(row):
    """A MessageRecord from a row of RECORD_COLUMNS and text_escaped."""
    text_value = json.loads(row.text) if row.text_escaped else row.text
    return MessageRecord(*row[:4], text_value, *row[5:10])


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
