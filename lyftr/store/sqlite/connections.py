"""SQLite connections: how each one is tuned, and a cache of them for the hot paths.

Every connection the engine makes gets WAL, the busy timeout, full durability and the
``lyftr_casefold`` function; SQLAlchemy transactions begin with ``BEGIN IMMEDIATE`` when they are
for writing, so a writer never has to upgrade a read lock (which busy_timeout cannot cure).

The webhook and the reads take raw sqlite3 connections from a ``ConnectionCache``: SQLAlchemy's
pool costs more Python per checkout than the queries they run. Their errors are wrapped as
SQLAlchemy wraps a driver's, so the app's error handlers treat both paths alike.
"""

import os
import sqlite3
import time
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

# After a big transaction (a bulk load) the WAL file shrinks back to this once checkpointed.
WAL_SIZE_LIMIT = 64 * 1024 * 1024
# A statement with a deadline is checked every this many virtual-machine steps. Steps vary widely:
# inside an FTS5 phrase query 1,000 take about 3 ms (measured), so the deadline is kept to within
# a few ms, while a read on a thread off the gevent hub takes the GIL back only that often.
PROGRESS_STEPS = 1000


def tune(engine, busy_timeout_ms):
    """Set up every connection ``engine`` makes, and how its transactions begin."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, connection_record):
        # Let SQLAlchemy's BEGIN below, not the sqlite3 module, decide when a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: a message acknowledged with 200 survives power loss, not only a process crash.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        cursor.close()
        dbapi_connection.create_function("lyftr_casefold", 1, _casefold, deterministic=True)

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        immediate = connection.get_execution_options().get("write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _casefold(value):
    return value.casefold() if isinstance(value, str) else None


def as_sqlalchemy_error(exc):
    """A fresh exception for the calling thread, wrapped as SQLAlchemy wraps DB-API errors."""
    if isinstance(exc, DBAPIError):
        exc = exc.orig
    if isinstance(exc, sqlite3.Error):
        return DBAPIError.instance(None, None, exc, sqlite3.Error, hide_parameters=True)
    return exc


def busy_error(reason):
    """The error of a writer that waited its whole busy timeout, as SQLite would raise it."""
    error = sqlite3.OperationalError(f"database is locked ({reason})")
    # So that it is told apart from a missing or broken database (database_errors.cause).
    error.sqlite_errorcode, error.sqlite_errorname = sqlite3.SQLITE_BUSY, "SQLITE_BUSY"
    return as_sqlalchemy_error(error)


class ConnectionCache:
    """Idle sqlite3 connections of one engine in one process, made by the engine (so they get the
    same tuning) and detached from its pool."""

    MAX_IDLE = 16

    def __init__(self, engine):
        self.engine = engine
        self._pid = os.getpid()
        self._idle = []

    @contextmanager
    def connection(self, deadline=None):
        """A connection in autocommit mode (statements say BEGIN and COMMIT themselves) with no
        transaction open; sqlite3 errors come out as SQLAlchemy's.

        With a ``deadline`` (``time.monotonic()``), a statement still running then is interrupted
        (``SQLITE_INTERRUPT``, which ``database_errors`` calls "query too long")."""
        if self._pid != os.getpid():  # forked: the parent's connections are not ours to use
            self._pid, self._idle = os.getpid(), []
        idle = self._idle
        try:
            connection = idle.pop()  # atomic: threads never get the same one
        except IndexError:
            proxy = self.engine.raw_connection()
            connection = proxy.driver_connection
            proxy.detach()
        reusable = True
        if deadline is not None:
            connection.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
        try:
            yield connection
        except sqlite3.Error as exc:
            reusable = False
            raise as_sqlalchemy_error(exc) from exc
        except BaseException:
            reusable = False
            raise
        finally:
            if deadline is not None:
                connection.set_progress_handler(None, 0)
            if reusable and not connection.in_transaction and len(idle) < self.MAX_IDLE:
                idle.append(connection)
            else:
                connection.close()
