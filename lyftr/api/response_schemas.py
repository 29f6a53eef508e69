"""What the service answers, described for the OpenAPI document: the response schemas and the
response objects every operation shares (errors, 503s, the optional bearer token).

Each view declares its own operation next to itself (``openapi.operation``); this module holds the
pieces they have in common.
"""

from marshmallow import Schema, fields

from lyftr.api.errors import RETRY_AFTER_SECONDS

# --- Responses: what the service answers, for the OpenAPI document (dump-only) ------------------
# Unknown keys are refused (marshmallow's default), so each is documented with
# additionalProperties: false and any undocumented key in a response fails the conformance tests.


class StatusOkSchema(Schema):
    """200 of POST /webhook and POST /webhooks/whatsapp, for a first delivery and a redelivery
    alike."""

    status = fields.String(required=True, metadata={"enum": ["ok"]})


class ErrorSchema(Schema):
    """Every error other than a validation error: a human-readable ``detail``."""

    detail = fields.String(required=True, metadata={"example": "invalid signature"})


class InternalErrorSchema(Schema):
    """500: an unexpected error; ``request_id`` finds its log line (never a stack trace)."""

    detail = fields.String(required=True, metadata={"example": "internal error"})
    request_id = fields.String(required=True, allow_none=True)


class ValidationErrorEntrySchema(Schema):
    """One problem, as FastAPI/Pydantic reports it."""

    type = fields.String(required=True, metadata={"example": "value_error"})
    loc = fields.List(
        fields.Raw(metadata={"anyOf": [{"type": "string"}, {"type": "integer"}]}),
        required=True,
        metadata={
            "description": "Where: 'body' or 'query', then the field name.",
            "example": ["body", "from"],
        },
    )
    msg = fields.String(required=True)
    input = fields.Raw(
        required=True, allow_none=True, metadata={"description": "The offending value (any JSON)."}
    )


class ValidationErrorSchema(Schema):
    """422: one entry per problem."""

    detail = fields.List(fields.Nested(ValidationErrorEntrySchema), required=True)


class MessageSchema(Schema):
    """A stored message as GET /messages returns it; ``ts`` exactly as it was received."""

    message_id = fields.String(required=True)
    from_msisdn = fields.String(required=True, data_key="from")
    to_msisdn = fields.String(required=True, data_key="to")
    ts = fields.String(required=True)
    text = fields.String(required=True, allow_none=True)


class MessageRecordSchema(MessageSchema):
    """200 of GET /messages/{message_id}: the contract's fields, where the message came from and
    what was received."""

    provider = fields.String(
        required=True,
        metadata={
            "enum": ["webhook", "whatsapp", "twilio"],
            "description": "Who delivered it: POST /webhook, /webhooks/whatsapp or "
            "/webhooks/twilio.",
        },
    )
    type = fields.String(
        required=True,
        metadata={
            "description": "WhatsApp's message type as sent (text, image, reaction, interactive, "
            "location, edit, revoke, ...; 'unknown' when it sent none); Twilio: MessageType, else "
            "'text', or 'media' when NumMedia > 0; 'text' for /webhook.",
            "example": "image",
        },
    )
    received_at = fields.String(
        required=True,
        metadata={
            "description": "When lyftr stored it, in UTC.",
            "example": "2025-06-08T20:59:44.123456Z",
        },
    )
    raw = fields.Raw(
        required=True,
        allow_none=True,
        metadata={
            "description": "What the provider sent for this message, exactly: WhatsApp's "
            "{message, contact, metadata, entry_id, errors} (rows stored before revision 0004: "
            "the message object), Twilio's form fields (a field sent several times: the list of "
            "its values), a Standard Webhooks envelope; null for /webhook and after a revoke."
        },
    )
    seq = fields.Integer(
        required=True,
        metadata={
            "minimum": 1,
            "description": "Its position in GET /feed: positive, strictly increasing in the "
            "order messages were committed, never reused.",
        },
    )

    channel = fields.String(
        required=True,
        metadata={
            "description": "How it travelled: 'webhook', 'whatsapp', 'sms', 'mms', or the "
            "channel Twilio names in the sender's address ('messenger', ...).",
            "example": "whatsapp",
        },
    )
    sender_name = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "WhatsApp's profile name, Twilio's ProfileName."},
    )
    media = fields.List(
        fields.Dict(),
        required=True,
        allow_none=True,
        metadata={
            "description": "Attachments: {id or url, mime_type, sha256, filename, caption}, the "
            "keys the provider sent; null when there are none."
        },
    )
    location = fields.Dict(
        required=True,
        allow_none=True,
        metadata={"description": "A shared location: {latitude, longitude, name, address}."},
    )
    reply_to = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "The message_id it replies to (context.id, OriginalRepliedMessageSid)."
        },
    )
    reactions = fields.List(
        fields.Dict(),
        required=True,
        metadata={"description": "Reactions to this message: [{from, emoji, ts}], one per sender."},
    )
    edited_at = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "When an edit replaced its text (the edit's ts)."},
    )
    revoked_at = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "When the sender deleted it; its text is then null."},
    )


class FeedPageSchema(Schema):
    """200 of GET /feed."""

    data = fields.List(fields.Nested(MessageRecordSchema), required=True)
    next_after = fields.Integer(
        required=True,
        metadata={
            "minimum": 0,
            "description": "Pass as ?after= next: the seq of the last item, or the given after "
            "when there is none.",
        },
    )


class MessagesPageSchema(Schema):
    """200 of GET /messages."""

    data = fields.List(fields.Nested(MessageSchema), required=True)
    total = fields.Integer(
        required=True,
        metadata={"minimum": 0, "description": "Rows matching the filters, ignoring paging."},
    )
    limit = fields.Integer(required=True, metadata={"minimum": 1, "maximum": 100})
    offset = fields.Integer(required=True, metadata={"minimum": 0})
    next_cursor = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Pass as ?cursor= for the next page; null on the last page."},
    )


class SenderCountSchema(Schema):
    from_msisdn = fields.String(required=True, data_key="from")
    count = fields.Integer(required=True, metadata={"minimum": 1})


class StatsSchema(Schema):
    """200 of GET /stats."""

    total_messages = fields.Integer(required=True, metadata={"minimum": 0})
    senders_count = fields.Integer(required=True, metadata={"minimum": 0})
    messages_per_sender = fields.List(
        fields.Nested(SenderCountSchema),
        required=True,
        metadata={
            "maxItems": 10,
            "description": "Top 10 senders by count, descending; ties by 'from'.",
        },
    )
    first_message_ts = fields.String(required=True, allow_none=True)
    last_message_ts = fields.String(required=True, allow_none=True)


class LiveSchema(Schema):
    """200 of GET /health/live."""

    status = fields.String(required=True, metadata={"enum": ["ok"]})


def _checks():
    return fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={
            "description": "Each check ('database', 'webhook_secret'): 'ok' or why it failed.",
            "example": {"webhook_secret": "ok", "database": "ok"},
        },
    )


class ReadySchema(Schema):
    """200 of GET /health/ready."""

    status = fields.String(required=True, metadata={"enum": ["ready"]})
    checks = _checks()


class NotReadySchema(Schema):
    """503 of GET /health/ready: which check failed."""

    status = fields.String(required=True, metadata={"enum": ["unavailable"]})
    detail = fields.String(required=True, metadata={"example": "not ready: database"})
    checks = _checks()


# The examples' IDs (tests/e2e/test_schemathesis.py stores them first, so the examples of
# GET /messages/{message_id} find a record of each provider).
EXAMPLE_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
EXAMPLE_MESSAGE_SID = "SM0123456789abcdef0123456789abcdef"


JSON = "application/json"
SIGNATURE_PATTERN = r"^(sha256=)?[0-9a-fA-F]{64}$"

# Optional bearer token: required only when the service runs with API_TOKEN set.
OPTIONAL_BEARER = [{}, {"bearerAuth": []}]

REQUEST_ID_HEADER = {
    "description": "The request's ID (an incoming X-Request-ID that looks like one is echoed "
    "back); it is on the request's log line.",
    "schema": {"type": "string"},
}


def schema_ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema, description, headers=None):
    response = {"description": description, "content": {JSON: {"schema": schema}}}
    response["headers"] = {"X-Request-ID": REQUEST_ID_HEADER, **(headers or {})}
    return response


def text_response(media_type, description, example=None):
    """A response whose body is text (``media_type``), not JSON."""
    schema = {"type": "string"}
    if example is not None:
        schema["example"] = example
    return {
        "description": description,
        "content": {media_type: {"schema": schema}},
        "headers": {"X-Request-ID": REQUEST_ID_HEADER},
    }


def unavailable_response(description):
    return json_response(
        ErrorSchema,
        description,
        headers={
            "Retry-After": {
                "description": f"Seconds to wait before retrying (always {RETRY_AFTER_SECONDS}).",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        },
    )


VALIDATION_ERROR = json_response(ValidationErrorSchema, "Invalid input: one entry per problem.")
INTERNAL_ERROR = json_response(
    InternalErrorSchema, "Unexpected error; request_id finds its log line (no stack trace)."
)
DATABASE_UNAVAILABLE = unavailable_response(
    "Database unavailable (locked or unreachable), or the query ran past its budget "
    "(QUERY_BUDGET_MS: 'query took too long ...'); retry shortly."
)
BODY_TOO_SLOW = json_response(
    ErrorSchema, "The body was not received whole within BODY_TIMEOUT_S; nothing is stored."
)
# Appended to the 503 description of every endpoint that reads a body.
BODY_BUSY = " Or too many bodies being read at once in this worker (BODY_READERS)."
UNAUTHORIZED = json_response(
    ErrorSchema,
    "Only when the service runs with API_TOKEN set: the bearer token is missing or wrong.",
    headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
)
