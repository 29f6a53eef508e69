"""Marshmallow schemas for what clients send, and their errors in FastAPI's 422 shape."""

import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validates

from . import timestamps

MSISDN = re.compile(r"\+[0-9]{1,15}")
MESSAGE_ID_MAX = 256
TEXT_MAX = 4096

# Each message a field can fail with, and the Pydantic error type it stands for.
REQUIRED = "Field required"
NOT_NULL = "Input should not be null"
NOT_STRING = "Input should be a valid string"
NOT_OBJECT = "Input should be a valid dictionary or object"
INVALID_JSON = "Input should be valid JSON encoded as UTF-8"
NOT_INTEGER = "Input should be a valid integer"
ERROR_TYPES = {
    REQUIRED: "missing",
    NOT_STRING: "string_type",
    NOT_NULL: "string_type",
    NOT_OBJECT: "model_attributes_type",
    INVALID_JSON: "json_invalid",
    NOT_INTEGER: "int_parsing",
}


class Text(fields.String):
    """A string that can be stored as UTF-8: lone surrogates (legal in JSON escapes) are refused."""

    default_error_messages = {
        "required": REQUIRED,
        "null": NOT_NULL,
        "invalid": NOT_STRING,
        "invalid_utf8": NOT_STRING,
        "surrogate": "Input should be a string without lone surrogates",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise self.make_error("surrogate") from exc
        return value


class WebhookMessageSchema(Schema):
    """The body of POST /webhook. Unknown fields are ignored."""

    class Meta:
        unknown = EXCLUDE

    message_id = Text(required=True)
    from_msisdn = Text(required=True, data_key="from")
    to_msisdn = Text(required=True, data_key="to")
    ts = Text(required=True)
    text = Text(load_default=None, allow_none=True)

    @pre_load
    def require_object(self, data, **kwargs):
        if not isinstance(data, dict):
            raise ValidationError(NOT_OBJECT, field_name="_schema")
        return data

    @validates("message_id")
    def check_message_id(self, value, **kwargs):
        if not 1 <= len(value) <= MESSAGE_ID_MAX:
            raise ValidationError(f"String should have 1 to {MESSAGE_ID_MAX} characters")

    @validates("from_msisdn", "to_msisdn")
    def check_msisdn(self, value, **kwargs):
        if not MSISDN.fullmatch(value):
            raise ValidationError("Value should be '+' followed by 1 to 15 digits (E.164)")

    @validates("ts")
    def check_ts(self, value, **kwargs):
        if timestamps.message_ts_key(value) is None:
            raise ValidationError(
                "Value should be an ISO-8601 UTC date-time with a 'Z' suffix, "
                "e.g. 2025-01-15T10:00:00Z, and a real calendar date and time"
            )

    @validates("text")
    def check_text(self, value, **kwargs):
        if value is not None and len(value) > TEXT_MAX:
            raise ValidationError(f"String should have at most {TEXT_MAX} characters")

    @post_load
    def add_sort_key(self, data, **kwargs):
        data["ts_key"] = timestamps.message_ts_key(data["ts"])
        return data


class QueryInteger(fields.Integer):
    """A non-negative integer written in ASCII digits ('1.5', '1e3', '٣' and '1_000' are refused)."""

    default_error_messages = {"invalid": NOT_INTEGER}

    def _deserialize(self, value, attr, data, **kwargs):
        if not (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18):
            raise self.make_error("invalid")
        return int(value)


class MessagesQuerySchema(Schema):
    """The query string of GET /messages. Unknown parameters are ignored."""

    class Meta:
        unknown = EXCLUDE

    limit = QueryInteger(load_default=50)
    offset = QueryInteger(load_default=0)
    from_msisdn = fields.String(data_key="from", load_default=None)
    since = fields.String(load_default=None)
    q = fields.String(load_default=None)
    cursor = fields.String(load_default=None)

    @validates("limit")
    def check_limit(self, value, **kwargs):
        if not 1 <= value <= 100:
            raise ValidationError("Input should be between 1 and 100")

    @pre_load
    def restore_plus(self, data, **kwargs):
        # A bare '+' in a URL query means a space: '?from=+9198...' arrives as ' 9198...'.
        sender = data.get("from")
        if isinstance(sender, str) and sender.startswith(" "):
            data = dict(data)
            data["from"] = "+" + sender[1:]
        return data

    @validates("from_msisdn")
    def check_from(self, value, **kwargs):
        if value is not None and not MSISDN.fullmatch(value):
            raise ValidationError("Value should be '+' followed by 1 to 15 digits (E.164)")

    @validates("since")
    def check_since(self, value, **kwargs):
        if value is not None and timestamps.query_ts_key(value) is None:
            raise ValidationError("Value should be an ISO-8601 date or date-time")

    @post_load
    def add_since_key(self, data, **kwargs):
        since = data.get("since")
        data["since_key"] = timestamps.query_ts_key(since) if since is not None else None
        if data.get("q") == "":
            data["q"] = None
        return data


def error_detail(messages, location, data):
    """Flatten marshmallow's error dict into FastAPI's list of ``{type, loc, msg, input}``."""
    detail = []
    for field, field_messages in messages.items():
        if field == "_schema":
            loc, value = [location], data
        else:
            loc = [location, field]
            value = data.get(field) if isinstance(data, dict) else None
        if isinstance(field_messages, dict):  # never nested here, but don't lose anything if so
            field_messages = [str(field_messages)]
        for msg in field_messages:
            detail.append(
                {"type": ERROR_TYPES.get(msg, "value_error"), "loc": loc, "msg": msg, "input": value}
            )
    return detail
