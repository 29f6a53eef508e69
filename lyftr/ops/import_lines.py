"""The lines of ``flask import``, validated fast: the checks of ``schemas.ImportedMessageSchema``
written out in plain Python for the line that passes them all (``api.fast_load`` says why and how
the two are kept in agreement; tests/ops/test_import_lines.py checks it)."""

import json

from lyftr import timestamps
from lyftr.api import schemas
from lyftr.api.fast_load import (
    is_message_id,
    is_message_text,
    is_msisdn,
    is_text,
    message_fields,
)


def fast_load(data, now=None):
    """What ``ImportedMessageSchema().load(data)`` returns for ``data`` (a decoded JSON line), or
    None if the line fails a check (or is not a case this path knows). ``now`` (an ISO-8601 UTC
    instant, default the current time): an arrival after it is left to the schema."""
    fields = message_fields(data)
    if fields is None:
        return None
    message_id, sender, recipient, ts, text = fields
    provider = data.get("provider", "webhook")
    kind = data.get("type", "text")
    received_at = data.get("received_at")
    if not (
        is_message_id(message_id)
        and is_msisdn(recipient)
        and is_text(ts)
        and is_message_text(text)
        and type(provider) is str
        and provider in schemas.PROVIDERS
        and is_text(kind)
        and (received_at is None or is_text(received_at))
        and is_text(sender)
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
        if created_at is None or created_at > (now or timestamps.now_iso()):
            return None
        loaded["created_at"] = created_at
    return loaded


_RECORD_TEXTS = ("sender_name", "reply_to", "edited_at", "revoked_at")


def _record_fields(data):
    """The normalized record's fields as the schema loads them (``flask export`` writes them),
    or None if one fails its check."""
    channel = data.get("channel", "webhook")
    if not is_text(channel):
        return None
    loaded = {"channel": channel}
    for name in _RECORD_TEXTS:
        value = data.get(name)
        if value is not None and not is_text(value):
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
        # An empty one (every export has "reactions": []) is written as json.dumps writes it.
        loaded[name] = json.dumps(value) if value else ("[]" if container is list else "{}")
    return loaded
