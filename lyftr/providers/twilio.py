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
from lyftr.providers import inbound, signing
from lyftr.providers.payload_schemas import TWILIO_SCHEMAS
from lyftr.store import database_errors
from lyftr.store.folding import storable
from lyftr.timestamps import now_iso

bp = Blueprint("twilio", __name__, url_prefix="/webhooks")
PROVIDER = "twilio"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
WHATSAPP_PREFIX = "whatsapp:"


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
        "content": {"application/x-www-form-urlencoded": {"schema": schema_ref("TwilioMessage")}},
    },
    "responses": {
        "200": text_response(
            "text/xml",
            "Stored, or a duplicate of a stored MessageSid: an empty TwiML document.",
            example=EMPTY_TWIML,
        ),
        "401": json_response(
            ErrorSchema, "X-Twilio-Signature missing or wrong: 'invalid signature'."
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


@bp.post("/twilio")
@operation(RECEIVE_OPERATION, components=TWILIO_SCHEMAS)
def receive_message():
    token = current_app.config["TWILIO_AUTH_TOKEN"]
    if not token:
        _outcome("not_configured")
        return unavailable("Twilio auth token not configured")
    form = request.form
    if not signing.verify_twilio(
        token, _signed_url(), form, request.headers.get("X-Twilio-Signature")
    ):
        _outcome("invalid_signature")
        return error_response(401, "invalid signature")

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
    if detail:
        _outcome("validation_error")
        return error_response(422, detail)

    ts = now_iso()  # Twilio sends no time: the message's time is its arrival
    message = {
        "message_id": sid,
        "from_msisdn": form["From"].removeprefix(WHATSAPP_PREFIX),
        "to_msisdn": form["To"].removeprefix(WHATSAPP_PREFIX),
        "ts": ts,
        "ts_key": timestamps.message_ts_key(ts),
        "text": form.get("Body"),
        "provider": PROVIDER,
        "type": "text" if form.get("NumMedia", "0") in ("", "0") else "media",
        # The form as received; a field sent more than once keeps every value.
        "raw": json.dumps({k: v[0] if len(v) == 1 else v for k, v in form.lists()}),
    }
    try:
        created = store.insert_message(message)
    except Exception as exc:
        result = "unavailable" if database_errors.is_unavailable(exc) else "error"
        _outcome(result, message_id=sid)
        raise
    metrics.count_stored(PROVIDER, int(created))
    _outcome("accepted", message_id=sid, dup=not created)
    response = Response(EMPTY_TWIML)
    response.headers["Content-Type"] = "text/xml"
    return response


@bp.errorhandler(413)
def on_payload_too_large(exc):
    _outcome("payload_too_large")
    return error_response(413, f"request body larger than {request.max_content_length} bytes")
