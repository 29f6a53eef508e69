"""What a database error means to an operator: one word for its cause, the same on both backends.

``cause`` names it for the log line and the readiness check: ``disk full``, ``locked``,
``unreachable``, ``read-only``, ``corrupt``, ``schema missing`` (a new, empty database), ``query
too long`` (a read stopped at its budget, QUERY_BUDGET_MS), or
``database error`` for anything else. ``is_unavailable`` says whether it is a 503 (a retry may
succeed) rather than a bug.
"""

import errno

from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

DISK_FULL = "disk full"
LOCKED = "locked"
UNREACHABLE = "unreachable"
READ_ONLY = "read-only"
CORRUPT = "corrupt"
SCHEMA_MISSING = "schema missing"
QUERY_TOO_LONG = "query too long"
POOL_EXHAUSTED = "no connection free"
OTHER = "database error"

# SQLite's primary result codes (the part of sqlite_errorname before any extended suffix).
_SQLITE = {
    "SQLITE_FULL": DISK_FULL,
    "SQLITE_BUSY": LOCKED,
    "SQLITE_LOCKED": LOCKED,
    "SQLITE_CANTOPEN": UNREACHABLE,
    "SQLITE_READONLY": READ_ONLY,
    "SQLITE_CORRUPT": CORRUPT,
    "SQLITE_NOTADB": CORRUPT,
    "SQLITE_IOERR": UNREACHABLE,
    # Only lyftr interrupts a statement: its progress handler, at the query budget.
    "SQLITE_INTERRUPT": QUERY_TOO_LONG,
}
# PostgreSQL SQLSTATEs, exact codes first, then their two-character classes.
_POSTGRES = {
    "53100": DISK_FULL,
    "25006": READ_ONLY,
    "55P03": LOCKED,
    "40P01": LOCKED,
    "XX001": CORRUPT,
    "XX002": CORRUPT,
    "42P01": SCHEMA_MISSING,
    "57014": QUERY_TOO_LONG,  # query_canceled: statement_timeout (before class 57 below)
    "08": UNREACHABLE,
    "57": UNREACHABLE,  # the server is shutting down or restarting
}

_OS = {errno.ENOSPC: DISK_FULL, errno.EROFS: READ_ONLY, errno.EACCES: READ_ONLY}


def is_unavailable(exc):
    """Connectivity, locking, no pooled connection free in time, or a file that is not (or no
    longer) a database: a 503, not a bug.

    SQLAlchemy wraps a driver's generic DatabaseError (SQLite's "file is not a database") in its
    base ``DatabaseError``; its subclasses (integrity, programming errors) stay 500s.
    """
    return isinstance(exc, OperationalError | PoolTimeout) or type(exc) is DatabaseError


def cause(exc):
    """The cause of a database error (SQLAlchemy's, or the driver's it wraps) in a word or two."""
    if isinstance(exc, PoolTimeout):  # every pooled connection in use (PostgreSQL) past its wait
        return POOL_EXHAUSTED
    orig = getattr(exc, "orig", None) or exc
    name = getattr(orig, "sqlite_errorname", None)
    if name:
        if name == "SQLITE_ERROR" and "no such table" in str(orig):
            return SCHEMA_MISSING
        return _SQLITE.get("_".join(name.split("_")[:2]), OTHER)
    if isinstance(orig, OSError):  # the database's directory could not be made
        return _OS.get(orig.errno, UNREACHABLE)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return _POSTGRES.get(sqlstate) or _POSTGRES.get(sqlstate[:2], OTHER)
    if isinstance(exc, OperationalError) or type(orig).__name__ == "OperationalError":
        # A driver error with no code: psycopg could not connect, or a file could not be created.
        return UNREACHABLE
    return OTHER
