"""GET /statuses and GET /rejections: what happened around messages, under /messages' token rule.

/statuses lists delivery status events (WhatsApp ``statuses``, Twilio status callbacks) in arrival
order; /rejections lists refused deliveries, newest first, so an operator connecting a provider
sees at once why its deliveries fail.
"""

import json

from flask import Blueprint
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validates

from lyftr import store, timestamps
from lyftr.api.auth import token_required
from lyftr.api.errors import load_query
from lyftr.api.openapi import operation
from lyftr.api.response_schemas import (
    DATABASE_UNAVAILABLE,
    INTERNAL_ERROR,
    OPTIONAL_BEARER,
    UNAUTHORIZED,
    ValidationErrorSchema,
    json_response,
)
from lyftr.api.schemas import PROVIDERS, QUERY_INTEGER_MAX, QueryInteger

bp = Blueprint("events", __name__)
LIMIT_MAX = 500
CURSOR_DOC = {"description": "The next_cursor of a previous page: continues after it."}


class StatusesQuerySchema(Schema):
    """The query string of GET /statuses. Unknown parameters are ignored."""

    class Meta:
        unknown = EXCLUDE

    message_id = fields.String(load_default=None, metadata={"description": "One message's."})
    status = fields.String(
        load_default=None,
        metadata={"description": "sent, delivered, read, failed, queued, undelivered, ..."},
    )
    since = fields.String(
        load_default=None,
        metadata={"description": "Only events with ts >= since (ISO-8601, as /messages)."},
    )
    limit = QueryInteger(load_default=100, minimum=1, maximum=LIMIT_MAX)
    cursor = QueryInteger(load_default=0, minimum=0, maximum=QUERY_INTEGER_MAX, metadata=CURSOR_DOC)

    @validates("since")
    def check_since(self, value, **kwargs):
        if value is not None and timestamps.query_ts_key(value) is None:
            raise ValidationError("Value should be an ISO-8601 date or date-time")

    @post_load
    def add_since_key(self, data, **kwargs):
        since = data["since"]
        data["since_key"] = timestamps.query_ts_key(since) if since is not None else None
        return data


class RejectionsQuerySchema(Schema):
    """The query string of GET /rejections. Unknown parameters are ignored."""

    class Meta:
        unknown = EXCLUDE

    provider = fields.String(load_default=None, metadata={"enum": list(PROVIDERS)})
    limit = QueryInteger(load_default=100, minimum=1, maximum=LIMIT_MAX)
    cursor = QueryInteger(
        load_default=None, minimum=1, maximum=QUERY_INTEGER_MAX, metadata=CURSOR_DOC
    )


class StatusSchema(Schema):
    message_id = fields.String(required=True, metadata={"description": "The message it is of."})
    status = fields.String(required=True, metadata={"example": "delivered"})
    ts = fields.String(
        required=True,
        metadata={"description": "When it happened (WhatsApp's timestamp; Twilio: arrival)."},
    )
    recipient = fields.String(required=True, allow_none=True)
    provider = fields.String(required=True, metadata={"enum": ["whatsapp", "twilio"]})
    errors = fields.Raw(
        required=True, allow_none=True, metadata={"description": "The provider's errors."}
    )
    raw = fields.Raw(required=True, metadata={"description": "What the provider sent."})
    received_at = fields.String(required=True)


class StatusesPageSchema(Schema):
    """200 of GET /statuses."""

    data = fields.List(fields.Nested(StatusSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class RejectionSchema(Schema):
    id = fields.Integer(required=True)
    at = fields.String(required=True, metadata={"description": "When it was refused (UTC)."})
    provider = fields.String(required=True, metadata={"enum": list(PROVIDERS)})
    reason = fields.String(
        required=True,
        metadata={"example": "invalid signature", "description": "Why; a 422's 'loc: msg'."},
    )
    client = fields.String(required=True, allow_none=True, metadata={"example": "203.0.113.9"})
    url = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Twilio: the URL its signature was checked against."},
    )
    body_sha256 = fields.String(required=True, allow_none=True)
    body_size = fields.Integer(required=True)
    body = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The body, only when the request was authentic (signed)."},
    )


class RejectionsPageSchema(Schema):
    """200 of GET /rejections."""

    data = fields.List(fields.Nested(RejectionSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


def _operation(operation_id, summary, query, page):
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["messages"],
        "security": OPTIONAL_BEARER,
        "parameters": [{"in": "query", "schema": query}],
        "responses": {
            "200": json_response(page, "One page; next_cursor null on the last."),
            "401": UNAUTHORIZED,
            "422": json_response(ValidationErrorSchema, "Invalid query parameter."),
            "500": INTERNAL_ERROR,
            "503": DATABASE_UNAVAILABLE,
        },
    }


@bp.get("/statuses")
@operation(
    _operation(
        "listStatuses",
        "Delivery status events (sent, delivered, read, failed...), in arrival order.",
        StatusesQuerySchema,
        StatusesPageSchema,
    )
)
@token_required
def list_statuses():
    query = load_query(StatusesQuerySchema())
    rows, more = store.list_statuses(
        limit=query["limit"],
        after=query["cursor"],
        message_id=query["message_id"],
        status=query["status"],
        since_key=query["since_key"],
    )
    return {
        "data": [
            {
                "message_id": row.message_id,
                "status": row.status,
                "ts": row.ts,
                "recipient": row.recipient,
                "provider": row.provider,
                "errors": json.loads(row.errors) if row.errors is not None else None,
                "raw": json.loads(row.raw) if row.raw is not None else None,
                "received_at": row.received_at,
            }
            for row in rows
        ],
        "next_cursor": str(rows[-1].id) if more else None,
    }


@bp.get("/rejections")
@operation(
    _operation(
        "listRejections",
        "Refused deliveries on every provider endpoint, newest first.",
        RejectionsQuerySchema,
        RejectionsPageSchema,
    )
)
@token_required
def list_rejections():
    query = load_query(RejectionsQuerySchema())
    rows, more = store.list_rejections(
        limit=query["limit"], before=query["cursor"], provider=query["provider"]
    )
    return {
        "data": [row._asdict() for row in rows],
        "next_cursor": str(rows[-1].id) if more else None,
    }
