"""The schemas' checks written out in plain Python for the message that passes them all.

marshmallow spends tens of microseconds on a message: on ``POST /webhook`` it is most of what a
delivery costs beyond the HTTP stack and the insert, and ``flask import`` pays it per line. Each
function here makes one schema's checks in a few microseconds and returns what the schema would
load, or None when the data fails any check (or is a case it does not know): the caller then loads
it with the schema, whose answer and error messages are the ones given. So data is accepted
exactly when the schema accepts it (tests/api/test_fast_load.py and tests/ops/test_import_lines.py
check that both agree on generated data), and the schema stays the one definition of what is valid.
"""

from lyftr import timestamps
from lyftr.api import schemas


def is_text(value):
    """A str that can be stored as UTF-8 (``schemas.Text``: no lone surrogates)."""
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_message_id(value):
    return is_text(value) and 1 <= len(value) <= schemas.MESSAGE_ID_MAX and "\x00" not in value


def is_msisdn(value):
    return is_text(value) and schemas.MSISDN.fullmatch(value) is not None


def is_message_text(value):
    return value is None or (is_text(value) and len(value) <= schemas.TEXT_MAX)


def message_fields(data):
    """The message_id, from, to, ts and text of a message body (None each where absent), or None
    if ``data`` is not an object."""
    if type(data) is not dict:
        return None
    get = data.get
    return get("message_id"), get("from"), get("to"), get("ts"), get("text")


def webhook_message(data):
    """What ``WebhookMessageSchema().load(data)`` returns for ``data`` (a decoded JSON body), or
    None if it fails a check."""
    fields = message_fields(data)
    if fields is None:
        return None
    message_id, sender, recipient, ts, text = fields
    if not (
        is_message_id(message_id)
        and is_msisdn(sender)
        and is_msisdn(recipient)
        and is_text(ts)
        and is_message_text(text)
    ):
        return None
    ts_key = timestamps.message_ts_key(ts)
    if ts_key is None:
        return None
    return {
        "message_id": message_id,
        "from_msisdn": sender,
        "to_msisdn": recipient,
        "ts": ts,
        "text": text,
        "ts_key": ts_key,
    }
