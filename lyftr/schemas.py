"""Marshmallow schemas for what clients send, and their errors in FastAPI's 422 shape."""

import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validates

from . import timestamps

MSISDN = re.compile(r"\+[0-9]{1,15}")
MESSAGE_ID_MAX = 256
TEXT_MAX = 4096

# OpenAPI descriptions of the checks made in code (validators below), for lyftr.openapi.
MSISDN_DOC = {
    "pattern": r"^\+[0-9]{1,15}$",
    "description": "E.164-like: '+' then 1 to 15 ASCII digits.",
    "example": "+919876543210",
}
MESSAGE_TS_DOC = {
    # Years 0001-9999, months 01-12, days 01-31, hours 00-23: the pattern cannot rule out Feb 30.
    "pattern": r"^([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)-(0[1-9]|1[0-2])-"
    r"(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?Z$",
    "description": "ISO-8601 UTC date-time with a 'Z' suffix and a real calendar date and time "
    "(2025-02-30T00:00:00Z is refused); fractional seconds allowed. Returned exactly as received.",
    "example": "2025-01-15T10:00:00Z",
}

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

    # The metadata only documents the checks below in the OpenAPI document (lyftr.openapi).
    message_id = Text(required=True, metadata={"minLength": 1, "maxLength": MESSAGE_ID_MAX})
    from_msisdn = Text(required=True, data_key="from", metadata=MSISDN_DOC)
    to_msisdn = Text(required=True, data_key="to", metadata=MSISDN_DOC)
    ts = Text(required=True, metadata=MESSAGE_TS_DOC)
    text = Text(load_default=None, allow_none=True, metadata={"maxLength": TEXT_MAX})

    @pre_load
    def require_object(self, data, **kwargs):
        if not isinstance(data, dict):
            raise ValidationError(NOT_OBJECT, field_name="_schema")
        return data

    @validates("message_id")
    def check_message_id(self, value, **kwargs):
        if not 1 <= len(value) <= MESSAGE_ID_MAX:
            raise ValidationError(f"String should have 1 to {MESSAGE_ID_MAX} characters")
        # An identifier with NUL is nobody's real ID, and PostgreSQL cannot store one: refused on
        # every backend alike. (Message text may hold NUL: it is stored and searched exactly.)
        if "\x00" in value:
            raise ValidationError("String should not contain NUL characters")

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


QUERY_INTEGER_DIGITS = 18
QUERY_INTEGER_MAX = 10**QUERY_INTEGER_DIGITS - 1


class QueryInteger(fields.Integer):
    """A non-negative integer written in ASCII digits ('1.5', '1e3', '٣' and '1_000' are refused)."""

    default_error_messages = {"invalid": NOT_INTEGER}

    def _deserialize(self, value, attr, data, **kwargs):
        if not (isinstance(value, str) and value.isascii() and value.isdigit()
                and len(value) <= QUERY_INTEGER_DIGITS):
            raise self.make_error("invalid")
        return int(value)


class MessagesQuerySchema(Schema):
    """The query string of GET /messages. Unknown parameters are ignored."""

    class Meta:
        unknown = EXCLUDE

    limit = QueryInteger(load_default=50, metadata={"minimum": 1, "maximum": 100})
    offset = QueryInteger(load_default=0, metadata={"minimum": 0, "maximum": QUERY_INTEGER_MAX})
    from_msisdn = fields.String(data_key="from", load_default=None, metadata={
        **MSISDN_DOC,
        "description": "Exact sender, '+' then 1 to 15 digits. An unencoded '+' (read as a space "
        "in a query string) is taken as '+'.",
    })
    since = fields.String(load_default=None, metadata={
        "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
        r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?)?$",
        "description": "Only messages with ts >= since: an ISO-8601 date, or a date-time in UTC "
        "('Z'), with an offset, or naive (taken as UTC).",
        "example": "2025-01-15T00:00:00Z",
    })
    q = fields.String(load_default=None, metadata={
        "description": "Case-insensitive substring of text; '%' and '_' are literal characters.",
    })
    cursor = fields.String(load_default=None, metadata={
        "description": "The next_cursor of a previous page: continues after its last message "
        "(keyset paging, stable under concurrent inserts).",
    })

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


# --- Responses: what the service answers, for the OpenAPI document (dump-only) ------------------
# Unknown keys are refused (marshmallow's default), so each is documented with
# additionalProperties: false and any undocumented key in a response fails the conformance tests.


class StatusOkSchema(Schema):
    """200 of POST /webhook, for a first delivery and a duplicate alike."""

    status = fields.String(required=True, metadata={"enum": ["ok"]})


class ErrorSchema(Schema):
    """Every error other than a validation error: a human-readable ``detail``."""

    detail = fields.String(required=True, metadata={"example": "invalid signature"})


class InternalErrorSchema(Schema):
    """500: an unexpected error; ``request_id`` finds its log line (never a stack trace)."""

    detail = fields.String(required=True, metadata={"example": "internal error"})
    request_id = fields.String(required=True, allow_none=True)


class ValidationErrorEntrySchema(Schema):
    """One problem, as FastAPI/Pydantic reports it."""

    type = fields.String(required=True, metadata={"example": "value_error"})
    loc = fields.List(
        fields.Raw(metadata={"anyOf": [{"type": "string"}, {"type": "integer"}]}),
        required=True,
        metadata={"description": "Where: 'body' or 'query', then the field name.",
                  "example": ["body", "from"]},
    )
    msg = fields.String(required=True)
    input = fields.Raw(
        required=True, allow_none=True, metadata={"description": "The offending value (any JSON)."}
    )


class ValidationErrorSchema(Schema):
    """422: one entry per problem."""

    detail = fields.List(fields.Nested(ValidationErrorEntrySchema), required=True)


class MessageSchema(Schema):
    """A stored message as GET /messages returns it; ``ts`` exactly as it was received."""

    message_id = fields.String(required=True)
    from_msisdn = fields.String(required=True, data_key="from")
    to_msisdn = fields.String(required=True, data_key="to")
    ts = fields.String(required=True)
    text = fields.String(required=True, allow_none=True)


class MessagesPageSchema(Schema):
    """200 of GET /messages."""

    data = fields.List(fields.Nested(MessageSchema), required=True)
    total = fields.Integer(
        required=True, metadata={"minimum": 0, "description": "Rows matching the filters, ignoring paging."}
    )
    limit = fields.Integer(required=True, metadata={"minimum": 1, "maximum": 100})
    offset = fields.Integer(required=True, metadata={"minimum": 0})
    next_cursor = fields.String(
        required=True, allow_none=True,
        metadata={"description": "Pass as ?cursor= for the next page; null on the last page."},
    )


class SenderCountSchema(Schema):
    from_msisdn = fields.String(required=True, data_key="from")
    count = fields.Integer(required=True, metadata={"minimum": 1})


class StatsSchema(Schema):
    """200 of GET /stats."""

    total_messages = fields.Integer(required=True, metadata={"minimum": 0})
    senders_count = fields.Integer(required=True, metadata={"minimum": 0})
    messages_per_sender = fields.List(
        fields.Nested(SenderCountSchema), required=True,
        metadata={"maxItems": 10, "description": "Top 10 senders by count, descending; ties by 'from'."},
    )
    first_message_ts = fields.String(required=True, allow_none=True)
    last_message_ts = fields.String(required=True, allow_none=True)


class LiveSchema(Schema):
    """200 of GET /health/live."""

    status = fields.String(required=True, metadata={"enum": ["ok"]})


def _checks():
    return fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "Each check ('database', 'webhook_secret'): 'ok' or why it failed.",
                  "example": {"webhook_secret": "ok", "database": "ok"}},
    )


class ReadySchema(Schema):
    """200 of GET /health/ready."""

    status = fields.String(required=True, metadata={"enum": ["ready"]})
    checks = _checks()


class NotReadySchema(Schema):
    """503 of GET /health/ready: which check failed."""

    status = fields.String(required=True, metadata={"enum": ["unavailable"]})
    detail = fields.String(required=True, metadata={"example": "not ready: database"})
    checks = _checks()
