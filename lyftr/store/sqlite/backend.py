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
import time
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError

from lyftr.config import sqlite_path
from lyftr.store import commit_signal, database_errors, events, sql
from lyftr.store.backend import MessageRecord, RejectionRow, StatusRow
from lyftr.store.folding import indexed_text
from lyftr.store.sqlite import backup, bulk, positions, reads, writes
from lyftr.store.sqlite.connections import ConnectionCache, as_sqlalchemy_error, tune
from lyftr.store.sqlite.offload import ReadThreads
from lyftr.store.sqlite.writer import Delivery, WriterQueue
from lyftr.timestamps import now_iso

# Below this much free space on the database's filesystem, readiness says it cannot take writes:
# a transaction appends a few pages (4 KiB each) to the WAL, a checkpoint more.
MIN_FREE_BYTES = 256 * 1024

_RECORD = f"SELECT {sql.RECORD_COLUMNS} FROM messages WHERE message_id = ?"
_STORED_OR_PURGED = (
    "SELECT 1 FROM messages WHERE message_id = ?1 UNION ALL "
    "SELECT 1 FROM purged_hashes WHERE hash = ?2 LIMIT 1"
)
PURGE_LOCK_SUFFIX = "-purge.lock"


class SQLiteBackend:
    """``backend.Backend`` on a SQLite file (or an in-memory database)."""

    def __init__(self, engine, config):
        tune(engine, config["DB_BUSY_TIMEOUT_MS"])
        self.engine = engine
        self.path = sqlite_path(str(engine.url))
        self.connections = ConnectionCache(engine)
        self.writer = WriterQueue(self.path, config["DB_BUSY_TIMEOUT_MS"])
        self.commit_signal = commit_signal.Polling()
        # Every read the API serves stops at its budget; the heavy ones (listing, search, stats)
        # run off the gevent hub (offload). Exports and backups are the CLI's, unbounded.
        self.budget_s = config["QUERY_BUDGET_MS"] / 1000
        self.read_threads = ReadThreads(config["QUERY_THREADS"])

    def commits_seen(self):
        return self.commit_signal.seen()

    def wait_for_commit(self, seen, timeout):
        """See ``backend.Backend``: one host, no signal: a polling interval."""
        self.commit_signal.wait(seen, timeout)

    def _deadline(self):
        return time.monotonic() + self.budget_s

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
        row = writes.insert_row(message, now_iso())
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

    def insert_batch(self, messages, actions=()):
        """See ``backend.Backend``."""
        created_at = now_iso()
        deliveries = [
            Delivery(
                writes.insert_row(m, created_at), indexed_text(m["text"]) if m["text"] else None
            )
            for m in messages
        ]
        with self.writer.turn(), self._immediate() as cursor:
            created_ids = [d.row[0] for d in deliveries if writes.store(cursor, d)]
            events.apply_actions(
                writes.executor(cursor),
                lambda target, changes: writes.write_changes(cursor, target, changes),
                created_ids,
                actions,
            )
        return len(created_ids)

    # --- statuses and rejections (``events``) -------------------------------------------------

    def insert_statuses(self, statuses):
        with self.writer.turn(), self._immediate() as cursor:
            return events.insert_statuses(writes.executor(cursor), statuses)

    def record_rejection(self, rejection, keep):
        with self.writer.turn(), self._immediate() as cursor:
            events.record_rejection(writes.executor(cursor), rejection, keep)

    def list_statuses(self, *, message_id, status, since_key, after, limit):
        statement, params = events.list_statuses(
            message_id=message_id, status=status, since_key=since_key, after=after, limit=limit
        )
        with self.connections.connection() as connection:
            return [StatusRow._make(row) for row in connection.execute(statement, params)]

    def list_rejections(self, *, provider, before, limit):
        statement, params = events.list_rejections(provider=provider, before=before, limit=limit)
        with self.connections.connection() as connection:
            return [RejectionRow._make(row) for row in connection.execute(statement, params)]

    def get_message(self, message_id):
        """See ``backend.Backend``."""
        with self.connections.connection(self._deadline()) as connection:
            row = connection.execute(_RECORD, (message_id,)).fetchone()
        return MessageRecord._make(row) if row else None

    def _stored(self, message_id):
        with self.connections.connection() as connection:
            found = connection.execute(_STORED_OR_PURGED, (message_id, sql.id_hash(message_id)))
            return found.fetchone() is not None

    def _write_deliveries(self, batch):
        """Insert every delivery of ``batch`` in one transaction; set each one's outcome."""
        alone = len(batch) == 1
        try:
            with self._immediate() as cursor:
                for delivery in batch:
                    if alone:
                        delivery.created = writes.store(cursor, delivery)
                        continue
                    cursor.execute("SAVEPOINT delivery")
                    try:
                        delivery.created = writes.store(cursor, delivery)
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

    def bulk_insert(self, chunks):
        """See ``backend.Backend``: each chunk is one transaction, so the search index and the
        counts never disagree with the rows. The write turn is taken per chunk: ingest goes on
        between them."""
        stored, unchecked = 0, 0
        with self._bulk_connection() as connection:
            driver = connection.connection.driver_connection
            for chunk in chunks:
                # Outside the transaction: SQLite attaches no file inside one.
                driver.execute("ATTACH DATABASE ? AS chunk", (chunk.path,))
                try:
                    with self.writer.turn(), connection.begin():
                        stored += bulk.load_batch(connection, chunk.rows)
                finally:
                    driver.execute("DETACH DATABASE chunk")
                unchecked += chunk.rows
                if unchecked >= bulk.CHECKPOINT_ROWS:
                    driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    unchecked = 0
            if stored >= bulk.MERGE_AFTER_ROWS:
                self._merge_search_index(connection)
        return stored

    @contextmanager
    def _bulk_connection(self):
        """A write connection that leaves checkpoints to the loader (set on the driver's connection
        outside any transaction, and restored)."""
        self._make_directory()
        with self.engine.connect() as connection:
            connection.execution_options(write=True)
            driver = connection.connection.driver_connection
            every = driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            cache = driver.execute("PRAGMA cache_size").fetchone()[0]
            driver.execute("PRAGMA wal_autocheckpoint = 0")
            driver.execute(f"PRAGMA cache_size = -{bulk.CACHE_KIB}")
            try:
                yield connection
            finally:
                driver.execute(f"PRAGMA wal_autocheckpoint = {int(every)}")
                driver.execute(f"PRAGMA cache_size = {int(cache)}")

    def _merge_search_index(self, connection):
        """Merge every segment of the search index into one, in short write transactions."""
        while True:
            with self.writer.turn(), connection.begin():
                if bulk.merge_step(connection):
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
            return positions.number_pending(cursor, limit)

    def feed(self, after, limit):
        with self.connections.connection(self._deadline()) as connection:
            rows = connection.execute(sql.FEED_PAGE, {"after": after, "limit": limit}).fetchall()
        return [MessageRecord._make(row) for row in rows]

    def purge(self, before, limit, purged_at):
        """See ``backend.Backend``: the time held is from taking the write turn to the commit."""
        with self.writer.turn():
            started = time.monotonic()
            with self._immediate() as cursor:
                rows = cursor.execute(
                    "SELECT rowid, message_id, from_msisdn, ts_key, created_at FROM messages "
                    "WHERE created_at < :before "
                    "ORDER BY created_at, message_id LIMIT :n",
                    {"before": before, "n": limit},
                ).fetchall()
                writes.forget_rows(cursor, rows, purged_at)
            return len(rows), time.monotonic() - started

    def count_purgeable(self, before):
        with self.connections.connection() as connection:
            return connection.execute(sql.PURGEABLE, {"before": before}).fetchone()[0]

    def forget_purged(self, before):
        with self.writer.turn(), self._immediate() as cursor:
            return cursor.execute(sql.FORGET_PURGED, {"before": before}).rowcount

    def revoke_session(self, nonce, expires_at, now):
        with self.writer.turn(), self._immediate() as cursor:
            cursor.execute(sql.FORGET_REVOCATIONS, {"now": now})
            cursor.execute(sql.REVOKE_SESSION, {"nonce": nonce, "expires_at": expires_at})

    def session_revoked(self, nonce):
        with self.connections.connection() as connection:
            return connection.execute(sql.SESSION_REVOKED, {"nonce": nonce}).fetchone() is not None

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
        (WAL), and the copy is compact and checked.

        ``path`` must be new: it is created here, readable by its owner only, and never through a
        symbolic link (an existing file, a dangling link: FileExistsError); a ``file:`` name,
        which SQLite would read as a URI with options, is refused (ValueError).
        """
        if self.path is None:
            raise NotImplementedError("an in-memory database has nothing to back up")
        backup.write(self.connections, path)

    # --- reading (the plans: ``reads``) ------------------------------------------------------

    def list_messages(
        self,
        *,
        limit,
        offset,
        from_msisdn=None,
        since_key=None,
        q=None,
        after=None,
        newest_first=False,
    ):
        """See ``backend.Backend``."""
        return self._heavy_read(
            reads.list_messages,
            limit=limit,
            offset=offset,
            from_msisdn=from_msisdn,
            since_key=since_key,
            q=q,
            after=after,
            newest_first=newest_first,
        )

    def stats(self, top):
        """See ``backend.Backend``."""
        return self._heavy_read(reads.stats, top)

    def list_arrivals(self, *, limit, from_msisdn, received_since, q, before):
        """See ``backend.Backend`` and ``reads.list_arrivals``."""
        return self._heavy_read(
            reads.list_arrivals,
            limit=limit,
            from_msisdn=from_msisdn,
            received_since=received_since,
            q=q,
            before=before,
        )

    def arrivals_per_hour(self, hours):
        statement, params = sql.arrivals_per_hour(hours)
        return self._heavy_read(
            lambda connection: sql.hours_in_order(
                hours, connection.execute(statement, params).fetchall()
            )
        )

    def _heavy_read(self, read, *args, **kwargs):
        """``read(connection, ...)`` in one snapshot (every part of a page agrees), off the gevent
        hub, stopped at the budget. The deadline counts from now: waiting for a thread counts."""
        deadline = self._deadline()

        def in_snapshot():
            with self._snapshot(deadline) as connection:
                return read(connection, *args, **kwargs)

        return self.read_threads.run(in_snapshot)

    @contextmanager
    def _snapshot(self, deadline):
        """A read connection in a transaction: every query in it sees one snapshot."""
        with self.connections.connection(deadline) as connection:
            connection.execute("BEGIN")
            try:
                yield connection
            finally:
                connection.rollback()
