"""POST /webhook: size limit, signature, validation, then insert-once, in the contract's order.

The signature is the contract's ``X-Signature``, or, when ``STANDARD_WEBHOOKS_SECRET`` is set, a
Standard Webhooks signature (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
"""

from flask import Blueprint, current_app, request
from marshmallow import ValidationError

from lyftr import metrics, store
from lyftr.api import schemas
from lyftr.api.errors import error_response, unavailable, validation_detail
from lyftr.api.openapi import operation
from lyftr.api.request_log import annotate
from lyftr.api.response_schemas import (
    BODY_BUSY,
    BODY_TOO_SLOW,
    INTERNAL_ERROR,
    JSON,
    SIGNATURE_PATTERN,
    VALIDATION_ERROR,
    ErrorSchema,
    StatusOkSchema,
    json_response,
    unavailable_response,
)
from lyftr.config import MAX_BODY_BYTES
from lyftr.providers import signing
from lyftr.providers.inbound import parse_json, read_body
from lyftr.store import database_errors

bp = Blueprint("webhook", __name__)

_message_schema = schemas.WebhookMessageSchema()


def _outcome(result, **fields):
    metrics.count_webhook(result)
    annotate(result=result, **fields)


RECEIVE_OPERATION = {
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
            f"{signing.STANDARD_WEBHOOKS_TOLERANCE_S // 60} minutes from the server's clock is "
            "401.",
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
        "200": json_response(StatusOkSchema, "Stored, or a duplicate of a stored message_id."),
        "401": json_response(
            ErrorSchema,
            "No valid signature (X-Signature, or Standard Webhooks' headers with a timestamp "
            "within the tolerance): 'invalid signature'.",
        ),
        "408": BODY_TOO_SLOW,
        "413": json_response(ErrorSchema, f"Body larger than {MAX_BODY_BYTES} bytes."),
        "422": VALIDATION_ERROR,
        "500": INTERNAL_ERROR,
        "503": unavailable_response(
            "Database unavailable, or WEBHOOK_SECRET not configured (then everything is "
            "refused and nothing is stored); retry shortly." + BODY_BUSY
        ),
    },
}


@bp.post("/webhook")
@operation(RECEIVE_OPERATION)
def receive():
    secrets = {
        "current": current_app.config["WEBHOOK_SECRET"],
        "previous": current_app.config["WEBHOOK_SECRET_PREVIOUS"],
    }
    body = read_body()
    if not secrets["current"]:
        _outcome("not_configured", dup=False)
        return unavailable("webhook secret not configured")
    key = signing.verify(secrets, body, request.headers.get("X-Signature"))
    if key is None and "webhook-signature" in request.headers:
        key = _standard_webhooks_key(body)
    if key is None:
        _outcome("invalid_signature", dup=False)
        return error_response(401, "invalid signature")

    try:
        payload = parse_json(body)
    except (ValueError, RecursionError):  # also invalid UTF-8 (a ValueError) and too deep nesting
        _outcome("validation_error", dup=False, key=key)
        detail = [
            {"type": "json_invalid", "loc": ["body"], "msg": schemas.INVALID_JSON, "input": None}
        ]
        return error_response(422, detail)
    try:
        message = _message_schema.load(payload)
    except ValidationError as exc:
        message_id = payload.get("message_id") if isinstance(payload, dict) else None
        _outcome(
            "validation_error",
            dup=False,
            key=key,
            **({"message_id": message_id} if isinstance(message_id, str) else {}),
        )
        detail = validation_detail(exc.messages, "body", payload, _message_schema)
        try:
            return error_response(422, detail)
        except RecursionError:  # an input nested too deeply to echo back: leave it out
            return error_response(422, [{**entry, "input": None} for entry in detail])

    try:
        created = store.insert_message(message)
    except Exception as exc:
        result = "unavailable" if database_errors.is_unavailable(exc) else "error"
        _outcome(result, message_id=message["message_id"], dup=False, key=key)
        raise
    if created:
        metrics.count_stored("webhook")
    _outcome(
        "created" if created else "duplicate",
        message_id=message["message_id"],
        dup=not created,
        key=key,
    )
    return {"status": "ok"}


def _standard_webhooks_key(body):
    """ "standard-webhooks" if the delivery carries a valid Standard Webhooks signature."""
    secret = current_app.config["STANDARD_WEBHOOKS_SECRET"]
    headers = request.headers
    valid = signing.verify_standard_webhooks(
        secret,
        body,
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
    )
    return "standard-webhooks" if valid else None


@bp.errorhandler(413)
def on_payload_too_large(exc):
    _outcome("payload_too_large", dup=False)
    return error_response(413, f"request body larger than {request.max_content_length} bytes")
