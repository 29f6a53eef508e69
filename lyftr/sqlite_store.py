"""The SQLite backend: insert-once, listing, stats and the readiness probe on one database file.

The schema (tables, indexes, the FTS5 search index) comes from the migrations (lyftr/migrations).
Writes are transactions: a message row, its sender's count and its search-index entry land together
or not at all. A write transaction starts with ``BEGIN IMMEDIATE``; before it, writers queue in their
process (a lock) and between processes (an flock of a file beside the database), so each starts the
moment the previous one commits instead of sleeping in SQLite's busy handler. Deliveries that queue
together are written in one transaction (a group commit, see ``insert_message``).

Reads take totals from the maintained sender counts or from the search index where they can, and
choose how to find a page of search results by how common the term is (see ``list_messages``).

The hot paths use sqlite3 directly, with SQL text (SQLAlchemy's statement building costs more than
the queries); their errors are wrapped as SQLAlchemy's, so the app's handlers treat them alike.
Measurements: ``make bench`` (bench/run.py).
"""

import os
import sqlite3
import threading
import time
from contextlib import contextmanager

try:
    import fcntl
except ImportError:  # not on POSIX: no file lock between processes
    fcntl = None

from flask import current_app
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, OperationalError

from .config import sqlite_path
from .extensions import db
from .folding import index_answers, indexed_text
from .timestamps import now_iso

# Substring search goes through a trigram index: terms of at least three characters use it, shorter
# ones scan the same (case-folded) column. Both match exactly what a scan would.
TRIGRAM = 3
def configure(engine, config):
    """Tune every connection the engine makes (WAL, busy timeout, durability, BEGIN IMMEDIATE)."""
    _configure_sqlite(engine, config["DB_BUSY_TIMEOUT_MS"])


def _configure_sqlite(engine, busy_timeout_ms):
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, connection_record):
        # Let SQLAlchemy's BEGIN below, not the sqlite3 module, decide when a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: a message acknowledged with 200 survives power loss, not only a process crash.
        cursor.execute("PRAGMA synchronous = FULL")
        # After a big transaction (a bulk load) the WAL file shrinks back to this once checkpointed.
        cursor.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        cursor.close()
        dbapi_connection.create_function("lyftr_casefold", 1, _casefold, deterministic=True)

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        immediate = connection.get_execution_options().get("write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


WAL_SIZE_LIMIT = 64 * 1024 * 1024


def _casefold(value):
    return value.casefold() if isinstance(value, str) else None


# One writer at a time per process. SQLite allows one writer per database anyway; without this, the
# threads (greenlets) of a worker that lose the race sleep in SQLite's busy handler (1, 2, 5, 10...
# ms steps; under gevent blocking the whole worker) while the lock is free most of that time.
_writer = threading.Lock()


def _deadline():
    return time.monotonic() + current_app.config["DB_BUSY_TIMEOUT_MS"] / 1000


@contextmanager
def _writer_turn(deadline=None):
    timeout = max((deadline or _deadline()) - time.monotonic(), 0)
    if not _writer.acquire(timeout=timeout):
        raise _locked("database is locked (writer queue)")
    try:
        yield
    finally:
        _writer.release()


# Between processes (Gunicorn workers, the CLI), writers queue on an flock(2) of a file beside the
# database, polled every few hundred microseconds, for the same reason: SQLite's own busy handler
# backs off in steps of up to 100 ms. Whoever holds it then gets SQLite's write lock at once (unless
# a writer that does not take it, such as an outside tool, holds that: then the busy timeout waits).
_LOCK_SUFFIX = "-writer.lock"
_lock_file = {"pid": None, "path": None, "fd": None}
_POLL_MIN_S, _POLL_MAX_S = 0.0001, 0.001


def _writer_lock_fd():
    """This process's descriptor of the lock file (an flock is per open file: not across a fork)."""
    if fcntl is None:
        return None
    path = current_app.extensions.get("lyftr.sqlite_path", "")
    if path == "":
        path = current_app.extensions["lyftr.sqlite_path"] = sqlite_path(str(db.engine.url))
    if path is None:
        return None
    # Called with _writer held: nobody in this process is using the descriptor being replaced.
    if _lock_file["pid"] != os.getpid() or _lock_file["path"] != path:
        if _lock_file["fd"] is not None:
            os.close(_lock_file["fd"])
        try:
            fd = os.open(path + _LOCK_SUFFIX, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:  # a read-only directory: SQLite's busy handler alone does the queueing
            fd = None
        _lock_file.update(pid=os.getpid(), path=path, fd=fd)
    return _lock_file["fd"]


@contextmanager
def _database_turn(deadline=None):
    fd = _writer_lock_fd()
    if fd is None:
        yield
        return
    deadline = deadline or _deadline()
    delay = _POLL_MIN_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise _locked("database is locked (writer queue)") from None
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX_S)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def write_transaction():
    with db.engine.connect() as connection:
        connection.execution_options(write=True)
        with _writer_turn(), _database_turn(), connection.begin():
            yield connection


def prepare():
    """Create the database's directory if missing (a database that cannot be opened: 503, not ready)."""
    path = sqlite_path(str(db.engine.url))
    if path:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as exc:
            raise OperationalError(None, None, exc) from exc


# The migrations run in a write transaction: other processes' migrations and writes wait for it.
migration_transaction = write_transaction


_INSERT_ONE = (
    "INSERT INTO messages (message_id, from_msisdn, to_msisdn, ts, ts_key, text, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING RETURNING rowid"
)
_COUNT_ONE = (
    "INSERT INTO sender_counts (from_msisdn, count) VALUES (?, 1) "
    "ON CONFLICT (from_msisdn) DO UPDATE SET count = sender_counts.count + 1"
)
_SEARCH_ONE = "INSERT INTO messages_fts (rowid, text_folded) VALUES (?, ?)"
_EXISTS = "SELECT 1 FROM messages WHERE message_id = ?"


class _Delivery:
    """One insert_message call waiting for, or done by, a group commit."""

    __slots__ = ("row", "folded", "done", "created", "error")

    def __init__(self, row, folded):
        self.row, self.folded = row, folded
        self.done, self.created, self.error = False, None, None


# Deliveries of this process waiting to be written. One caller at a time leads: it takes the write
# lock and writes every pending delivery in one transaction (a group commit: one BEGIN, one commit
# and its fsync for all of them), then wakes the others. They wait on the condition, not on the
# lock, so a delivery written by someone else is answered as soon as its commit is done.
_queue = threading.Condition()
_pending = []
_leader = {"active": False}


def insert_message(message):
    """Store ``message`` unless its ``message_id`` exists. True if stored, False if a duplicate.

    Returns once the row is committed. Concurrent calls in one process share a transaction (each in
    its own savepoint, so one failing message does not fail the others); the result is the same as
    if each had its own transaction, in the order they queued.
    """
    if _stored(message["message_id"]):
        # A redelivery: rows are never deleted, so this answer cannot change. No write lock taken.
        return False
    row = (
        message["message_id"], message["from_msisdn"], message["to_msisdn"], message["ts"],
        message["ts_key"], message["text"], now_iso(),
    )
    delivery = _Delivery(row, indexed_text(message["text"]) if message["text"] else None)
    deadline = time.monotonic() + current_app.config["DB_BUSY_TIMEOUT_MS"] / 1000
    with _queue:
        _pending.append(delivery)
        while not delivery.done and _leader["active"]:
            remaining = deadline - time.monotonic()
            if remaining <= 0 and delivery in _pending:
                _pending.remove(delivery)
                raise _locked("database is locked (writer queue)")
            # Past the deadline but taken by the leader: its commit decides (it is bounded too).
            _queue.wait(remaining if remaining > 0 else None)
        leading = not delivery.done
        if leading:
            _leader["active"] = True
    if leading:
        try:
            _lead(delivery, deadline)
        finally:
            with _queue:
                _leader["active"] = False
                _queue.notify_all()
    if delivery.error is not None:
        raise _as_sqlalchemy_error(delivery.error)
    return delivery.created


def _lead(delivery, deadline):
    """Write what is pending, this call's delivery included, holding both write locks."""
    try:
        with _writer_turn(deadline), _database_turn(deadline):
            # Taken only now: what queued while this waited for the locks goes along.
            with _queue:
                batch = _pending[:]
                _pending.clear()
            _write_deliveries(batch)
    except Exception:
        with _queue:  # the locks were not had: only this delivery fails, the others stay queued
            if delivery in _pending:
                _pending.remove(delivery)
        raise


# The hot paths (webhook, reads) take sqlite3 connections from this free list: SQLAlchemy's pool
# costs more Python per checkout than the query they run. Connections are made by the engine (so
# they get the same settings) and detached from its pool; one list per process and engine.
_free = {"pid": None, "engine": None, "connections": []}
_FREE_MAX = 16


@contextmanager
def _dbapi_connection():
    """A sqlite3 connection in autocommit mode (statements say BEGIN and COMMIT themselves), with
    no transaction open; its errors are wrapped as SQLAlchemy would wrap them."""
    engine = db.engine
    if _free["pid"] != os.getpid() or _free["engine"] is not engine:
        stale = _free["connections"] if _free["pid"] == os.getpid() else []
        _free.update(pid=os.getpid(), engine=engine, connections=[])
        for connection in stale:
            connection.close()
    free = _free["connections"]
    try:
        connection = free.pop()  # atomic: threads never get the same one
    except IndexError:
        proxy = engine.raw_connection()
        connection = proxy.driver_connection
        proxy.detach()
    reusable = True
    try:
        yield connection
    except sqlite3.Error as exc:
        reusable = False
        raise _as_sqlalchemy_error(exc) from exc
    except BaseException:
        reusable = False
        raise
    finally:
        if reusable and not connection.in_transaction and len(free) < _FREE_MAX:
            free.append(connection)
        else:
            connection.close()


def _stored(message_id):
    with _dbapi_connection() as connection:
        return connection.execute(_EXISTS, (message_id,)).fetchone() is not None


def _write_deliveries(batch):
    """Insert every delivery of ``batch`` in one transaction; set each one's outcome."""
    alone = len(batch) == 1
    try:
        with _dbapi_connection() as connection:
            cursor = connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                for delivery in batch:
                    if alone:
                        delivery.created = _store(cursor, delivery)
                        continue
                    cursor.execute("SAVEPOINT delivery")
                    try:
                        delivery.created = _store(cursor, delivery)
                    except sqlite3.Error as exc:
                        cursor.execute("ROLLBACK TO delivery")
                        delivery.error = exc
                    cursor.execute("RELEASE delivery")
                cursor.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.rollback()
                raise
            finally:
                cursor.close()
    except BaseException as exc:  # nothing was committed: every delivery of the batch failed
        for delivery in batch:
            delivery.created, delivery.error = None, exc
        if not isinstance(exc, Exception):
            raise
    finally:
        for delivery in batch:
            delivery.done = True


def _store(cursor, delivery):
    found = cursor.execute(_INSERT_ONE, delivery.row).fetchall()
    if not found:
        return False
    cursor.execute(_COUNT_ONE, (delivery.row[1],))
    if delivery.folded:
        cursor.execute(_SEARCH_ONE, (found[0][0], delivery.folded))
    return True


def _locked(reason):
    return OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError(reason))


def _as_sqlalchemy_error(exc):
    """A fresh exception for the calling thread, wrapped as SQLAlchemy wraps DB-API errors."""
    if isinstance(exc, DBAPIError):
        exc = exc.orig
    if isinstance(exc, sqlite3.Error):
        return DBAPIError.instance(None, None, exc, sqlite3.Error, hide_parameters=True)
    return exc


# bulk_insert writes this many messages per transaction: big enough that commits and index flushes
# are rare, small enough that the WAL stays bounded and the write lock is released regularly.
BULK_BATCH_ROWS = 50_000
# Page cache of the bulk loader's connection while it loads (KiB); restored afterwards.
BULK_CACHE_KIB = 256 * 1024
# FTS5 keeps this many bytes of new index entries in memory before writing a segment (default 1 MB):
# bigger segments, fewer merges. Stored in the index's config; one-message transactions of the
# server write their segment at commit whatever it is.
BULK_FTS_HASHSIZE = 16 * 1024 * 1024
_BULK_INSERT = (
    "INSERT INTO messages (message_id, from_msisdn, to_msisdn, ts, ts_key, text, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING"
)
# The senders of the rows a batch added (rowid > the largest rowid before it), added to their counts.
_BULK_COUNT = (
    "INSERT INTO sender_counts (from_msisdn, count) "
    "SELECT from_msisdn, count(*) FROM messages WHERE rowid > ? GROUP BY from_msisdn "
    "ON CONFLICT (from_msisdn) DO UPDATE SET count = sender_counts.count + excluded.count"
)
_BULK_NEW_TEXTS = "SELECT rowid, text FROM messages WHERE rowid > ? AND text <> ''"
_BULK_SEARCH = "INSERT INTO messages_fts (rowid, text_folded) VALUES (?, ?)"


def bulk_insert(messages, *, batch_size=BULK_BATCH_ROWS):
    """Store many messages (dicts as for ``insert_message``); return how many were new.

    The result is what ``insert_message`` called on each message in turn leaves behind: the rows, the
    sender counts and the search index entries, a ``message_id`` already stored (or seen earlier in
    ``messages``) skipped, the first write winning. Each batch of ``batch_size`` messages is one
    transaction, so the search index and the counts never disagree with the rows.
    """
    stored = 0
    batch = []
    created_at = now_iso()
    for message in messages:
        batch.append((
            message["message_id"], message["from_msisdn"], message["to_msisdn"], message["ts"],
            message["ts_key"], message["text"], created_at,
        ))
        if len(batch) >= batch_size:
            stored += _insert_batch(batch)
            batch = []
            created_at = now_iso()
    if batch:
        stored += _insert_batch(batch)
    if stored >= BULK_MERGE_AFTER_ROWS:
        merge_search_index()
    return stored


# After a load this big the search index is merged into one segment. Left as a pile of segments,
# FTS5 would merge them later inside some webhook's commit, which then takes seconds.
BULK_MERGE_AFTER_ROWS = BULK_BATCH_ROWS
# Pages of merge work per transaction: the write lock is released between steps (~0.1-0.3 s each).
MERGE_STEP_PAGES = 2000


def merge_search_index():
    """Merge every segment of the search index into one, in short write transactions."""
    while True:
        with write_transaction() as connection:
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


def after_bulk_load():
    """Copy the WAL into the database and empty it, if no reader is in the way (best effort)."""
    with _dbapi_connection() as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _insert_batch(rows):
    with write_transaction() as connection:
        cache_size = connection.exec_driver_sql("PRAGMA cache_size").scalar()
        connection.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
        try:
            # Under BEGIN IMMEDIATE nobody else writes: SQLite gives new rows rowids above the
            # largest one, so "rowid > before" is exactly this batch's new rows.
            connection.exec_driver_sql(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('hashsize', ?)",
                (BULK_FTS_HASHSIZE,),
            )
            before = connection.exec_driver_sql("SELECT max(rowid) FROM messages").scalar() or 0
            if before >= 2**63 - 1:  # SQLite would pick random rowids from here on
                raise OverflowError("messages rowids exhausted")
            # ON CONFLICT DO NOTHING: rowcount is the number of rows actually inserted.
            stored = connection.exec_driver_sql(_BULK_INSERT, rows).rowcount
            connection.exec_driver_sql(_BULK_COUNT, (before,))
            # The DB-API cursor: no Row objects for tens of thousands of rows.
            cursor = connection.connection.cursor()
            try:
                texts = cursor.execute(_BULK_NEW_TEXTS, (before,)).fetchall()
                cursor.executemany(
                    _BULK_SEARCH, [(rowid, indexed_text(value)) for rowid, value in texts]
                )
            finally:
                cursor.close()
            return stored
        finally:
            connection.exec_driver_sql(f"PRAGMA cache_size = {int(cache_size)}")


_COLUMNS = "message_id, from_msisdn, to_msisdn, ts, text, ts_key"
_ORDER = " ORDER BY ts_key, message_id"


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
        return "exact", "instr(lyftr_casefold(messages.text), ?) > 0", (folded,)
    if len(folded) >= TRIGRAM:
        phrase = '"' + folded.replace('"', '""') + '"'
        return "index", (
            "messages.rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)"
        ), (phrase,)
    return "scan", f"messages.rowid IN (SELECT id FROM {_FOLDED_TEXTS} WHERE {_CONTAINS})", (folded,)


# The folded texts as the index stores them: FTS5's content table (documented layout: the rowid as
# "id", the column as "c0"). Read directly it scans about twice as fast as through messages_fts.
_FOLDED_TEXTS = "messages_fts_content"
_CONTAINS = "instr(c0, ?) > 0"
# Walking the rows in page order and checking each for the term, until the page is full: for a
# term found in many rows, only a few rows are read. Exact for terms without NUL (see _search).
_MATCHES_ROW = (
    f"EXISTS (SELECT 1 FROM {_FOLDED_TEXTS} WHERE id = messages.rowid AND {_CONTAINS})"
)


def list_messages(*, limit, offset, from_msisdn=None, since_key=None, q=None, after=None):
    """Up to ``limit + 1`` rows (message_id, from, to, ts, text, ts_key) in page order from
    ``offset``, and the filter's total (see ``storage.list_messages``)."""
    filters, params = [], []
    if from_msisdn is not None:
        filters.append("from_msisdn = ?")
        params.append(from_msisdn)
    if since_key is not None:
        filters.append("ts_key >= ?")
        params.append(since_key)
    search = _search(q) if q else None

    with _dbapi_connection() as connection:
        connection.execute("BEGIN")  # the page and the total from one snapshot
        try:
            total = _total(connection, filters, params, from_msisdn, since_key, search)
            where, where_params = list(filters), list(params)
            if after is not None:
                where.append("(ts_key, message_id) > (?, ?)")
                where_params.extend(after)
            if search is not None:
                kind, condition, search_params = search
                if kind != "exact" and _walk_is_cheaper(connection, limit + 1 + offset, total,
                                                        from_msisdn):
                    where.append(_MATCHES_ROW)
                    where_params.append(q.casefold())
                else:
                    where.append(condition)
                    where_params.extend(search_params)
            sql = f"SELECT {_COLUMNS} FROM messages"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += _ORDER + " LIMIT ? OFFSET ?"
            rows = connection.execute(sql, (*where_params, limit + 1, offset)).fetchall()
        finally:
            connection.rollback()
    return rows, total


def _total(connection, filters, params, from_msisdn, since_key, search):
    # The maintained counts and the search index answer the common cases without the messages.
    if search is None and since_key is None:
        if from_msisdn is None:
            sql, args = "SELECT coalesce(sum(count), 0) FROM sender_counts", ()
        else:
            sql, args = "SELECT count FROM sender_counts WHERE from_msisdn = ?", (from_msisdn,)
    elif search is not None and not filters and search[0] != "exact":
        kind, _, search_params = search
        if kind == "index":
            sql = "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?"
        else:
            sql = f"SELECT count(*) FROM {_FOLDED_TEXTS} WHERE {_CONTAINS}"
        args = search_params
    else:
        conditions = list(filters)
        args = list(params)
        if search is not None:
            conditions.append(search[1])
            args.extend(search[2])
        sql = "SELECT count(*) FROM messages WHERE " + " AND ".join(conditions)
    row = connection.execute(sql, args).fetchone()
    return row[0] if row and row[0] is not None else 0


def _walk_is_cheaper(connection, rows_wanted, total, from_msisdn):
    """Whether to walk the rows in order checking each (about rows_wanted * population / total
    rows read) rather than fetch every match and sort them (total rows read, each costlier)."""
    if total == 0:
        return False
    if from_msisdn is not None:
        sql, args = "SELECT count FROM sender_counts WHERE from_msisdn = ?", (from_msisdn,)
    else:
        sql, args = "SELECT coalesce(sum(count), 0) FROM sender_counts", ()
    row = connection.execute(sql, args).fetchone()
    population = row[0] if row else 0
    return rows_wanted * population <= total * total


def stats(top):
    """(total, senders, the ``top`` senders with counts, first ts, last ts), from one snapshot."""
    with _dbapi_connection() as connection:
        connection.execute("BEGIN")
        try:
            total, senders = connection.execute(
                "SELECT coalesce(sum(count), 0), count(*) FROM sender_counts"
            ).fetchone()
            ranked = connection.execute(
                "SELECT from_msisdn, count FROM sender_counts ORDER BY count DESC, from_msisdn "
                "LIMIT ?", (top,)
            ).fetchall()
            first = connection.execute(
                "SELECT ts FROM messages ORDER BY ts_key, message_id LIMIT 1"
            ).fetchone()
            last = connection.execute(
                "SELECT ts FROM messages ORDER BY ts_key DESC, message_id DESC LIMIT 1"
            ).fetchone()
        finally:
            connection.rollback()
    return total, senders, ranked, first[0] if first else None, last[0] if last else None
