"""The SQLite backend: the queries of insert-once, bulk load, listing, search and stats on one file.

The schema (tables, indexes, the FTS5 search index) comes from the migrations. A message row, its
sender's count and its search-index entry are written in one transaction. Writers take turns in a
``sqlite_writer.WriterQueue`` and deliveries that wait together are committed together; reads and
the webhook use raw sqlite3 connections from a ``sqlite_connections.ConnectionCache`` with SQL text
(SQLAlchemy's statement building costs more than these queries). Reads take totals from the
maintained sender counts or from the search index where they can, and choose how to find a page of
search results by how common the term is (``list_messages``). Measurements: ``make bench``.
"""

import os
import shutil
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError

from . import database_errors, sql
from .backend import MessageRecord, MessageRow, Stats
from .config import sqlite_path
from .folding import index_answers, indexed_text
from .sqlite_connections import ConnectionCache, as_sqlalchemy_error, tune
from .sqlite_writer import Delivery, WriterQueue
from .timestamps import now_iso

# Substring search goes through a trigram index: terms of at least three characters use it, shorter
# ones scan the same (case-folded) column. Both match exactly what a scan would.
TRIGRAM = 3
# Below this much free space on the database's filesystem, readiness says it cannot take writes:
# a transaction appends a few pages (4 KiB each) to the WAL, a checkpoint more.
MIN_FREE_BYTES = 256 * 1024

_INSERT_ONE = sql.insert_message(returning="rowid", named=False)
_RECORD = f"SELECT {sql.RECORD_COLUMNS} FROM messages WHERE message_id = ?"
_SEARCH_ONE = "INSERT INTO messages_fts (rowid, text_folded) VALUES (?, ?)"
_EXISTS = "SELECT 1 FROM messages WHERE message_id = ?"

# bulk_insert writes this many messages per transaction: big enough that commits and index flushes
# are rare, small enough that the WAL stays bounded and the write lock is released regularly.
BULK_BATCH_ROWS = 50_000
# Page cache of the bulk loader's connection while it loads (KiB); restored afterwards.
BULK_CACHE_KIB = 256 * 1024
# FTS5 keeps this many bytes of new index entries in memory before writing a segment (default 1 MB):
# bigger segments, fewer merges. Stored in the index's config; one-message transactions of the
# server write their segment at commit whatever it is.
BULK_FTS_HASHSIZE = 16 * 1024 * 1024
# The senders of the rows a batch added (rowid > the largest rowid before it), added to their
# counts.
_BULK_COUNT = (
    "INSERT INTO sender_counts (from_msisdn, count) "
    "SELECT from_msisdn, count(*) FROM messages WHERE rowid > ? GROUP BY from_msisdn "
    "ON CONFLICT (from_msisdn) DO UPDATE SET count = sender_counts.count + excluded.count"
)
_BULK_NEW_TEXTS = "SELECT rowid, text FROM messages WHERE rowid > ? AND text <> ''"
# After a load this big the search index is merged into one segment. Left as a pile of segments,
# FTS5 would merge them later inside some webhook's commit, which then takes seconds.
BULK_MERGE_AFTER_ROWS = BULK_BATCH_ROWS
# Pages of merge work per transaction: the write lock is released between steps (~0.1-0.3 s each).
MERGE_STEP_PAGES = 2000

# The folded texts as the index stores them: FTS5's content table (documented layout: the rowid as
# "id", the column as "c0"). Read directly it scans about twice as fast as through messages_fts.
_FOLDED_TEXTS = "messages_fts_content"
_CONTAINS = "instr(c0, :term) > 0"
# Walking the rows in page order and checking each for the term, until the page is full: for a
# term found in many rows, only a few rows are read. Exact for terms without NUL (see _search).
_MATCHES_ROW = f"EXISTS (SELECT 1 FROM {_FOLDED_TEXTS} WHERE id = messages.rowid AND {_CONTAINS})"


class SQLiteBackend:
    """``backend.Backend`` on a SQLite file (or an in-memory database)."""

    def __init__(self, engine, config):
        tune(engine, config["DB_BUSY_TIMEOUT_MS"])
        self.engine = engine
        self.path = sqlite_path(str(engine.url))
        self.connections = ConnectionCache(engine)
        self.writer = WriterQueue(self.path, config["DB_BUSY_TIMEOUT_MS"])

    # --- writing ------------------------------------------------------------------------------

    @contextmanager
    def write_transaction(self):
        """A SQLAlchemy connection in a ``BEGIN IMMEDIATE`` transaction, holding the write turn."""
        self._make_directory()
        with self.engine.connect() as connection:
            connection.execution_options(write=True)
            with self.writer.turn(), connection.begin():
                yield connection

    # The migrations run in a write transaction: other processes' migrations and writes wait.
    migration_transaction = write_transaction

    def _make_directory(self):
        """A database whose directory is missing is created with it (once it can be)."""
        if self.path:
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            except OSError as exc:
                raise OperationalError(None, None, exc) from exc

    def insert_message(self, message):
        """See ``backend.Backend``. Concurrent calls in one process share a transaction (each in its
        own savepoint, so one failing message does not fail the others); the result is the same
        as if each had its own transaction, in the order they queued."""
        if self._stored(message["message_id"]):
            return False  # a redelivery: rows are never deleted, so no write lock is needed
        row = sql.message_values(message, now_iso())
        delivery = Delivery(row, indexed_text(message["text"]) if message["text"] else None)
        self.writer.submit(delivery, self._write_deliveries)
        if delivery.error is not None:
            raise as_sqlalchemy_error(delivery.error)
        return delivery.created

    @contextmanager
    def _immediate(self):
        """A cursor in a ``BEGIN IMMEDIATE`` transaction, committed when the block ends and rolled
        back if it raises. The caller holds the write turn."""
        with self.connections.connection() as connection:
            cursor = connection.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.rollback()
                raise
            finally:
                cursor.close()

    def insert_batch(self, messages):
        """See ``backend.Backend``."""
        created_at = now_iso()
        deliveries = [
            Delivery(
                sql.message_values(m, created_at), indexed_text(m["text"]) if m["text"] else None
            )
            for m in messages
        ]
        with self.writer.turn(), self._immediate() as cursor:
            stored = sum(_store(cursor, delivery) for delivery in deliveries)
        return stored

    def get_message(self, message_id):
        """See ``backend.Backend``."""
        with self.connections.connection() as connection:
            row = connection.execute(_RECORD, (message_id,)).fetchone()
        return MessageRecord._make(row) if row else None

    def _stored(self, message_id):
        with self.connections.connection() as connection:
            return connection.execute(_EXISTS, (message_id,)).fetchone() is not None

    def _write_deliveries(self, batch):
        """Insert every delivery of ``batch`` in one transaction; set each one's outcome."""
        alone = len(batch) == 1
        try:
            with self._immediate() as cursor:
                for delivery in batch:
                    if alone:
                        delivery.created = _store(cursor, delivery)
                        continue
                    cursor.execute("SAVEPOINT delivery")
                    try:
                        delivery.created = _store(cursor, delivery)
                    except Exception as exc:
                        cursor.execute("ROLLBACK TO delivery")
                        delivery.error = exc
                    cursor.execute("RELEASE delivery")
        except BaseException as exc:  # nothing was committed: every delivery of the batch failed
            for delivery in batch:
                delivery.created, delivery.error = None, exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for delivery in batch:
                delivery.done = True

    def bulk_insert(self, messages, *, batch_size=BULK_BATCH_ROWS):
        """See ``backend.Backend``: each batch is one transaction, so the search index and the
        counts never disagree with the rows."""
        stored = 0
        for batch in sql.batched(messages, batch_size):
            created_at = now_iso()
            stored += self._insert_batch([sql.message_values(m, created_at) for m in batch])
        if stored >= BULK_MERGE_AFTER_ROWS:
            self.merge_search_index()
        return stored

    def _insert_batch(self, rows):
        with self.write_transaction() as connection:
            cache_size = connection.exec_driver_sql("PRAGMA cache_size").scalar()
            connection.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
            try:
                # Under BEGIN IMMEDIATE nobody else writes: SQLite gives new rows rowids above the
                # largest one, so "rowid > before" is exactly this batch's new rows.
                connection.exec_driver_sql(
                    "INSERT INTO messages_fts (messages_fts, rank) VALUES ('hashsize', ?)",
                    (BULK_FTS_HASHSIZE,),
                )
                before = connection.exec_driver_sql("SELECT max(rowid) FROM messages").scalar()
                before = before or 0
                if before >= 2**63 - 1:  # SQLite would pick random rowids from here on
                    raise OverflowError("messages rowids exhausted")
                # The DB-API cursor: positional rows, no Row objects for tens of thousands of rows.
                cursor = connection.connection.cursor()
                try:
                    cursor.executemany(_BULK_INSERT_QMARK, rows)
                    # ON CONFLICT DO NOTHING: rowcount is the number of rows actually inserted.
                    stored = cursor.rowcount
                    cursor.execute(_BULK_COUNT, (before,))
                    texts = cursor.execute(_BULK_NEW_TEXTS, (before,)).fetchall()
                    cursor.executemany(
                        _SEARCH_ONE, [(rowid, indexed_text(value)) for rowid, value in texts]
                    )
                finally:
                    cursor.close()
                return stored
            finally:
                connection.exec_driver_sql(f"PRAGMA cache_size = {int(cache_size)}")

    def merge_search_index(self):
        """Merge every segment of the search index into one, in short write transactions."""
        while True:
            with self.write_transaction() as connection:
                driver = connection.connection.driver_connection
                before = driver.total_changes
                # Negative: merge segments of every level, as 'optimize' does, a step at a time.
                connection.exec_driver_sql(
                    "INSERT INTO messages_fts (messages_fts, rank) VALUES ('merge', ?)",
                    (-MERGE_STEP_PAGES,),
                )
                done = driver.total_changes - before < 2  # FTS5's documented "no work left" signal
            if done:
                return

    def after_bulk_load(self):
        """Copy the WAL into the database and empty it, if no reader is in the way."""
        with self.connections.connection() as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def check_writable(self):
        if self.path is None:
            return None
        directory = os.path.dirname(self.path)
        try:
            free = shutil.disk_usage(directory).free
        except OSError:  # no directory yet: nothing to write to, which the read check reports
            return None
        if free < MIN_FREE_BYTES:
            return database_errors.DISK_FULL
        # The directory too: SQLite creates the -wal and -shm files beside the database.
        if not all(os.access(p, os.W_OK) for p in (self.path, directory) if os.path.exists(p)):
            return database_errors.READ_ONLY
        return None

    # --- reading ------------------------------------------------------------------------------

    def list_messages(self, *, limit, offset, from_msisdn=None, since_key=None, q=None, after=None):
        """See ``backend.Backend``."""
        filters, params = sql.filters(from_msisdn=from_msisdn, since_key=since_key)
        search = _search(q) if q else None

        with self.connections.connection() as connection:
            connection.execute("BEGIN")  # the page and the total from one snapshot
            try:
                total = _total(connection, filters, params, from_msisdn, since_key, search)
                where, where_params = list(filters), dict(params)
                if after is not None:
                    condition, after_params = sql.after(after)
                    where.append(condition)
                    where_params.update(after_params)
                if search is not None:
                    kind, condition, search_params = search
                    wanted = limit + 1 + offset
                    if kind != "exact" and _walk_is_cheaper(connection, wanted, total, from_msisdn):
                        where.append(_MATCHES_ROW)
                        where_params["term"] = q.casefold()
                    else:
                        where.append(condition)
                        where_params.update(search_params)
                query = (
                    f"SELECT {sql.PAGE_COLUMNS} FROM messages{sql.where(where)}{sql.PAGE_ORDER}"
                    " LIMIT :limit OFFSET :offset"
                )
                where_params.update(limit=limit + 1, offset=offset)
                rows = connection.execute(query, where_params).fetchall()
            finally:
                connection.rollback()
        return [MessageRow._make(row) for row in rows], total

    def stats(self, top):
        """See ``backend.Backend``."""
        with self.connections.connection() as connection:
            connection.execute("BEGIN")
            try:
                total, senders = connection.execute(sql.STATS_TOTALS).fetchone()
                ranked = connection.execute(sql.STATS_TOP, {"top": top}).fetchall()
                first = connection.execute(sql.FIRST_TS).fetchone()
                last = connection.execute(sql.LAST_TS).fetchone()
            finally:
                connection.rollback()
        return Stats(total, senders, ranked, first and first[0], last and last[0])


_BULK_INSERT_QMARK = sql.insert_message(named=False)


def _store(cursor, delivery):
    found = cursor.execute(_INSERT_ONE, delivery.row).fetchall()
    if not found:
        return False
    cursor.execute(sql.COUNT_SENDER, {"from_msisdn": delivery.row[1], "n": 1})
    if delivery.folded:
        cursor.execute(_SEARCH_ONE, (found[0][0], delivery.folded))
    return True


def _search(q):
    """How ``q`` is matched: (kind, condition on ``messages``, its parameters).

    "index": a trigram phrase query. A phrase of trigrams at consecutive positions is exactly a
    substring of the indexed text, so the index alone answers, without re-reading any text.
    "scan": shorter than a trigram, every indexed text is searched with instr().
    "exact": the term has a NUL (or the character standing for it): the texts themselves are read.
    All three match what ``q.casefold() in text.casefold()`` says for every row.
    """
    folded = q.casefold()
    if not index_answers(folded):
        return "exact", "instr(lyftr_casefold(messages.text), :term) > 0", {"term": folded}
    if len(folded) >= TRIGRAM:
        phrase = '"' + folded.replace('"', '""') + '"'
        return (
            "index",
            "messages.rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :phrase)",
            {"phrase": phrase},
        )
    condition = f"messages.rowid IN (SELECT id FROM {_FOLDED_TEXTS} WHERE {_CONTAINS})"
    return "scan", condition, {"term": folded}


def _total(connection, filters, params, from_msisdn, since_key, search):
    # The maintained counts and the search index answer the common cases without the messages.
    if search is None and since_key is None:
        if from_msisdn is None:
            query, args = sql.TOTAL, {}
        else:
            query, args = sql.SENDER_TOTAL, params
    elif search is not None and not filters and search[0] != "exact":
        kind, _, args = search
        if kind == "index":
            query = "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH :phrase"
        else:
            query = f"SELECT count(*) FROM {_FOLDED_TEXTS} WHERE {_CONTAINS}"
    else:
        conditions, args = list(filters), dict(params)
        if search is not None:
            conditions.append(search[1])
            args.update(search[2])
        query = "SELECT count(*) FROM messages" + sql.where(conditions)
    row = connection.execute(query, args).fetchone()
    return row[0] if row and row[0] is not None else 0


def _walk_is_cheaper(connection, rows_wanted, total, from_msisdn):
    """Whether to walk the rows in order checking each (about rows_wanted * population / total
    rows read) rather than fetch every match and sort them (total rows read, each costlier)."""
    if total == 0:
        return False
    if from_msisdn is not None:
        row = connection.execute(sql.SENDER_TOTAL, {"from_msisdn": from_msisdn}).fetchone()
    else:
        row = connection.execute(sql.TOTAL).fetchone()
    population = row[0] if row else 0
    return rows_wanted * population <= total * total
