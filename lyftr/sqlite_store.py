"""The SQLite backend: the queries of insert-once, bulk load, listing, search and stats on one file.

The schema (tables, indexes, the FTS5 search index) comes from the migrations. A message row, its
sender's count and its search-index entry are written in one transaction. Writers take turns in a
``sqlite_writer.WriterQueue`` and deliveries that wait together are committed together; reads and
the webhook use raw sqlite3 connections from a ``sqlite_connections.ConnectionCache`` with SQL text
(SQLAlchemy's statement building costs more than these queries). Reads take totals from the
maintained sender counts or from the search index where they can, and choose how to find a page of
search results by how common the term is (``list_messages``). Measurements: ``make bench``.
"""

import fcntl
import os
import shutil
import sqlite3
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
_STORED_OR_PURGED = (
    "SELECT 1 FROM messages WHERE message_id = ?1 UNION ALL "
    "SELECT 1 FROM purged_ids WHERE message_id = ?1 LIMIT 1"
)
PURGE_LOCK_SUFFIX = "-purge.lock"
_SEARCH_ONE = "INSERT INTO messages_fts (rowid, text_folded) VALUES (?, ?)"

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
        # The turn first: a new database's first connections switch it to WAL, which needs the
        # file to themselves; processes and threads starting together take turns at that too.
        with self.writer.turn(), self.engine.connect() as connection:
            connection.execution_options(write=True)
            with connection.begin():
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
            # A redelivery, or a retry of a purged message: no write lock needed. (A message purged
            # between this read and the insert is caught by the insert's own check.)
            return False
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
            return connection.execute(_STORED_OR_PURGED, (message_id,)).fetchone() is not None

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
                    # Numbered as they are written (under the write lock, as the feed's
                    # numbering is), after the rows already waiting for a position.
                    _number_pending(cursor)
                    first = _take_positions(cursor, len(rows))
                    numbered = [(*row, first + i) for i, row in enumerate(rows)]
                    cursor.executemany(_BULK_INSERT_QMARK, numbered)
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

    def sequence(self, limit):
        """See ``backend.Backend``. One writer at a time: the counter and the rows it numbers
        are written in one write transaction."""
        with self.connections.connection() as connection:
            if connection.execute(sql.ANY_UNSEQUENCED).fetchone() is None:
                return 0
        with self.writer.turn(), self._immediate() as cursor:
            return _number_pending(cursor, limit)

    def feed(self, after, limit):
        with self.connections.connection() as connection:
            rows = connection.execute(sql.FEED_PAGE, {"after": after, "limit": limit}).fetchall()
        return [MessageRecord._make(row) for row in rows]

    def purge(self, before, limit, purged_at):
        """See ``backend.Backend``."""
        with self.writer.turn(), self._immediate() as cursor:
            rows = cursor.execute(
                "SELECT rowid, message_id, from_msisdn FROM messages WHERE created_at < :before "
                "ORDER BY created_at, message_id LIMIT :n",
                {"before": before, "n": limit},
            ).fetchall()
            _forget_rows(cursor, rows, purged_at)
        return len(rows)

    def count_purgeable(self, before):
        with self.connections.connection() as connection:
            return connection.execute(sql.PURGEABLE, {"before": before}).fetchone()[0]

    def forget_purged(self, before):
        with self.writer.turn(), self._immediate() as cursor:
            return cursor.execute(sql.FORGET_PURGED, {"before": before}).rowcount

    @contextmanager
    def exclusive_purge(self):
        """An flock of a file beside the database, not waited for: another process purging."""
        if self.path is None:
            yield True
            return
        self._make_directory()
        fd = os.open(self.path + PURGE_LOCK_SUFFIX, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    def export_page(self, *, from_msisdn, since_key, position, limit):
        statement, params = sql.export_page(
            from_msisdn=from_msisdn, since_key=since_key, position=position
        )
        with self.connections.connection() as connection:
            rows = connection.execute(statement, {**params, "limit": limit}).fetchall()
        return [MessageRecord._make(row) for row in rows]

    def backup(self, path):
        """``VACUUM INTO``: a consistent copy from one read transaction; writers go on meanwhile
        (WAL), and the copy is compact and checked."""
        if self.path is None:
            raise NotImplementedError("an in-memory database has nothing to back up")
        with self.connections.connection() as connection:
            connection.execute("VACUUM INTO ?", (path,))
        check = sqlite3.connect(path)
        try:
            result = check.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            check.close()
        if result != "ok":
            raise RuntimeError(f"backup failed its integrity check: {result}")

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

    # --- the console --------------------------------------------------------------------------

    def list_arrivals(self, *, limit, from_msisdn, received_since, q, before):
        """See ``backend.Backend``. Without a sender or a term: ix_messages_created_at, backwards.
        With one: the newest ARRIVALS_WALK rows of the range are walked in order, each checked,
        which fills the page of a common sender or term after a few rows; only what is still
        missing after them is found through the sender's index or the search index, and sorted
        (a rare sender or term: few rows)."""
        wanted = limit + 1
        ranges, params = sql.arrivals(received_since=received_since, before=before)
        checks = []
        if from_msisdn is not None:
            checks.append("from_msisdn = :from_msisdn")
            params["from_msisdn"] = from_msisdn
        search = _search(q) if q else None
        if search is not None:
            params["term"] = q.casefold()
            checks.append(search[1] if search[0] == "exact" else _MATCHES_ROW)
        with self.connections.connection() as connection:
            connection.execute("BEGIN")  # every part of the page from one snapshot
            try:
                return _arrivals(connection, wanted, ranges, checks, params, search)
            finally:
                connection.rollback()

    def arrivals_per_hour(self, hours):
        statement, params = sql.arrivals_per_hour(hours)
        with self.connections.connection() as connection:
            return [tuple(row) for row in connection.execute(statement, params).fetchall()]


_BULK_INSERT_QMARK = sql.insert_message((*sql.MESSAGE_COLUMNS, "seq"), named=False)


def _take_positions(cursor, n):
    """Reserve ``n`` feed positions (in a write transaction); return the first."""
    start = cursor.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0]
    cursor.execute("UPDATE counters SET value = ? WHERE name = 'seq'", (start + n,))
    return start + 1


def _number_pending(cursor, limit=-1):
    """Give up to ``limit`` (-1: all) committed rows without a feed position theirs, in arrival
    order; return how many."""
    ids = [row[0] for row in cursor.execute(sql.UNSEQUENCED, {"n": limit}).fetchall()]
    first = _take_positions(cursor, len(ids))
    cursor.executemany(
        "UPDATE messages SET seq = ? WHERE message_id = ?",
        [(first + i, message_id) for i, message_id in enumerate(ids)],
    )
    return len(ids)


def _forget_rows(cursor, rows, purged_at):
    """Delete ``rows`` (rowid, message_id, from) with their search entries and counts, and keep
    their IDs in purged_ids."""
    senders = {}
    for _, _, sender in rows:
        senders[sender] = senders.get(sender, 0) + 1
    cursor.executemany(
        sql.REMEMBER_PURGED,
        [{"message_id": message_id, "purged_at": purged_at} for _, message_id, _ in rows],
    )
    for sender, n in senders.items():
        cursor.execute(sql.DISCOUNT_SENDER, {"n": n, "from_msisdn": sender})
        cursor.execute(sql.DROP_EMPTY_SENDER, {"from_msisdn": sender})
    cursor.executemany("DELETE FROM messages_fts WHERE rowid = ?", [(r[0],) for r in rows])
    cursor.executemany("DELETE FROM messages WHERE rowid = ?", [(r[0],) for r in rows])


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


# The console's newest-first listing walks the newest rows this many at a time, checking each, and
# goes on while what it found says the page fills within ARRIVALS_WALK_MAX rows; then an index.
ARRIVALS_WALK = 5000
ARRIVALS_WALK_MAX = 50_000
# A sender with at most this many messages is read through its index rather than the search index.
ARRIVALS_SMALL_SENDER = 20_000
_BY_ARRIVAL = f"SELECT {sql.RECORD_COLUMNS} FROM messages"
_BELOW = "(created_at, message_id) < (:below_created_at, :below_message_id)"


def _arrivals(connection, wanted, ranges, checks, params, search):
    """Up to ``wanted`` records in the range, newest arrival first, that pass ``checks``."""
    if not checks:
        query = f"{_BY_ARRIVAL}{sql.where(ranges)}{sql.ARRIVAL_ORDER} LIMIT :n"
        return [MessageRecord._make(r) for r in connection.execute(query, {**params, "n": wanted})]
    rows, walked, unread = [], 0, list(ranges)
    while True:
        # The oldest row of this stretch of the walk (None: fewer rows are left).
        floor = connection.execute(
            f"SELECT created_at, message_id FROM messages{sql.where(unread)}{sql.ARRIVAL_ORDER} "
            "LIMIT 1 OFFSET :walk",
            {**params, "walk": ARRIVALS_WALK - 1},
        ).fetchone()
        stretch = list(unread)
        if floor is not None:
            stretch.append("(created_at, message_id) >= (:floor_created_at, :floor_message_id)")
            params.update(floor_created_at=floor[0], floor_message_id=floor[1])
        query = (
            f"{_BY_ARRIVAL} INDEXED BY ix_messages_created_at{sql.where(stretch + checks)}"
            f"{sql.ARRIVAL_ORDER} LIMIT :n"
        )
        rows += connection.execute(query, {**params, "n": wanted - len(rows)}).fetchall()
        if floor is None or len(rows) == wanted:
            return [MessageRecord._make(r) for r in rows]
        walked += ARRIVALS_WALK
        unread = [*ranges, _BELOW]
        params.update(below_created_at=floor[0], below_message_id=floor[1])
        if not rows or (wanted - len(rows)) * walked / len(rows) > ARRIVALS_WALK_MAX - walked:
            break
    sender = [c for c in checks if c == "from_msisdn = :from_msisdn"]
    if sender and (search is None or _sender_total(connection, params) <= ARRIVALS_SMALL_SENDER):
        source, conditions = " INDEXED BY ix_messages_from_ts_key", [*unread, *checks]
    elif search[0] != "exact":  # the search index's rowids, each looked up
        source, conditions = " NOT INDEXED", [*unread, search[1], *sender]
        params.update(search[2])
    else:  # a term no index answers: every text is read, as list_messages does
        source, conditions = " NOT INDEXED", [*unread, *checks]
    query = f"{_BY_ARRIVAL}{source}{sql.where(conditions)}{sql.ARRIVAL_ORDER} LIMIT :n"
    rows += connection.execute(query, {**params, "n": wanted - len(rows)}).fetchall()
    return [MessageRecord._make(r) for r in rows]


def _sender_total(connection, params):
    row = connection.execute(sql.SENDER_TOTAL, params).fetchone()
    return row[0] if row else 0
