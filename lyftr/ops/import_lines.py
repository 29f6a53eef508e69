"""The lines of ``flask import``, validated fast: the checks of ``schemas.ImportedMessageSchema``
written out in plain Python for the line that passes them all.

marshmallow spends about 50 µs on a line, more than the bulk insert of it. ``fast_load`` makes the
same checks in a few microseconds and returns what the schema would load, or None when the line
fails any check: that line then goes through the schema, whose answer (and error messages) is the
one reported. So a line is accepted exactly when the schema accepts it (the two are checked to
agree on generated lines: tests/ops/test_import_lines.py), and the schema stays the one definition
of what is valid.
"""

import json

from lyftr import timestamps
from lyftr.api import schemas


def _utf8(value):
    """Whether a str can be stored as UTF-8 (``schemas.Text``: no lone surrogates)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value):
    return type(value) is str and _utf8(value)


def fast_load(data):
    """What ``ImportedMessageSchema().load(data)`` returns for ``data`` (a decoded JSON line), or
    None if the line fails a check (or is not a case this path knows)."""
    if type(data) is not dict:
        return None
    message_id, sender, recipient, ts = (
        data.get("message_id"),
        data.get("from"),
        data.get("to"),
        data.get("ts"),
    )
    text = data.get("text")
    provider = data.get("provider", "webhook")
    kind = data.get("type", "text")
    received_at = data.get("received_at")
    if not (
        _text(message_id)
        and 1 <= len(message_id) <= schemas.MESSAGE_ID_MAX
        and "\x00" not in message_id
        and _text(recipient)
        and schemas.MSISDN.fullmatch(recipient)
        and _text(ts)
        and (text is None or (_text(text) and len(text) <= schemas.TEXT_MAX))
        and type(provider) is str
        and provider in schemas.PROVIDERS
        and _text(kind)
        and (received_at is None or _text(received_at))
        and _text(sender)
        and sender
        and "\x00" not in sender
        and (provider != "webhook" or schemas.MSISDN.fullmatch(sender))
    ):
        return None
    ts_key = timestamps.message_ts_key(ts)
    if ts_key is None:
        return None
    raw = data.get("raw")
    loaded = {
        "message_id": message_id,
        "from_msisdn": sender,
        "to_msisdn": recipient,
        "ts": ts,
        "text": text,
        "provider": provider,
        "type": kind,
        "raw": json.dumps(raw) if raw is not None else None,
        "ts_key": ts_key,
    }
    record = _record_fields(data)
    if record is None:
        return None
    loaded.update(record)
    if received_at is not None:
        created_at = schemas.parse_instant(received_at)
        # The schema refuses an arrival in the future (it would top the console for ever).
        if created_at is None or created_at > timestamps.now_iso():
            return None
        loaded["created_at"] = created_at
    return loaded


_RECORD_TEXTS = ("sender_name", "reply_to", "edited_at", "revoked_at")


def _record_fields(data):
    """The normalized record's fields as the schema loads them (``flask export`` writes them),
    or None if one fails its check."""
    channel = data.get("channel", "webhook")
    if not _text(channel):
        return None
    loaded = {"channel": channel}
    for name in _RECORD_TEXTS:
        value = data.get(name)
        if value is not None and not _text(value):
            return None
        loaded[name] = value
    for name, container in (("media", list), ("reactions", list), ("location", dict)):
        value = data.get(name)
        if value is None:
            loaded[name] = None
            continue
        if type(value) is not container:
            return None
        if container is list and not all(type(item) is dict for item in value):
            return None
        loaded[name] = json.dumps(value)
    return loaded
