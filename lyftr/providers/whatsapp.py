"""WhatsApp Cloud API (Meta) delivers here: the subscription handshake and signed notifications.

``GET /webhooks/whatsapp`` answers Meta's verification request with its challenge when the verify
token matches. ``POST /webhooks/whatsapp`` takes a notification signed with the app secret
(``X-Hub-Signature-256``); every message in it becomes a normalized record
(``whatsapp_notification``), all of them in one transaction, and a message that cannot be stored is
quarantined as a rejection while the rest is stored. Status receipts are stored as status events;
other fields are acknowledged, counted and logged.
"""

import hmac

from flask import Blueprint, Response, current_app, request

from lyftr import metrics, store
from lyftr.api.errors import error_response, unavailable
from lyftr.api.openapi import operation
from lyftr.api.response_schemas import (
    BODY_BUSY,
    BODY_TOO_SLOW,
    INTERNAL_ERROR,
    JSON,
    SIGNATURE_PATTERN,
    ErrorSchema,
    StatusOkSchema,
    ValidationErrorSchema,
    json_response,
    schema_ref,
    text_response,
    unavailable_response,
)
from lyftr.api.schemas import INVALID_JSON
from lyftr.api.strict_json import MAX_STORED_DEPTH
from lyftr.config import MAX_PROVIDER_BODY_BYTES
from lyftr.providers import inbound, signing
from lyftr.providers.inbound import parse_json, read_body
from lyftr.providers.payload_schemas import WHATSAPP_SCHEMAS
from lyftr.providers.whatsapp_notification import InvalidNotification, parse_notification
from lyftr.store import database_errors
from lyftr.timestamps import now_iso

bp = Blueprint("whatsapp", __name__, url_prefix="/webhooks")
PROVIDER = "whatsapp"
# At most this many IDs of each kind go on a request's log line (the counts are always there).
LOGGED_IDS = 100


def _outcome(result, **fields):
    inbound.outcome(PROVIDER, result, **fields)


VERIFY_OPERATION = {
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
        "200": text_response("text/plain", "hub.challenge, exactly.", example="1158201444"),
        "403": json_response(ErrorSchema, "Wrong verify token or mode: 'verification failed'."),
        "503": unavailable_response("WHATSAPP_VERIFY_TOKEN not configured."),
    },
}


@bp.get("/whatsapp")
@operation(VERIFY_OPERATION)
def verify_subscription():
    """Meta's handshake: echo ``hub.challenge`` when ``hub.verify_token`` is ours."""
    token = current_app.config["WHATSAPP_VERIFY_TOKEN"]
    if not token:
        _outcome("not_configured")
        return unavailable("WhatsApp verify token not configured: set WHATSAPP_VERIFY_TOKEN")
    given = request.args.get("hub.verify_token", "")
    matches = hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8"))
    if request.args.get("hub.mode") != "subscribe" or not matches:
        _outcome("forbidden")
        return error_response(403, "verification failed")
    _outcome("verified")
    return Response(request.args.get("hub.challenge", ""), mimetype="text/plain")


RECEIVE_OPERATION = {
    "operationId": "receiveWhatsAppNotification",
    "summary": "A WhatsApp Cloud API notification: every message in it stored exactly once.",
    "description": (
        "Checks, in order: body size (413), X-Hub-Signature-256 (401; nothing is parsed or "
        "stored), then the notification's shape (422; nothing is stored). Every message of "
        "every 'messages' change is read on its own: those that can be stored are stored in "
        "one transaction, each one that cannot is kept as a rejection (GET /rejections) and "
        "the answer is still 200. Messages already stored are duplicates (the first write "
        "wins), so a redelivered batch answers 200 and stores nothing new. Edits, revokes and "
        "reactions are applied to the message they name. statuses[] are stored as status "
        "events (GET /statuses); changes of other fields are acknowledged with 200, counted "
        "(whatsapp_updates_total) and logged."
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
        "content": {JSON: {"schema": schema_ref("WhatsAppNotification")}},
    },
    "responses": {
        "200": json_response(StatusOkSchema, "Stored (or already stored), or nothing to store."),
        "401": json_response(
            ErrorSchema, "X-Hub-Signature-256 missing or wrong: 'invalid signature'."
        ),
        "408": BODY_TOO_SLOW,
        "413": json_response(ErrorSchema, f"Body larger than {MAX_PROVIDER_BODY_BYTES} bytes."),
        "422": json_response(
            ValidationErrorSchema,
            "Signed, but not JSON or not a WhatsApp notification (object or entry missing or "
            "mistyped, an entry's changes not a list): nothing is stored.",
        ),
        "500": INTERNAL_ERROR,
        "503": unavailable_response(
            "Database unavailable, or WHATSAPP_APP_SECRET not configured; nothing is "
            "stored. Meta retries." + BODY_BUSY
        ),
    },
}


@bp.post("/whatsapp")
@operation(RECEIVE_OPERATION, components=WHATSAPP_SCHEMAS)
def receive_notification():
    body = read_body(MAX_PROVIDER_BODY_BYTES)
    secrets = {
        "current": current_app.config["WHATSAPP_APP_SECRET"],
        "previous": current_app.config["WHATSAPP_APP_SECRET_PREVIOUS"],
    }
    if not secrets["current"]:
        _outcome("not_configured")
        inbound.reject(PROVIDER, "not configured: WHATSAPP_APP_SECRET", body)
        return unavailable("WhatsApp app secret not configured: set WHATSAPP_APP_SECRET")
    key = signing.verify(secrets, body, request.headers.get("X-Hub-Signature-256"))
    if key is None:
        _outcome("invalid_signature")
        inbound.reject(PROVIDER, "invalid signature", body)
        return error_response(401, "invalid signature")
    received_at = now_iso()
    try:
        notification = parse_notification(parse_json(body, max_depth=MAX_STORED_DEPTH), received_at)
    except InvalidNotification as exc:
        _outcome("validation_error", key=key)
        inbound.reject(PROVIDER, exc.detail, body, authentic=True)
        return error_response(422, exc.detail)
    # not JSON, not UTF-8, a key twice, or nested too deeply (the input is never echoed)
    except (ValueError, RecursionError):
        _outcome("validation_error", key=key)
        detail = [{"type": "json_invalid", "loc": ["body"], "msg": INVALID_JSON, "input": None}]
        inbound.reject(PROVIDER, detail, body, authentic=True)
        return error_response(422, detail)

    message_ids = [message["message_id"] for message in notification.messages]
    status_ids = [status["message_id"] for status in notification.statuses]
    try:
        stored = store.insert_batch(notification.messages, notification.actions)
        new_statuses = store.insert_statuses(notification.statuses)
    except Exception as exc:
        result = "unavailable" if database_errors.is_unavailable(exc) else "error"
        _outcome(result, key=key, message_ids=message_ids[:LOGGED_IDS])
        raise
    # Each part that could not be read is kept with its reason; a retry could never succeed, so
    # the batch is acknowledged (Meta would otherwise redeliver it for days).
    for invalid in notification.invalid[:LOGGED_IDS]:
        inbound.reject(PROVIDER, [invalid], body, authentic=True)
    metrics.count_stored(PROVIDER, stored)
    metrics.count_whatsapp_updates("message", len(message_ids))
    metrics.count_whatsapp_updates("status", len(status_ids))
    metrics.count_whatsapp_updates("other", notification.other_changes)
    if notification.invalid:
        result = "quarantined"
    elif status_ids and not message_ids:
        result = "status"
    else:
        result = "accepted"
    _outcome(
        result,
        key=key,
        messages=len(message_ids),
        stored=stored,
        statuses=len(status_ids),
        new_statuses=new_statuses,
        quarantined=len(notification.invalid),
        other_changes=notification.other_changes,
        message_ids=message_ids[:LOGGED_IDS],
        status_ids=status_ids[:LOGGED_IDS],
    )
    return {"status": "ok"}


@bp.errorhandler(413)
def on_payload_too_large(exc):
    _outcome("payload_too_large")
    inbound.reject(PROVIDER, "payload too large", None)
    return error_response(413, f"request body larger than {MAX_PROVIDER_BODY_BYTES} bytes")
