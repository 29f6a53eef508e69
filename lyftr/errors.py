"""Errors as JSON: every error response the app can produce, registered once."""

from flask import g, jsonify
from sqlalchemy.exc import DatabaseError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from . import storage

RETRY_AFTER_SECONDS = "1"


def error_response(status, detail, **extra):
    response = jsonify({"detail": detail, **extra})
    response.status_code = status
    return response


def unavailable(detail):
    """503 with Retry-After: the sender should retry the same delivery shortly."""
    response = error_response(503, detail)
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def handle_http_error(exc):
    response = error_response(exc.code, exc.description)
    if exc.code == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def handle_database_unavailable(exc):
    # Locked past the busy timeout, file or server gone: nothing was committed, so a retry is safe.
    g.error = exc
    # Busy (locked past the busy timeout): the schema is still there and readers still work, so
    # don't re-check it with a write transaction that would wait on the same lock.
    if not str(getattr(getattr(exc, "orig", None), "sqlite_errorname", "")).startswith("SQLITE_BUSY"):
        storage.forget_schema()
    return unavailable("database unavailable")


def is_database_unavailable(exc):
    """Connectivity, locking, or a file that is not (or no longer) a database: a 503, not a bug.

    SQLAlchemy wraps a driver's generic DatabaseError (SQLite's "file is not a database") in its base
    ``DatabaseError``; its subclasses (integrity, programming errors) stay 500s.
    """
    return isinstance(exc, OperationalError) or type(exc) is DatabaseError


def handle_database_error(exc):
    if is_database_unavailable(exc):
        return handle_database_unavailable(exc)
    return handle_unexpected(exc)


def handle_unexpected(exc):
    g.error = exc
    return error_response(500, "internal error", request_id=g.get("request_id"))


def init_app(app):
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(DatabaseError, handle_database_error)
    app.register_error_handler(SQLAlchemyError, handle_unexpected)
    app.register_error_handler(Exception, handle_unexpected)
