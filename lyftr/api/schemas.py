"""Marshmallow schemas for what clients send: what is valid, and what each field says when not.

``errors.validation_detail`` turns their errors into the 422 body.
"""

import json
import re
from datetime import UTC, datetime

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates,
    validates_schema,
)

from lyftr import timestamps

MSISDN = re.compile(r"\+[0-9]{1,15}")
# WhatsApp's business-scoped user ID, a sender's ID where no phone number is shared: the country
# code, an optional ENT (a parent ID), and an alphanumeric identifier ("US.13491208655302741918").
USER_ID = re.compile(r"[A-Z]{2}(\.ENT)?\.[A-Za-z0-9]{1,64}")
# A Twilio sender on another channel, kept with its channel's prefix ("messenger:1234567890").
CHANNEL_ID = re.compile(r"[a-z]{2,20}:[!-~]{1,256}")
MESSAGE_ID_MAX = 256
TEXT_MAX = 4096

# OpenAPI descriptions of the checks made in code (validators below), for api.openapi.
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

    # The metadata only documents the checks below in the OpenAPI document (api.openapi).
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
_INTEGER = re.compile(r"-?[0-9]+")


class QueryInteger(fields.Integer):
    """An integer from ``minimum`` (>= 0) to ``maximum`` in ASCII digits ('1.5', '1e3', '٣' and
    '1_000' are not integers; '-1' is one, outside the range)."""

    default_error_messages = {
        "invalid": NOT_INTEGER,
        "range": "Input should be between {minimum} and {maximum}",
    }

    def __init__(self, *, minimum, maximum, **kwargs):
        metadata = {"minimum": minimum, "maximum": maximum, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)
        self.minimum, self.maximum = minimum, maximum

    def _deserialize(self, value, attr, data, **kwargs):
        if not (isinstance(value, str) and _INTEGER.fullmatch(value)):
            raise self.make_error("invalid")
        negative, digits = value.startswith("-"), value.lstrip("-").lstrip("0")
        # int() of the digits alone: leading zeros are not counted against Python's limit of
        # 4,300 digits per conversion (a ValueError, which would be a 500).
        if (
            negative
            or len(digits) > QUERY_INTEGER_DIGITS
            or not self.minimum <= int(digits or "0") <= self.maximum
        ):
            raise self.make_error("range", minimum=self.minimum, maximum=self.maximum)
        return int(digits or "0")


# A search term is one FTS phrase (~4 trigrams per character): longer ones cost seconds of a
# worker that cannot serve anything else meanwhile, and find nothing a 256-character one misses.
Q_MAX = 256
Q_TOO_LONG = f"String should have at most {Q_MAX} characters"


class MessagesQuerySchema(Schema):
    """The query string of GET /messages. Unknown parameters are ignored."""

    class Meta:
        unknown = EXCLUDE

    limit = QueryInteger(load_default=50, minimum=1, maximum=100)
    offset = QueryInteger(load_default=0, minimum=0, maximum=QUERY_INTEGER_MAX)
    from_msisdn = fields.String(
        data_key="from",
        load_default=None,
        metadata={
            **MSISDN_DOC,
            "description": "Exact sender, '+' then 1 to 15 digits (or a stored sender ID: "
            "'US.…', 'messenger:…'). An unencoded '+' (read as a "
            "space in a query string) is taken as '+'.",
        },
    )
    since = fields.String(
        load_default=None,
        metadata={
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
            r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?)?$",
            "description": "Only messages with ts >= since: an ISO-8601 date, or a date-time in "
            "UTC ('Z'), with an offset, or naive (taken as UTC).",
            "example": "2025-01-15T00:00:00Z",
        },
    )
    q = fields.String(
        load_default=None,
        metadata={
            "description": "Case-insensitive substring of text; '%' and '_' are literal. "
            f"At most {Q_MAX} characters (422 beyond).",
        },
    )
    cursor = fields.String(
        load_default=None,
        metadata={
            "description": "The next_cursor of a previous page: continues after its last message "
            "(keyset paging, stable under concurrent inserts). At most 1024 characters "
            "(422 beyond).",
        },
    )

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
        ids = (MSISDN, USER_ID, CHANNEL_ID)
        if value is not None and not any(pattern.fullmatch(value) for pattern in ids):
            raise ValidationError(
                "Value should be '+' followed by 1 to 15 digits (E.164), a WhatsApp user ID "
                "such as US.13491208655302741918, or a channel's sender ID such as "
                "messenger:1234567890"
            )

    @validates("since")
    def check_since(self, value, **kwargs):
        if value is not None and timestamps.query_ts_key(value) is None:
            raise ValidationError("Value should be an ISO-8601 date or date-time")

    @validates("q")
    def check_q(self, value, **kwargs):
        if value is not None and len(value) > Q_MAX:
            raise ValidationError(Q_TOO_LONG)

    @post_load
    def add_since_key(self, data, **kwargs):
        since = data.get("since")
        data["since_key"] = timestamps.query_ts_key(since) if since is not None else None
        if data.get("q") == "":
            data["q"] = None
        return data


FEED_LIMIT_MAX = 1000
FEED_WAIT_MAX_S = 30


class FeedQuerySchema(Schema):
    """The query string of GET /feed. Unknown parameters are ignored."""

    class Meta:
        unknown = EXCLUDE

    after = QueryInteger(
        load_default=0,
        minimum=0,
        maximum=QUERY_INTEGER_MAX,
        metadata={"description": "The last seq the consumer processed (its next_after)."},
    )
    limit = QueryInteger(load_default=100, minimum=1, maximum=FEED_LIMIT_MAX)
    wait = QueryInteger(
        load_default=0,
        minimum=0,
        maximum=FEED_WAIT_MAX_S,
        metadata={"description": "Seconds to wait for a message when there is none after."},
    )


PROVIDERS = ("webhook", "whatsapp", "twilio")


class ImportedMessageSchema(WebhookMessageSchema):
    """A line of ``flask import``: a message as /webhook takes it, or a full record as ``flask
    export`` writes it, whose provider, type, raw payload and arrival time are kept. A provider's
    sender may be a user ID rather than a phone number (WhatsApp's business-scoped IDs)."""

    provider = fields.String(load_default="webhook", validate=validate.OneOf(PROVIDERS))
    type = Text(load_default="text")
    raw = fields.Raw(load_default=None, allow_none=True)
    received_at = Text(load_default=None, allow_none=True)
    # The normalized record's fields, as `flask export` writes them.
    channel = Text(load_default="webhook")
    sender_name = Text(load_default=None, allow_none=True)
    media = fields.List(fields.Dict(), load_default=None, allow_none=True)
    location = fields.Dict(load_default=None, allow_none=True)
    reply_to = Text(load_default=None, allow_none=True)
    reactions = fields.List(fields.Dict(), load_default=None, allow_none=True)
    edited_at = Text(load_default=None, allow_none=True)
    revoked_at = Text(load_default=None, allow_none=True)

    @validates("to_msisdn")
    def check_msisdn(self, value, **kwargs):
        if not MSISDN.fullmatch(value):
            raise ValidationError("Value should be '+' followed by 1 to 15 digits (E.164)")

    @validates_schema(skip_on_field_errors=True)
    def check_sender(self, data, **kwargs):
        sender = data["from_msisdn"]
        if data["provider"] == "webhook" and not MSISDN.fullmatch(sender):
            raise ValidationError(
                "Value should be '+' followed by 1 to 15 digits (E.164)", field_name="from"
            )
        if not sender or "\x00" in sender:
            raise ValidationError("Value should be a sender ID without NUL", field_name="from")

    @validates("received_at")
    def check_received_at(self, value, **kwargs):
        if value is None:
            return
        instant = parse_instant(value)
        if instant is None:
            raise ValidationError("Value should be an ISO-8601 UTC date-time")
        # The console lists arrivals newest first: a future one would stay on top for ever.
        if instant > timestamps.now_iso():
            raise ValidationError("Value should not be in the future")

    @post_load
    def add_stored_form(self, data, **kwargs):
        for name in ("raw", "media", "location", "reactions"):
            data[name] = json.dumps(data[name]) if data[name] is not None else None
        received_at = data.pop("received_at")
        if received_at is not None:
            data["created_at"] = parse_instant(received_at)
        return data


def parse_instant(value):
    """An aware ISO-8601 date-time as created_at is written (UTC, microseconds, 'Z'), or None."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    if _WRITTEN_INSTANT.fullmatch(value):  # a real instant written so already (every export's)
        return value
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


_WRITTEN_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
