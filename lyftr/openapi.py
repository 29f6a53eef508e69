"""GET /openapi.json: the OpenAPI 3 document of every endpoint, built from the marshmallow schemas.

Request bodies and query strings come from ``lyftr.schemas`` (what the code loads) through apispec's
marshmallow plugin; the providers' payloads (WhatsApp's notification, Twilio's form), which their
views read without a marshmallow schema, are the JSON Schemas of ``PROVIDER_SCHEMAS`` below. The
response schemas below describe what the views answer. Every response an
operation can give is listed, errors included: the end-to-end tier runs schemathesis against it
(tests/e2e/test_schemathesis.py), which fails on any status, content type or body not documented
here.
"""

import copy

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app
from marshmallow import Schema, fields

from . import schemas
from .config import MAX_BODY_BYTES, MAX_PROVIDER_BODY_BYTES
from .errors import RETRY_AFTER_SECONDS
from .signing import STANDARD_WEBHOOKS_TOLERANCE_S
from .twilio_sms import EMPTY_TWIML

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
            "location, ...; 'unknown' when it sent none); Twilio: 'text', or 'media' when "
            "NumMedia > 0; 'text' for /webhook.",
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
            "description": "What the provider sent for this message, exactly: WhatsApp's message "
            "object, Twilio's form fields (a field sent several times: the list of its values); "
            "null for /webhook."
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


# --- Requests of the providers: what Meta and Twilio send (JSON Schema, for the document) -------
# Open objects (Meta and Twilio add fields; the views ignore what they do not read). What the views
# read is described; whatever else a message holds is kept in its record's ``raw``.


# The examples' IDs (tests/e2e/test_schemathesis.py stores them first, so the examples of
# GET /messages/{message_id} find a record of each provider).
EXAMPLE_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
EXAMPLE_MESSAGE_SID = "SM0123456789abcdef0123456789abcdef"


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _text_object(name, description):
    return {
        "type": "object",
        "description": description,
        "properties": {name: {"type": "string"}},
    }


_WHATSAPP_MESSAGE = {
    "type": "object",
    "description": (
        "One message a user sent. Stored as message_id = id, from = '+' + from (without a phone "
        "number: from_user_id, or the user_id of the change's only contact, as given), to = '+' + "
        "the digits of metadata.display_phone_number, ts = timestamp as UTC "
        "'YYYY-MM-DDTHH:MM:SSZ', and text by type: text.body; the caption of an image, video or "
        "document; a reaction's emoji; the title of an interactive button_reply or list_reply; a "
        "button's text; otherwise null. The whole object is the record's raw."
    ),
    "required": ["id", "timestamp"],
    "properties": {
        "id": {
            "type": "string",
            "minLength": 1,
            "maxLength": schemas.MESSAGE_ID_MAX,
            "example": EXAMPLE_WAMID,
        },
        "from": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The sender's phone number, digits only. Absent for a user known only "
            "by a business-scoped user ID.",
            "example": "16505551234",
        },
        "from_user_id": {
            "type": "string",
            "minLength": 1,
            "description": "The sender's business-scoped user ID: 'from' when there is no phone "
            "number.",
        },
        "timestamp": {
            "type": "string",
            "pattern": "^[0-9]{1,11}$",
            "description": "Unix seconds, as a string.",
            "example": "1749416383",
        },
        "type": {
            "type": "string",
            "description": "text, image, video, document, audio, sticker, reaction, interactive, "
            "button, location, contacts, ...",
            "example": "text",
        },
        "text": _text_object("body", "type 'text': the text is body."),
        "image": _text_object("caption", "type 'image': the text is the caption, if any."),
        "video": _text_object("caption", "type 'video': the text is the caption, if any."),
        "document": _text_object("caption", "type 'document': the text is the caption, if any."),
        "reaction": {
            "type": "object",
            "description": "type 'reaction': the text is the emoji.",
            "properties": {"message_id": {"type": "string"}, "emoji": {"type": "string"}},
        },
        "button": _text_object("text", "type 'button': the text is text."),
        "interactive": {
            "type": "object",
            "description": "type 'interactive': the text is the title of the reply.",
            "properties": {
                "type": {"type": "string", "example": "button_reply"},
                "button_reply": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "title": {"type": "string"}},
                },
                "list_reply": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "title": {"type": "string"},
                        "description": {"type": "string"},
                    },
                },
            },
        },
    },
}

_WHATSAPP_STATUS = {
    "type": "object",
    "description": "A receipt (sent, delivered, read, failed) of a message the business sent: "
    "counted and logged by id, not stored.",
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "example": "delivered"},
        "timestamp": {"type": "string"},
        "recipient_id": {"type": "string"},
    },
}

_WHATSAPP_VALUE = {
    "type": "object",
    "description": "The value of a 'messages' change. metadata is required there.",
    "required": ["metadata"],
    "properties": {
        "messaging_product": {"type": "string", "example": "whatsapp"},
        "metadata": {
            "type": "object",
            "required": ["display_phone_number"],
            "properties": {
                "display_phone_number": {
                    "type": "string",
                    "pattern": "[0-9]",
                    "description": "The business number the messages were sent to; its digits "
                    "are the stored 'to'.",
                    "example": "15550783881",
                },
                "phone_number_id": {"type": "string", "example": "106540352242922"},
            },
        },
        "contacts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "wa_id": {"type": "string"},
                    "user_id": {"type": "string"},
                    "profile": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
            },
        },
        "messages": {"type": "array", "items": _ref("WhatsAppMessage")},
        "statuses": {"type": "array", "items": _ref("WhatsAppStatus")},
    },
}

_WHATSAPP_NOTIFICATION = {
    "type": "object",
    "description": (
        "A WhatsApp Cloud API notification (Meta's webhook payload). Every message of every change "
        "whose field is 'messages' becomes a row, all in one transaction; statuses and changes of "
        "other fields are acknowledged, counted and logged (IDs only), not stored."
    ),
    "required": ["object", "entry"],
    "properties": {
        "object": {"type": "string", "example": "whatsapp_business_account"},
        "entry": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "The WhatsApp Business Account ID."},
                    "changes": {
                        "type": "array",
                        "items": {
                            "description": "A change: field 'messages' (messages and statuses), "
                            "or another field the app subscribed to (not read).",
                            "anyOf": [
                                {
                                    "type": "object",
                                    "required": ["field", "value"],
                                    "properties": {
                                        "field": {"type": "string", "enum": ["messages"]},
                                        "value": _ref("WhatsAppChangeValue"),
                                    },
                                },
                                {
                                    "type": "object",
                                    "properties": {
                                        "field": {"type": "string", "not": {"enum": ["messages"]}},
                                        "value": {"type": "object"},
                                    },
                                },
                            ],
                        },
                    },
                },
            },
        },
    },
    "example": {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "contacts": [
                                {"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}
                            ],
                            "messages": [
                                {
                                    "from": "16505551234",
                                    "id": EXAMPLE_WAMID,
                                    "timestamp": "1749416383",
                                    "type": "text",
                                    "text": {"body": "Does it come in another color?"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    },
}

_TWILIO_MESSAGE = {
    "type": "object",
    "description": (
        "The form Twilio posts for an incoming SMS or WhatsApp message. Stored as message_id = "
        "MessageSid, from/to = From/To without a 'whatsapp:' prefix, text = Body, ts = the arrival "
        "time (UTC). Every field, these and Twilio's others, is the record's raw."
    ),
    "required": ["MessageSid", "From", "To"],
    "properties": {
        "MessageSid": {
            "type": "string",
            "minLength": 1,
            "maxLength": schemas.MESSAGE_ID_MAX,
            "example": EXAMPLE_MESSAGE_SID,
        },
        "From": {"type": "string", "minLength": 1, "example": "whatsapp:+14155550123"},
        "To": {"type": "string", "minLength": 1, "example": "+14155550100"},
        "Body": {"type": "string", "example": "Hello"},
        "NumMedia": {"type": "string", "description": "'0' or absent: type 'text'; else 'media'."},
        "AccountSid": {"type": "string"},
    },
    "additionalProperties": {"type": "string"},
    "example": {
        "MessageSid": EXAMPLE_MESSAGE_SID,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": "+14155550123",
        "To": "+14155550100",
        "Body": "Hello",
        "NumMedia": "0",
    },
}

PROVIDER_SCHEMAS = {
    "WhatsAppNotification": _WHATSAPP_NOTIFICATION,
    "WhatsAppChangeValue": _WHATSAPP_VALUE,
    "WhatsAppMessage": _WHATSAPP_MESSAGE,
    "WhatsAppStatus": _WHATSAPP_STATUS,
    "TwilioMessage": _TWILIO_MESSAGE,
}

OPENAPI_VERSION = "3.0.3"
JSON = "application/json"
SIGNATURE_PATTERN = r"^(sha256=)?[0-9a-fA-F]{64}$"

bp = Blueprint("openapi", __name__)

# Optional bearer token: required only when the service runs with API_TOKEN set.
OPTIONAL_BEARER = [{}, {"bearerAuth": []}]

_REQUEST_ID_HEADER = {
    "description": "The request's ID (an incoming X-Request-ID that looks like one is echoed "
    "back); it is on the request's log line.",
    "schema": {"type": "string"},
}


def _json(schema, description, headers=None):
    response = {"description": description, "content": {JSON: {"schema": schema}}}
    response["headers"] = {"X-Request-ID": _REQUEST_ID_HEADER, **(headers or {})}
    return response


def _text(media_type, description, example=None):
    """A response whose body is text (``media_type``), not JSON."""
    schema = {"type": "string"}
    if example is not None:
        schema["example"] = example
    return {
        "description": description,
        "content": {media_type: {"schema": schema}},
        "headers": {"X-Request-ID": _REQUEST_ID_HEADER},
    }


def _unavailable(description):
    return _json(
        ErrorSchema,
        description,
        headers={
            "Retry-After": {
                "description": f"Seconds to wait before retrying (always {RETRY_AFTER_SECONDS}).",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        },
    )


_VALIDATION_ERROR = _json(ValidationErrorSchema, "Invalid input: one entry per problem.")
_INTERNAL_ERROR = _json(
    InternalErrorSchema, "Unexpected error; request_id finds its log line (no stack trace)."
)
_DATABASE_UNAVAILABLE = _unavailable("Database unavailable (locked or unreachable); retry shortly.")
_UNAUTHORIZED = _json(
    ErrorSchema,
    "Only when the service runs with API_TOKEN set: the bearer token is missing or wrong.",
    headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
)

_WEBHOOK = {
    "post": {
        "operationId": "receiveWebhook",
        "summary": "Deliver one message; stored exactly once, keyed by message_id.",
        "description": (
            "Checks, in order: body size (413), the signature (401; nothing is parsed or stored), "
            "then the body (422; nothing is stored). A valid message is inserted once: a first "
            "delivery and any redelivery of the same message_id (any content) both answer 200, "
            "and the first write wins. Unknown fields are ignored.\n\n"
            "The signature is X-Signature or, when STANDARD_WEBHOOKS_SECRET is set, a Standard "
            "Webhooks signature (webhook-id, webhook-timestamp, webhook-signature): a request "
            "signed either way is accepted. Without STANDARD_WEBHOOKS_SECRET, X-Signature is "
            "required."
        ),
        "tags": ["webhook"],
        "parameters": [
            {
                "in": "header",
                "name": "X-Signature",
                "required": False,
                "description": "hex(HMAC_SHA256(key=WEBHOOK_SECRET, msg=raw request body bytes)); "
                "a 'sha256=' prefix is accepted. Required unless the request carries a Standard "
                "Webhooks signature and STANDARD_WEBHOOKS_SECRET is set.",
                "schema": {"type": "string", "pattern": SIGNATURE_PATTERN},
            },
            {
                "in": "header",
                "name": "webhook-id",
                "required": False,
                "description": "Standard Webhooks: the delivery's ID (signed).",
                "schema": {"type": "string", "example": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"},
            },
            {
                "in": "header",
                "name": "webhook-timestamp",
                "required": False,
                "description": "Standard Webhooks: when it was signed, in Unix seconds; more than "
                f"{STANDARD_WEBHOOKS_TOLERANCE_S // 60} minutes from the server's clock is 401.",
                "schema": {"type": "string", "pattern": "^[0-9]+$", "example": "1749416383"},
            },
            {
                "in": "header",
                "name": "webhook-signature",
                "required": False,
                "description": "Standard Webhooks: space-separated 'v1,<base64 HMAC-SHA256>' "
                "signatures of '{webhook-id}.{webhook-timestamp}.{raw body}', key = the base64 "
                "part of STANDARD_WEBHOOKS_SECRET ('whsec_...'); one matching is enough.",
                "schema": {
                    "type": "string",
                    "example": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
                },
            },
        ],
        "requestBody": {
            "required": True,
            "description": f"At most {MAX_BODY_BYTES} bytes. Signed as sent: the raw bytes.",
            "content": {JSON: {"schema": schemas.WebhookMessageSchema}},
        },
        "responses": {
            "200": _json(StatusOkSchema, "Stored, or a duplicate of a stored message_id."),
            "401": _json(
                ErrorSchema,
                "No valid signature (X-Signature, or Standard Webhooks' headers with a timestamp "
                "within the tolerance): 'invalid signature'.",
            ),
            "413": _json(ErrorSchema, f"Body larger than {MAX_BODY_BYTES} bytes."),
            "422": _VALIDATION_ERROR,
            "500": _INTERNAL_ERROR,
            "503": _unavailable(
                "Database unavailable, or WEBHOOK_SECRET not configured (then everything is "
                "refused and nothing is stored); retry shortly."
            ),
        },
    }
}

_WHATSAPP = {
    "get": {
        "operationId": "verifyWhatsAppSubscription",
        "summary": "Meta's subscription handshake: hub.challenge back if the verify token is ours.",
        "description": (
            "Meta calls this once when the callback URL is set up (Verify and save). With "
            "hub.mode 'subscribe' and hub.verify_token equal to WHATSAPP_VERIFY_TOKEN (compared "
            "in constant time) the answer is hub.challenge itself, as text/plain; anything else "
            "is 403 (the challenge is not echoed)."
        ),
        "tags": ["providers"],
        "parameters": [
            {
                "in": "query",
                "name": "hub.mode",
                "required": True,
                "description": "Always 'subscribe'; anything else is 403.",
                "schema": {"type": "string", "enum": ["subscribe"]},
            },
            {
                "in": "query",
                "name": "hub.verify_token",
                "required": True,
                "description": "The verify token entered in Meta's webhook setup.",
                "schema": {"type": "string"},
            },
            {
                "in": "query",
                "name": "hub.challenge",
                "required": True,
                "description": "Echoed back as the body of the 200.",
                "schema": {"type": "string", "example": "1158201444"},
            },
        ],
        "responses": {
            "200": _text("text/plain", "hub.challenge, exactly.", example="1158201444"),
            "403": _json(ErrorSchema, "Wrong verify token or mode: 'verification failed'."),
            "503": _unavailable("WHATSAPP_VERIFY_TOKEN not configured."),
        },
    },
    "post": {
        "operationId": "receiveWhatsAppNotification",
        "summary": "A WhatsApp Cloud API notification: every message in it stored exactly once.",
        "description": (
            "Checks, in order: body size (413), X-Hub-Signature-256 (401; nothing is parsed or "
            "stored), then the notification (422; nothing is stored). Every message of every "
            "'messages' change is stored, all in one transaction: all of them or none. Messages "
            "already stored are duplicates (the first write wins), so a redelivered batch "
            "answers 200 and stores nothing new. statuses[] and changes of other fields are "
            "acknowledged with 200, counted (whatsapp_updates_total) and logged by ID; they are "
            "not stored."
        ),
        "tags": ["providers"],
        "parameters": [
            {
                "in": "header",
                "name": "X-Hub-Signature-256",
                "required": True,
                "description": "'sha256=' + hex(HMAC_SHA256(key=WHATSAPP_APP_SECRET, msg=raw "
                "request body bytes)), as Meta sends it; WHATSAPP_APP_SECRET_PREVIOUS is accepted "
                "too while set.",
                "schema": {"type": "string", "pattern": SIGNATURE_PATTERN},
            }
        ],
        "requestBody": {
            "required": True,
            "description": f"At most {MAX_PROVIDER_BODY_BYTES} bytes (4 MiB). Signed as sent: the "
            "raw bytes.",
            "content": {JSON: {"schema": _ref("WhatsAppNotification")}},
        },
        "responses": {
            "200": _json(StatusOkSchema, "Stored (or already stored), or nothing to store."),
            "401": _json(ErrorSchema, "X-Hub-Signature-256 missing or wrong: 'invalid signature'."),
            "413": _json(ErrorSchema, f"Body larger than {MAX_PROVIDER_BODY_BYTES} bytes."),
            "422": _json(
                ValidationErrorSchema,
                "Signed, but not JSON or not a WhatsApp notification (object or entry missing or "
                "mistyped, a message without id, timestamp or sender, ...): nothing is stored.",
            ),
            "500": _INTERNAL_ERROR,
            "503": _unavailable(
                "Database unavailable, or WHATSAPP_APP_SECRET not configured; nothing is "
                "stored. Meta retries."
            ),
        },
    },
}

_TWILIO = {
    "post": {
        "operationId": "receiveTwilioMessage",
        "summary": "An incoming SMS or WhatsApp message from Twilio, stored exactly once.",
        "description": (
            "Checks, in order: body size (413), X-Twilio-Signature (401; nothing is stored), then "
            "the form (422). A MessageSid already stored is a duplicate: 200, nothing changes. "
            "The answer is an empty TwiML document: no reply is sent to the user."
        ),
        "tags": ["providers"],
        "parameters": [
            {
                "in": "header",
                "name": "X-Twilio-Signature",
                "required": True,
                "description": "base64(HMAC_SHA1(key=TWILIO_AUTH_TOKEN, msg=URL + every POST "
                "parameter sorted by name, name then value)); the URL is PUBLIC_BASE_URL + the "
                "path (+ '?' + the query string), as configured in Twilio.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9+/]{27}=$"},
            }
        ],
        "requestBody": {
            "required": True,
            "description": f"At most {MAX_BODY_BYTES} bytes.",
            "content": {"application/x-www-form-urlencoded": {"schema": _ref("TwilioMessage")}},
        },
        "responses": {
            "200": _text(
                "text/xml",
                "Stored, or a duplicate of a stored MessageSid: an empty TwiML document.",
                example=EMPTY_TWIML,
            ),
            "401": _json(ErrorSchema, "X-Twilio-Signature missing or wrong: 'invalid signature'."),
            "413": _json(ErrorSchema, f"Body larger than {MAX_BODY_BYTES} bytes."),
            "422": _json(
                ValidationErrorSchema,
                "Signed, but MessageSid, From or To missing, or MessageSid invalid; nothing is "
                "stored.",
            ),
            "500": _INTERNAL_ERROR,
            "503": _unavailable("Database unavailable, or TWILIO_AUTH_TOKEN not configured."),
        },
    }
}

_MESSAGES = {
    "get": {
        "operationId": "listMessages",
        "summary": "Stored messages, by ts ascending then message_id, with filters and paging.",
        "tags": ["messages"],
        "security": OPTIONAL_BEARER,
        "parameters": [{"in": "query", "schema": schemas.MessagesQuerySchema}],
        "responses": {
            "200": _json(MessagesPageSchema, "One page; total ignores limit and offset."),
            "401": _UNAUTHORIZED,
            "422": _json(ValidationErrorSchema, "Invalid query parameter; loc is ['query', name]."),
            "500": _INTERNAL_ERROR,
            "503": _DATABASE_UNAVAILABLE,
        },
    }
}

_MESSAGE = {
    "get": {
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
            "200": _json(MessageRecordSchema, "The record."),
            "401": _UNAUTHORIZED,
            "404": _json(ErrorSchema, "No message with this message_id: 'message not found'."),
            "500": _INTERNAL_ERROR,
            "503": _DATABASE_UNAVAILABLE,
        },
    }
}

_FEED = {
    "get": {
        "operationId": "readFeed",
        "summary": "Every stored message once, in commit order, for a consumer.",
        "description": (
            "Start at after=0 and pass back each answer's next_after: every stored message is "
            "handed out once, none skipped, none twice, whatever commits concurrently. With "
            "wait > 0 and nothing after `after`, the request waits for a commit (answering "
            "within about 100 ms of it) or answers empty when the wait is over. Purged messages "
            "no longer appear; seq values are never reused."
        ),
        "tags": ["messages"],
        "security": OPTIONAL_BEARER,
        "parameters": [{"in": "query", "schema": schemas.FeedQuerySchema}],
        "responses": {
            "200": _json(FeedPageSchema, "Up to limit records after `after`, in seq order."),
            "401": _UNAUTHORIZED,
            "422": _json(ValidationErrorSchema, "Invalid query parameter; loc is ['query', name]."),
            "500": _INTERNAL_ERROR,
            "503": _DATABASE_UNAVAILABLE,
        },
    }
}

_STATS = {
    "get": {
        "operationId": "getStats",
        "summary": "Totals, the top 10 senders and the time span of stored messages.",
        "tags": ["messages"],
        "security": OPTIONAL_BEARER,
        "responses": {
            "200": _json(StatsSchema, "Statistics; the ts values are null when nothing is stored."),
            "401": _UNAUTHORIZED,
            "500": _INTERNAL_ERROR,
            "503": _DATABASE_UNAVAILABLE,
        },
    }
}

_LIVE = {
    "get": {
        "operationId": "live",
        "summary": "Liveness: 200 whenever the process serves HTTP.",
        "tags": ["health"],
        "responses": {"200": _json(LiveSchema, "Alive.")},
    }
}

_READY = {
    "get": {
        "operationId": "ready",
        "summary": "Readiness: the database can be read and written, and WEBHOOK_SECRET is set.",
        "tags": ["health"],
        "responses": {
            "200": _json(ReadySchema, "Ready."),
            "503": _json(NotReadySchema, "Not ready; checks says which check failed."),
        },
    }
}

_METRICS = {
    "get": {
        "operationId": "metrics",
        "summary": "Prometheus metrics, summed over every Gunicorn worker.",
        "description": (
            "http_requests_total{method, path, status}, webhook_requests_total{result}, "
            "provider_requests_total{provider, result}, messages_stored_total{provider}, "
            "whatsapp_updates_total{kind}, request_latency_ms histogram."
        ),
        "tags": ["operations"],
        "security": OPTIONAL_BEARER,
        "responses": {
            "200": {
                "description": "Prometheus text exposition format.",
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    # Prometheus content negotiation: asked for with Accept.
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                },
                "headers": {"X-Request-ID": _REQUEST_ID_HEADER},
            },
            "401": _UNAUTHORIZED,
        },
    }
}

_OPENAPI = {
    "get": {
        "operationId": "openapi",
        "summary": "This document.",
        "tags": ["operations"],
        "responses": {
            "200": _json({"type": "object"}, "The OpenAPI document of the service."),
        },
    }
}

PATHS = {
    "/webhook": _WEBHOOK,
    "/webhooks/whatsapp": _WHATSAPP,
    "/webhooks/twilio": _TWILIO,
    "/messages": _MESSAGES,
    "/messages/{message_id}": _MESSAGE,
    "/feed": _FEED,
    "/stats": _STATS,
    "/health/live": _LIVE,
    "/health/ready": _READY,
    "/metrics": _METRICS,
    "/openapi.json": _OPENAPI,
}


def _schema_name(schema):
    """Component name of a schema class or instance: the class name without 'Schema'."""
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__
    return name[: -len("Schema")] if name.endswith("Schema") and name != "Schema" else name


def build_spec():
    """The OpenAPI document as a dict (a new one each call)."""
    spec = APISpec(
        title="lyftr",
        version="1.0.0",
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
        info={
            "description": "Ingests messages from signed webhooks (its own contract's, "
            "WhatsApp Cloud API's and Twilio's) exactly once, and lets operators read them back.",
        },
    )
    spec.components.security_scheme(
        "bearerAuth",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "Needed for /messages, /messages/{message_id}, /feed, /stats and "
            "/metrics only when API_TOKEN is set.",
        },
    )
    for name, schema in PROVIDER_SCHEMAS.items():
        spec.components.schema(name, copy.deepcopy(schema))
    for path, operations in PATHS.items():
        # apispec resolves schema classes to references in place: keep PATHS as written.
        spec.path(path=path, operations=copy.deepcopy(operations))
    document = spec.to_dict()
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                _absent_is_not_null(parameter["schema"])
    return document


def _absent_is_not_null(schema):
    """A query parameter whose load_default is None is optional: it cannot be sent as null."""
    if "default" in schema and schema["default"] is None:
        del schema["default"]
        schema.pop("nullable", None)


@bp.get("/openapi.json")
def document():
    cached = current_app.extensions.get("lyftr.openapi")
    if cached is None:
        cached = current_app.extensions["lyftr.openapi"] = build_spec()
    return cached
