"""POST /webhook: size limit, signature, validation, then insert-once, in the contract's order.

The signature is the contract's ``X-Signature``, or, when ``STANDARD_WEBHOOKS_SECRET`` is set, a
Standard Webhooks signature (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
"""

from flask import Blueprint, current_app, request
from marshmallow import ValidationError

from . import database_errors, metrics, schemas, signing, storage
from .errors import error_response, unavailable, validation_detail
from .inbound import parse_json, read_body
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
        created = storage.insert_message(message)
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
