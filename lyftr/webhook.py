"""POST /webhook: size limit, signature, validation, then insert-once, in the contract's order."""

import json

from flask import Blueprint, current_app, request
from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError

from . import metrics, schemas, signing, storage
from .errors import error_response, unavailable
from .request_log import annotate

bp = Blueprint("webhook", __name__)

_message_schema = schemas.WebhookMessageSchema()


def _outcome(result, **fields):
    metrics.count_webhook(result)
    annotate(result=result, **fields)


@bp.post("/webhook")
def receive():
    secrets = {
        "current": current_app.config["WEBHOOK_SECRET"],
        "previous": current_app.config["WEBHOOK_SECRET_PREVIOUS"],
    }
    body = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413, see on_payload_too_large
    if not secrets["current"]:
        _outcome("not_configured", dup=False)
        return unavailable("webhook secret not configured")
    key = signing.verify(secrets, body, request.headers.get("X-Signature"))
    if key is None:
        _outcome("invalid_signature", dup=False)
        return error_response(401, "invalid signature")

    try:
        payload = json.loads(body.decode("utf-8"))
    except ValueError:  # also invalid UTF-8: UnicodeDecodeError is a ValueError
        _outcome("validation_error", dup=False, key=key)
        detail = [{"type": "json_invalid", "loc": ["body"], "msg": schemas.INVALID_JSON, "input": None}]
        return error_response(422, detail)
    try:
        message = _message_schema.load(payload)
    except ValidationError as exc:
        message_id = payload.get("message_id") if isinstance(payload, dict) else None
        _outcome("validation_error", dup=False, key=key,
                 **({"message_id": message_id} if isinstance(message_id, str) else {}))
        return error_response(422, schemas.error_detail(exc.messages, "body", payload))

    try:
        created = storage.insert_message(message)
    except OperationalError:
        _outcome("unavailable", message_id=message["message_id"], dup=False, key=key)
        raise
    _outcome("created" if created else "duplicate", message_id=message["message_id"],
             dup=not created, key=key)
    return {"status": "ok"}


@bp.errorhandler(413)
def on_payload_too_large(exc):
    _outcome("payload_too_large", dup=False)
    return error_response(413, f"request body larger than {request.max_content_length} bytes")
