"""WhatsApp Cloud API (Meta) delivers here: the subscription handshake and signed notifications.

``GET /webhooks/whatsapp`` answers Meta's verification request with its challenge when the verify
token matches. ``POST /webhooks/whatsapp`` takes a notification signed with the app secret
(``X-Hub-Signature-256``); every message in it becomes a row like a /webhook message, all of them
in one transaction. Status receipts and other fields are acknowledged, counted and logged (IDs
only), not stored.
"""

import hmac
import json
from datetime import UTC, datetime
from typing import NamedTuple

from flask import Blueprint, Response, current_app, request

from lyftr import metrics, store, timestamps
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
from lyftr.api.schemas import INVALID_JSON, MESSAGE_ID_MAX
from lyftr.config import MAX_PROVIDER_BODY_BYTES
from lyftr.providers import inbound, signing
from lyftr.providers.inbound import parse_json, read_body
from lyftr.providers.payload_schemas import WHATSAPP_SCHEMAS
from lyftr.store import database_errors
from lyftr.store.folding import storable

bp = Blueprint("whatsapp", __name__, url_prefix="/webhooks")
PROVIDER = "whatsapp"
# Message types whose media object may carry a caption: that caption is the message's text.
CAPTIONED = frozenset({"image", "video", "document"})
# At most this many IDs of each kind go on a request's log line (the counts are always there).
LOGGED_IDS = 100


class Notification(NamedTuple):
    messages: list[dict]  # rows to store, as api.schemas loads a /webhook message
    status_ids: list[str]
    other_changes: int


class InvalidNotification(ValueError):
    def __init__(self, loc, msg, value):
        super().__init__(msg)
        self.detail = [{"type": "value_error", "loc": ["body", *loc], "msg": msg, "input": value}]


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
        return unavailable("WhatsApp verify token not configured")
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
            "mistyped, a message without id, timestamp or sender, ...): nothing is stored.",
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
        return unavailable("WhatsApp app secret not configured")
    key = signing.verify(secrets, body, request.headers.get("X-Hub-Signature-256"))
    if key is None:
        _outcome("invalid_signature")
        return error_response(401, "invalid signature")
    try:
        notification = parse_notification(parse_json(body))
    except InvalidNotification as exc:
        _outcome("validation_error", key=key)
        return error_response(422, exc.detail)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deeply
        _outcome("validation_error", key=key)
        return error_response(
            422, [{"type": "json_invalid", "loc": ["body"], "msg": INVALID_JSON, "input": None}]
        )

    message_ids = [message["message_id"] for message in notification.messages]
    try:
        stored = store.insert_batch(notification.messages)
    except Exception as exc:
        result = "unavailable" if database_errors.is_unavailable(exc) else "error"
        _outcome(result, key=key, message_ids=message_ids[:LOGGED_IDS])
        raise
    metrics.count_stored(PROVIDER, stored)
    metrics.count_whatsapp_updates("message", len(message_ids))
    metrics.count_whatsapp_updates("status", len(notification.status_ids))
    metrics.count_whatsapp_updates("other", notification.other_changes)
    _outcome(
        "accepted",
        key=key,
        messages=len(message_ids),
        stored=stored,
        statuses=len(notification.status_ids),
        other_changes=notification.other_changes,
        message_ids=message_ids[:LOGGED_IDS],
        status_ids=notification.status_ids[:LOGGED_IDS],
    )
    return {"status": "ok"}


@bp.errorhandler(413)
def on_payload_too_large(exc):
    _outcome("payload_too_large")
    return error_response(413, f"request body larger than {MAX_PROVIDER_BODY_BYTES} bytes")


# --- reading a notification -------------------------------------------------------------------


def parse_notification(payload):
    """The messages (as rows), status IDs and other changes of a notification's JSON document;
    InvalidNotification if it is not one."""
    if not isinstance(payload, dict):
        raise InvalidNotification([], "Input should be a WhatsApp notification object", None)
    if not isinstance(payload.get("object"), str):
        raise InvalidNotification(["object"], "Field required: a string", payload.get("object"))
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise InvalidNotification(["entry"], "Field required: a list", entries)
    messages, status_ids, other_changes = [], [], 0
    for i, entry in enumerate(entries):
        changes = entry.get("changes", []) if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            raise InvalidNotification(
                ["entry", i], "Should be an object with a list of changes", None
            )
        for j, change in enumerate(changes):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict) or change.get("field") != "messages":
                other_changes += 1
                continue
            loc = ["entry", i, "changes", j, "value"]
            recipient = _business_number(value.get("metadata"), loc)
            contacts = value.get("contacts") if isinstance(value.get("contacts"), list) else []
            for k, message in enumerate(_list(value, "messages", loc)):
                messages.append(_row(message, recipient, contacts, [*loc, "messages", k]))
            for status in _list(value, "statuses", loc):
                if isinstance(status, dict) and isinstance(status.get("id"), str):
                    status_ids.append(status["id"])
    return Notification(messages, status_ids, other_changes)


def _list(value, name, loc):
    items = value.get(name, [])
    if not isinstance(items, list):
        raise InvalidNotification([*loc, name], "Should be a list", None)
    return items


def _business_number(metadata, loc):
    number = metadata.get("display_phone_number") if isinstance(metadata, dict) else None
    digits = (
        "".join(c for c in number if c.isascii() and c.isdigit()) if isinstance(number, str) else ""
    )
    if not digits:
        raise InvalidNotification(
            [*loc, "metadata", "display_phone_number"], "Field required: a phone number", number
        )
    return "+" + digits


def _row(message, recipient, contacts, loc):
    """A message object of the notification as a row to store."""
    if not isinstance(message, dict):
        raise InvalidNotification(loc, "Should be a message object", None)
    message_id = message.get("id")
    if not (isinstance(message_id, str) and 1 <= len(message_id) <= MESSAGE_ID_MAX):
        raise InvalidNotification([*loc, "id"], "Field required: a message ID", message_id)
    ts = _timestamp(message.get("timestamp"), [*loc, "timestamp"])
    kind = message.get("type") if isinstance(message.get("type"), str) else "unknown"
    row = {
        "message_id": message_id,
        "from_msisdn": _sender(message, contacts, [*loc, "from"]),
        "to_msisdn": recipient,
        "ts": ts,
        "ts_key": timestamps.message_ts_key(ts),
        "text": _text(message, kind),
        "provider": PROVIDER,
        "type": kind,
        # ASCII JSON: whatever the object holds (lone surrogates included) can be stored.
        "raw": json.dumps(message),
    }
    if not (storable(message_id) and storable(row["from_msisdn"])):
        raise InvalidNotification(loc, "IDs cannot hold NUL or lone surrogates", None)
    if row["text"] is not None and not storable(row["text"], nul=True):
        raise InvalidNotification(loc, "Text should be a string without lone surrogates", None)
    return row


def _timestamp(value, loc):
    """Meta's Unix seconds (a string of digits) as the contract's UTC ``YYYY-MM-DDTHH:MM:SSZ``."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 11:
        try:
            return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, ValueError, OSError):
            pass
    raise InvalidNotification(loc, "Field required: Unix seconds as a string of digits", value)


def _sender(message, contacts, loc):
    """``+`` and the sender's phone number; without one, the business-scoped user ID as given."""
    number = message.get("from")
    if isinstance(number, str) and number.isascii() and number.isdigit():
        return "+" + number
    user_id = message.get("from_user_id")
    if not isinstance(user_id, str) and len(contacts) == 1 and isinstance(contacts[0], dict):
        user_id = contacts[0].get("user_id")
    if isinstance(user_id, str) and user_id:
        return user_id
    raise InvalidNotification(loc, "Field required: a phone number or a user ID", number)


def _text(message, kind):
    """The words a person wrote, by message type; None where there are none."""
    content = message.get(kind)
    if not isinstance(content, dict):
        return None
    if kind == "text":
        value = content.get("body")
    elif kind in CAPTIONED:
        value = content.get("caption")
    elif kind == "reaction":
        value = content.get("emoji")
    elif kind == "button":
        value = content.get("text")
    elif kind == "interactive":
        reply = content.get(content.get("type")) if isinstance(content.get("type"), str) else None
        value = reply.get("title") if isinstance(reply, dict) else None
    else:
        value = None
    return value if isinstance(value, str) else None
