"""POST /webhook: size limit, signature, validation, then insert-once, in the contract's order.

The signature is the contract's ``X-Signature``, or, when ``STANDARD_WEBHOOKS_SECRET`` is set, a
Standard Webhooks signature (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``, or
their ``svix-`` names, which Svix sends by default). A Standard Webhooks delivery may carry the
spec's envelope (``{"type", "timestamp", "data": {...}}``): the message is ``data``, and its
message_id, when absent, is the ``webhook-id``. Every refused delivery is kept for GET
/rejections; a delivery signed with X-Signature takes the same path as before, and nothing more.
"""

import json

from flask import Blueprint, current_app, request
from marshmallow import ValidationError

from lyftr import metrics, store
from lyftr.api import fast_load, schemas
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
from lyftr.providers import inbound, signing
from lyftr.providers.inbound import parse_json, read_body
from lyftr.store import database_errors

bp = Blueprint("webhook", __name__)
PROVIDER = "webhook"
# Svix's default header names; the Standard Webhooks names are webhook-*.
HEADER_PREFIXES = ("webhook-", "svix-")
V1A_REFUSED = (
    "invalid signature: v1a (asymmetric, ed25519) signatures are not accepted; sign with v1 "
    "(HMAC-SHA256 under STANDARD_WEBHOOKS_SECRET)"
)

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
        "required. Svix's default names (svix-id, svix-timestamp, svix-signature) are accepted "
        "for the Standard Webhooks headers; v1a (asymmetric) signatures are refused (401).\n\n"
        'A Standard Webhooks delivery may use the spec\'s envelope, {"type": ..., '
        '"timestamp": ..., "data": {message}}: the message is data, its message_id '
        "defaults to the webhook-id (so a redelivery is a duplicate) and its ts to the "
        "envelope's timestamp; the envelope is kept as the record's raw.\n\n"
        "Every refusal (401, 413, 422, 503 not configured) is kept for GET /rejections."
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
        *(
            {
                "in": "header",
                "name": f"svix-{name}",
                "required": False,
                "description": f"Svix's name for webhook-{name}.",
                "schema": {"type": "string"},
            }
            for name in ("id", "timestamp", "signature")
        ),
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
        inbound.reject(PROVIDER, "not configured: WEBHOOK_SECRET", body)
        return unavailable("webhook secret not configured")
    key = signing.verify(secrets, body, request.headers.get("X-Signature"))
    standard = None
    if key is None and _standard_header("signature") is not None:
        standard = _standard_webhooks(body)
        key = "standard-webhooks" if standard["valid"] else None
    if key is None:
        _outcome("invalid_signature", dup=False)
        reason = standard["reason"] if standard else "invalid signature"
        inbound.reject(PROVIDER, reason, body)
        return error_response(401, "invalid signature")

    try:
        payload = parse_json(body)
    except (ValueError, RecursionError):  # also invalid UTF-8 (a ValueError) and too deep nesting
        _outcome("validation_error", dup=False, key=key)
        detail = [
            {"type": "json_invalid", "loc": ["body"], "msg": schemas.INVALID_JSON, "input": None}
        ]
        inbound.reject(PROVIDER, detail, body, authentic=True)
        return error_response(422, detail)
    envelope = None
    if standard is not None and _is_envelope(payload):
        # The envelope's own time stands in for a ts the data does not carry.
        data = {"message_id": standard["id"], "ts": payload.get("timestamp"), **payload["data"]}
        envelope, payload = payload, data
    try:
        message = fast_load.webhook_message(payload) or _message_schema.load(payload)
    except ValidationError as exc:
        message_id = payload.get("message_id") if isinstance(payload, dict) else None
        _outcome(
            "validation_error",
            dup=False,
            key=key,
            **({"message_id": message_id} if isinstance(message_id, str) else {}),
        )
        detail = validation_detail(exc.messages, "body", payload, _message_schema)
        inbound.reject(PROVIDER, detail, body, authentic=True)
        try:
            return error_response(422, detail)
        except RecursionError:  # an input nested too deeply to echo back: leave it out
            return error_response(422, [{**entry, "input": None} for entry in detail])
    if envelope is not None:
        message["raw"] = json.dumps(envelope)  # the envelope as sent: nothing lost

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


def _standard_header(name):
    """A Standard Webhooks header by its webhook-* name, else its svix-* name."""
    for prefix in HEADER_PREFIXES:
        value = request.headers.get(prefix + name)
        if value is not None:
            return value
    return None


def _standard_webhooks(body):
    """Whether the delivery carries a valid Standard Webhooks signature; its id; and, if not,
    why (for GET /rejections)."""
    secret = current_app.config["STANDARD_WEBHOOKS_SECRET"]
    message_id, timestamp, signatures = (
        _standard_header(name) for name in ("id", "timestamp", "signature")
    )
    valid = signing.verify_standard_webhooks(secret, body, message_id, timestamp, signatures)
    reason = None
    if not valid:
        reason = _why_refused(secret, message_id, timestamp, signatures)
    return {"valid": valid, "id": message_id, "reason": reason}


def _why_refused(secret, message_id, timestamp, signatures):
    if not secret:
        return "invalid signature: STANDARD_WEBHOOKS_SECRET not configured"
    if not (message_id and timestamp):
        return "invalid signature: webhook-id or webhook-timestamp missing"
    versions = {candidate.partition(",")[0] for candidate in signatures.split()}
    if versions == {"v1a"}:
        return V1A_REFUSED
    if not signing.standard_webhooks_fresh(timestamp):
        return "stale timestamp"
    return "invalid signature"


def _is_envelope(payload):
    """The Standard Webhooks spec's payload shape: {"type", "timestamp", "data": {...}}."""
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("type"), str)
        and isinstance(payload.get("data"), dict)
        and "from" not in payload
    )


@bp.errorhandler(413)
def on_payload_too_large(exc):
    _outcome("payload_too_large", dup=False)
    inbound.reject(PROVIDER, "payload too large", None)
    return error_response(413, f"request body larger than {request.max_content_length} bytes")
