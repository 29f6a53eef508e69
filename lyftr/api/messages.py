"""GET /messages: filtered, chronological pages with offset or cursor paging."""

import base64
import binascii
import json

from flask import Blueprint

from lyftr import store
from lyftr.api import schemas
from lyftr.api.auth import token_required
from lyftr.api.errors import error_response, load_query
from lyftr.api.openapi import operation
from lyftr.api.response_schemas import (
    DATABASE_UNAVAILABLE,
    EXAMPLE_MESSAGE_SID,
    EXAMPLE_WAMID,
    INTERNAL_ERROR,
    OPTIONAL_BEARER,
    UNAUTHORIZED,
    ErrorSchema,
    MessageRecordSchema,
    MessagesPageSchema,
    ValidationErrorSchema,
    json_response,
)
from lyftr.store.folding import storable

bp = Blueprint("messages", __name__)

CURSOR_MAX_CHARS = 1024

_query_schema = schemas.MessagesQuerySchema()


LIST_OPERATION = {
    "operationId": "listMessages",
    "summary": "Stored messages, by ts ascending then message_id, with filters and paging.",
    "tags": ["messages"],
    "security": OPTIONAL_BEARER,
    "parameters": [{"in": "query", "schema": schemas.MessagesQuerySchema}],
    "responses": {
        "200": json_response(MessagesPageSchema, "One page; total ignores limit and offset."),
        "401": UNAUTHORIZED,
        "422": json_response(
            ValidationErrorSchema, "Invalid query parameter; loc is ['query', name]."
        ),
        "500": INTERNAL_ERROR,
        "503": DATABASE_UNAVAILABLE,
    },
}


@bp.get("/messages")
@operation(LIST_OPERATION)
@token_required
def list_messages():
    query = load_query(_query_schema)

    after = None
    if query["cursor"] is not None:
        after = decode_cursor(query["cursor"])
        if after is None:
            detail = {
                "type": "value_error",
                "loc": ["query", "cursor"],
                "msg": "Value should be a next_cursor from this API",
                "input": query["cursor"],
            }
            return error_response(422, [detail])

    page = store.list_messages(
        limit=query["limit"],
        offset=query["offset"],
        from_msisdn=query["from_msisdn"],
        since_key=query["since_key"],
        q=query["q"],
        after=after,
    )
    last = page.rows[-1] if page.has_more else None
    return {
        "data": [message_item(row) for row in page.rows],
        "total": page.total,
        "limit": query["limit"],
        "offset": query["offset"],
        "next_cursor": encode_cursor(last.ts_key, last.message_id) if last else None,
    }


SHOW_OPERATION = {
    "operationId": "getMessage",
    "summary": "One message's full record: where it came from and what was received.",
    "tags": ["messages"],
    "security": OPTIONAL_BEARER,
    "parameters": [
        {
            "in": "path",
            "name": "message_id",
            "required": True,
            "description": "The message_id (URL-encoded; it may contain '/').",
            "schema": {"type": "string", "minLength": 1},
            "examples": {
                "whatsapp": {"value": EXAMPLE_WAMID},
                "twilio": {"value": EXAMPLE_MESSAGE_SID},
            },
        }
    ],
    "responses": {
        "200": json_response(MessageRecordSchema, "The record."),
        "401": UNAUTHORIZED,
        "404": json_response(ErrorSchema, "No message with this message_id: 'message not found'."),
        "500": INTERNAL_ERROR,
        "503": DATABASE_UNAVAILABLE,
    },
}


@bp.get("/messages/<path:message_id>")
@operation(SHOW_OPERATION)
@token_required
def show_message(message_id):
    """One message's full record: the contract's fields, where it came from, what was received."""
    record = store.get_message(message_id) if storable(message_id) else None
    if record is None:
        return error_response(404, "message not found")
    return record_item(record)


def record_item(record):
    """A message's full record: the contract's fields, its feed position, where it came from,
    and the provider's payload as received."""
    return {
        **message_item(record),
        "seq": record.seq,
        "provider": record.provider,
        "type": record.type,
        "received_at": record.received_at,
        "raw": _json(record.raw),
        "channel": record.channel,
        "sender_name": record.sender_name,
        "media": _json(record.media),
        "location": _json(record.location),
        "reply_to": record.reply_to,
        "reactions": _json(record.reactions) or [],
        "edited_at": record.edited_at,
        "revoked_at": record.revoked_at,
    }


def _json(value):
    return json.loads(value) if value is not None else None


def message_item(row):
    """A stored message as the contract shows it, ``ts`` exactly as received."""
    return {
        "message_id": row.message_id,
        "from": row.from_msisdn,
        "to": row.to_msisdn,
        "ts": row.ts,
        "text": row.text,
    }


def encode_cursor(ts_key, message_id):
    raw = json.dumps([ts_key, message_id], ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor):
    """The ``(ts_key, message_id)`` a cursor points after, or None if it is not one of ours."""
    # Ours hold a sort key and a message_id of at most 256 characters: well under 1 KiB.
    if len(cursor) > CURSOR_MAX_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts_key, message_id = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, TypeError, RecursionError):
        return None
    if not (isinstance(ts_key, str) and isinstance(message_id, str)):
        return None
    # JSON escapes can spell lone surrogates or NUL, which no cursor of ours holds and which a
    # database cannot bind (SQLite the former, PostgreSQL either).
    if not (storable(ts_key) and storable(message_id)):
        return None
    return ts_key, message_id
