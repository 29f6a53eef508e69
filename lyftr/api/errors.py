"""Errors as JSON: every error response the app can produce, registered once.

Validation errors are FastAPI's 422 shape: ``{"detail": [{"type", "loc", "msg", "input"}, ...]}``,
one entry per problem, in the order the schema declares its fields.
"""

from flask import current_app, g, jsonify, request
from marshmallow import ValidationError
from sqlalchemy.exc import DatabaseError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from lyftr import store
from lyftr.api.request_log import annotate
from lyftr.api.schemas import INVALID_JSON, NOT_INTEGER, NOT_NULL, NOT_OBJECT, NOT_STRING, REQUIRED
from lyftr.store import database_errors

RETRY_AFTER_SECONDS = "1"

# The Pydantic error type each message of api.schemas stands for (others are "value_error").
ERROR_TYPES = {
    REQUIRED: "missing",
    NOT_STRING: "string_type",
    NOT_NULL: "string_type",
    NOT_OBJECT: "model_attributes_type",
    INVALID_JSON: "json_invalid",
    NOT_INTEGER: "int_parsing",
}


def error_response(status, detail, **extra):
    response = jsonify({"detail": detail, **extra})
    response.status_code = status
    return response


def validation_detail(messages, location, data, schema):
    """Marshmallow's error dict as a list of ``{type, loc, msg, input}``, in field order.

    ``messages`` is keyed by the fields' names on the wire (``data_key``); ``_schema`` is an error
    of the whole input (not an object) and comes first.
    """
    order = {field.data_key or name: i for i, (name, field) in enumerate(schema.fields.items())}
    detail = []
    for field in sorted(messages, key=lambda name: order.get(name, -1)):
        if field == "_schema":
            loc, value = [location], data
        else:
            loc = [location, field]
            value = data.get(field) if isinstance(data, dict) else None
        for msg in messages[field]:
            error_type = ERROR_TYPES.get(msg, "value_error")
            detail.append({"type": error_type, "loc": loc, "msg": msg, "input": value})
    return detail


class InvalidQuery(Exception):
    """A query string its schema refused; answered 422 in the usual shape (see init_app)."""

    def __init__(self, detail):
        super().__init__("invalid query")
        self.detail = detail


def load_query(schema):
    """The request's query string loaded by ``schema``; InvalidQuery (a 422) if it is refused."""
    args = request.args.to_dict(flat=True)
    try:
        return schema.load(args)
    except ValidationError as exc:
        raise InvalidQuery(validation_detail(exc.messages, "query", args, schema)) from exc


def unavailable(detail):
    """503 with Retry-After: the sender should retry the same delivery shortly."""
    response = error_response(503, detail)
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def handle_http_error(exc):
    response = error_response(exc.code, exc.description)
    if getattr(exc, "retry_after", None) is not None:  # a limit's 503 (lyftr.api.limits)
        response.headers["Retry-After"] = str(exc.retry_after)
    if exc.code == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def handle_database_error(exc):
    if not database_errors.is_unavailable(exc):
        return handle_unexpected(exc)
    # Locked past the busy timeout, disk full, file or server gone: nothing was committed, so a
    # retry is safe. The log line names the cause an operator can act on.
    g.error = exc
    cause = store.failure_cause(exc)
    annotate(cause=cause)
    if cause == database_errors.QUERY_TOO_LONG:
        # Stopped at QUERY_BUDGET_MS so that one request cannot hold the database (or, on SQLite,
        # a worker): the client learns why, and that a narrower query may pass.
        budget = current_app.config["QUERY_BUDGET_MS"]
        return unavailable(
            f"query took too long (over its {budget} ms budget); narrow it or retry later"
        )
    return unavailable("database unavailable")


def handle_unexpected(exc):
    g.error = exc
    return error_response(500, "internal error", request_id=g.get("request_id"))


def init_app(app):
    app.register_error_handler(InvalidQuery, lambda exc: error_response(422, exc.detail))
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(DatabaseError, handle_database_error)
    app.register_error_handler(PoolTimeout, handle_database_error)
    app.register_error_handler(SQLAlchemyError, handle_unexpected)
    app.register_error_handler(Exception, handle_unexpected)
