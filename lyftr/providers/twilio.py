"""Twilio delivers SMS and WhatsApp messages here: ``POST /webhooks/twilio``, a signed form.

The signature (``X-Twilio-Signature``) covers the URL Twilio called and every form field. Behind a
proxy the URL this app sees is not that one, so it is ``PUBLIC_BASE_URL`` plus the path and query
string. The answer is an empty TwiML document: stored, and no reply sent.
"""

import json

from flask import Blueprint, Response, current_app, request

from lyftr import metrics, store, timestamps
from lyftr.api.errors import error_response, unavailable
from lyftr.api.openapi import operation
from lyftr.api.response_schemas import (
    BODY_BUSY,
    BODY_TOO_SLOW,
    INTERNAL_ERROR,
    ErrorSchema,
    ValidationErrorSchema,
    json_response,
    schema_ref,
    text_response,
    unavailable_response,
)
from lyftr.api.schemas import MESSAGE_ID_MAX
from lyftr.config import MAX_BODY_BYTES
from lyftr.providers import inbound, signing, twilio_record
from lyftr.providers.payload_schemas import TWILIO_SCHEMAS
from lyftr.providers.whatsapp_record import dumps
from lyftr.store import database_errors
from lyftr.store.folding import storable
from lyftr.timestamps import now_iso

bp = Blueprint("twilio", __name__, url_prefix="/webhooks")
PROVIDER = "twilio"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _outcome(result, **fields):
    inbound.outcome(PROVIDER, result, **fields)


def _invalid(name, msg):
    return {"type": "value_error", "loc": ["body", name], "msg": msg, "input": None}


def _signed_url():
    base = current_app.config["PUBLIC_BASE_URL"] or request.host_url.rstrip("/")
    query = request.query_string.decode("latin-1")
    return base + request.path + (f"?{query}" if query else "")


RECEIVE_OPERATION = {
    "operationId": "receiveTwilioMessage",
    "summary": "An incoming SMS or WhatsApp message from Twilio, stored exactly once.",
    "description": (
        "Checks, in order: body size (413), X-Twilio-Signature (401; nothing is stored; "
        "TWILIO_AUTH_TOKEN_PREVIOUS is accepted too while set), then the form (422). A "
        "MessageSid already stored is a duplicate: 200, nothing changes. A status callback "
        "(MessageStatus or SmsStatus, no Body) is stored as a status event (GET /statuses), "
        "once per MessageSid and status. The path may end with '/'. The answer is an empty "
        "TwiML document: no reply is sent to the user. Every refusal is kept for GET "
        "/rejections."
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
        "content": {"application/x-www-form-urlencoded": {"schema": schema_ref("TwilioMessage")}},
    },
    "responses": {
        "200": text_response(
            "text/xml",
            "Stored, or a duplicate of a stored MessageSid: an empty TwiML document.",
            example=EMPTY_TWIML,
        ),
        "401": json_response(
            ErrorSchema,
            "X-Twilio-Signature missing or wrong: 'invalid signature (checked against URL)', "
            "URL being PUBLIC_BASE_URL (or the URL the request arrived at) + the path and query.",
        ),
        "408": BODY_TOO_SLOW,
        "413": json_response(ErrorSchema, f"Body larger than {MAX_BODY_BYTES} bytes."),
        "422": json_response(
            ValidationErrorSchema,
            "Signed, but MessageSid, From or To missing, or MessageSid invalid; nothing is stored.",
        ),
        "500": INTERNAL_ERROR,
        "503": unavailable_response(
            "Database unavailable, or TWILIO_AUTH_TOKEN not configured." + BODY_BUSY
        ),
    },
}


@bp.post("/twilio", strict_slashes=False)  # a URL configured with a trailing slash works too
@operation(RECEIVE_OPERATION, components=TWILIO_SCHEMAS)
def receive_message():
    body = request.get_data()  # kept: the form is parsed from it, a rejection hashes it
    tokens = (
        current_app.config["TWILIO_AUTH_TOKEN"],
        current_app.config["TWILIO_AUTH_TOKEN_PREVIOUS"],
    )
    if not tokens[0]:
        _outcome("not_configured")
        inbound.reject(PROVIDER, "not configured: TWILIO_AUTH_TOKEN", body)
        return unavailable("Twilio auth token not configured: set TWILIO_AUTH_TOKEN")
    form, url = request.form, _signed_url()
    signature = request.headers.get("X-Twilio-Signature")
    # The previous token too, while set: Twilio's secondary token during a rotation.
    if not any(signing.verify_twilio(token, url, form, signature) for token in tokens if token):
        _outcome("invalid_signature")
        inbound.reject(PROVIDER, "invalid signature", body, url=url)
        # The URL is the usual culprit (a proxy, PUBLIC_BASE_URL unset or not the one in Twilio):
        # say which one was checked.
        return error_response(401, f"invalid signature (checked against {url})")

    detail = _problems(form)
    if detail:
        _outcome("validation_error")
        inbound.reject(PROVIDER, detail, body, authentic=True, url=url)
        return error_response(422, detail)

    sid = form["MessageSid"]
    # The form as received; a field sent more than once keeps every value.
    raw = {k: v[0] if len(v) == 1 else v for k, v in form.lists()}
    try:
        if twilio_record.is_status_callback(form):
            created = store.insert_statuses([_status(raw)])
            result = "status"
        else:
            created = store.insert_message(_message(raw))
            metrics.count_stored(PROVIDER, int(created))
            result = "accepted"
    except Exception as exc:
        result = "unavailable" if database_errors.is_unavailable(exc) else "error"
        _outcome(result, message_id=sid)
        raise
    _outcome(result, message_id=sid, dup=not created)
    response = Response(EMPTY_TWIML)
    response.headers["Content-Type"] = "text/xml"
    return response


def _problems(form):
    """The 422 detail of a signed form that cannot be stored, or []."""
    detail = [
        {"type": "missing", "loc": ["body", name], "msg": "Field required", "input": None}
        for name in ("MessageSid", "From", "To")
        if not form.get(name)
    ]
    sid = form.get("MessageSid", "")
    if not detail and len(sid) > MESSAGE_ID_MAX:
        detail = [_invalid("MessageSid", f"String should have at most {MESSAGE_ID_MAX} characters")]
    # IDs cannot hold NUL or lone surrogates on every backend; a text may hold NUL.
    detail += [
        _invalid(name, "Value should not contain NUL characters or lone surrogates")
        for name in ("MessageSid", "From", "To")
        if not detail and not storable(form[name])
    ]
    if not detail and not storable(form.get("Body") or "", nul=True):
        detail = [_invalid("Body", "Value should be a string without lone surrogates")]
    return detail


def _message(raw):
    ts = now_iso()  # Twilio sends no time: the message's time is its arrival
    found = twilio_record.fields(raw)
    return {
        "message_id": raw["MessageSid"],
        "from_msisdn": twilio_record.address(raw["From"]),
        "to_msisdn": twilio_record.address(raw["To"]),
        "ts": ts,
        "ts_key": timestamps.message_ts_key(ts),
        "text": found["text"],
        "provider": PROVIDER,
        # A MessageType no backend can store (NUL) is no type Twilio has: raw keeps it.
        "type": found["type"] if storable(found["type"]) else "unknown",
        "raw": json.dumps(raw),
        "channel": found["channel"],
        "sender_name": _storable_or_none(found["sender_name"]),
        "media": dumps(found["media"]),
        "location": dumps(found["location"]),
        "reply_to": _storable_or_none(found["reply_to"]),
    }


def _status(raw):
    """A status callback as a status event (its time is its arrival: Twilio sends none)."""
    ts = now_iso()
    status = raw.get("MessageStatus") or raw.get("SmsStatus")
    errors = {k: raw[k] for k in ("ErrorCode", "ErrorMessage") if raw.get(k)}
    return {
        "provider": PROVIDER,
        "message_id": raw["MessageSid"],
        "status": status if storable(status) else "unknown",
        "ts": ts,
        "ts_key": timestamps.message_ts_key(ts),
        "recipient": twilio_record.address(raw["To"]),
        "errors": json.dumps([errors]) if errors else None,
        "raw": json.dumps(raw),
        "received_at": ts,
    }


def _storable_or_none(value):
    return value if isinstance(value, str) and storable(value) else None


@bp.errorhandler(413)
def on_payload_too_large(exc):
    _outcome("payload_too_large")
    inbound.reject(PROVIDER, "payload too large", None)
    return error_response(413, f"request body larger than {request.max_content_length} bytes")
