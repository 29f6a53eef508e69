"""GET /messages: filtered, chronological pages with offset or cursor paging."""

from flask import Blueprint, request
from marshmallow import ValidationError

from . import schemas, storage
from .errors import error_response

bp = Blueprint("messages", __name__)

_query_schema = schemas.MessagesQuerySchema()


def _invalid_query(name, value, msg):
    return error_response(
        422, [{"type": "value_error", "loc": ["query", name], "msg": msg, "input": value}]
    )


def _storable(value):
    # JSON escapes can spell lone surrogates or NUL, which no cursor of ours holds and which a
    # database cannot bind (SQLite the former, PostgreSQL either).
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


@bp.get("/messages")
def list_messages():
    args = request.args.to_dict(flat=True)
    try:
        query = _query_schema.load(args)
    except ValidationError as exc:
        return error_response(422, schemas.error_detail(exc.messages, "query", args))

    after = None
    if query["cursor"] is not None:
        after = storage.decode_cursor(query["cursor"])
        if after is None or not all(_storable(part) for part in after):
            return _invalid_query("cursor", query["cursor"], "Value should be a next_cursor from this API")

    data, total, next_cursor = storage.list_messages(
        limit=query["limit"],
        offset=query["offset"],
        from_msisdn=query["from_msisdn"],
        since_key=query["since_key"],
        q=query["q"],
        after=after,
    )
    return {
        "data": data,
        "total": total,
        "limit": query["limit"],
        "offset": query["offset"],
        "next_cursor": next_cursor,
    }
