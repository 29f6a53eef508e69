"""POST /webhook: size limit, signature, validation, then insert-once, in the contract's order."""

import json
import math

from flask import Blueprint, current_app, request
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from . import metrics, schemas, signing, storage
from .errors import error_response, is_database_unavailable, unavailable
from .request_log import annotate

bp = Blueprint("webhook", __name__)

_message_schema = schemas.WebhookMessageSchema()


def _not_json(constant):
    # json.loads reads NaN, Infinity and -Infinity, which RFC 8259 JSON does not have.
    raise ValueError(f"{constant} is not valid JSON")


def _finite_float(literal):
    # 1e999 would become inf, which cannot be echoed back in a 422 as JSON.
    value = float(literal)
    if math.isinf(value):
        raise ValueError(f"{literal} is out of range")
    return value


def _read_body():
    """The raw body; over MAX_CONTENT_LENGTH: 413, see on_payload_too_large.

    werkzeug refuses a too long Content-Length itself. When the server terminates the input
    (``wsgi.input_terminated``, as Gunicorn does; the case of chunked bodies) it stops reading at
    the limit without a word: a byte left past the limit means the body was too large.
    """
    body = request.get_data(cache=False)
    environ = request.environ
    if "wsgi.input_terminated" in environ and len(body) >= request.max_content_length:
        if environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return body


def _outcome(result, **fields):
    metrics.count_webhook(result)
    annotate(result=result, **fields)


@bp.post("/webhook")
def receive():
    secrets = {
        "current": current_app.config["WEBHOOK_SECRET"],
        "previous": current_app.config["WEBHOOK_SECRET_PREVIOUS"],
    }
    body = _read_body()
    if not secrets["current"]:
        _outcome("not_configured", dup=False)
        return unavailable("webhook secret not configured")
    key = signing.verify(secrets, body, request.headers.get("X-Signature"))
    if key is None:
        _outcome("invalid_signature", dup=False)
        return error_response(401, "invalid signature")

    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_not_json, parse_float=_finite_float)
    except (ValueError, RecursionError):  # also invalid UTF-8 (a ValueError) and too deep nesting
        _outcome("validation_error", dup=False, key=key)
        detail = [{"type": "json_invalid", "loc": ["body"], "msg": schemas.INVALID_JSON, "input": None}]
        return error_response(422, detail)
    try:
        message = _message_schema.load(payload)
    except ValidationError as exc:
        message_id = payload.get("message_id") if isinstance(payload, dict) else None
        _outcome("validation_error", dup=False, key=key,
                 **({"message_id": message_id} if isinstance(message_id, str) else {}))
        detail = schemas.error_detail(exc.messages, "body", payload)
        try:
            return error_response(422, detail)
        except RecursionError:  # an input nested too deeply to echo back: leave it out
            return error_response(422, [{**entry, "input": None} for entry in detail])

    try:
        created = storage.insert_message(message)
    except Exception as exc:
        result = "unavailable" if is_database_unavailable(exc) else "error"
        _outcome(result, message_id=message["message_id"], dup=False, key=key)
        raise
    _outcome("created" if created else "duplicate", message_id=message["message_id"],
             dup=not created, key=key)
    return {"status": "ok"}


@bp.errorhandler(413)
def on_payload_too_large(exc):
    _outcome("payload_too_large", dup=False)
    return error_response(413, f"request body larger than {request.max_content_length} bytes")
