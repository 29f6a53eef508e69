"""Reading a WhatsApp Cloud API notification: its messages (as rows with their normalized record),
the edits/revokes/reactions among them, its status receipts, and what could not be read.

Each message and status is read on its own: one that is malformed becomes an ``Invalid`` entry
(quarantined as a rejection), and the rest of the batch is stored. Only a document that is not a
notification at all (no ``object``, no ``entry`` list) is refused as a whole.
"""

import json
from datetime import UTC, datetime
from typing import NamedTuple

from lyftr import timestamps
from lyftr.api.schemas import MESSAGE_ID_MAX
from lyftr.providers import whatsapp_record as record
from lyftr.store.folding import storable

PROVIDER = "whatsapp"


class Notification(NamedTuple):
    messages: list[dict]  # rows to store, as api.schemas loads a /webhook message, and more
    actions: list[dict]  # edits, revokes, reactions (see store.actions)
    statuses: list[dict]  # status events (see store.events.STATUS_COLUMNS)
    invalid: list[dict]  # {"loc", "msg", "input"}: each a part that could not be read
    other_changes: int


class InvalidNotification(ValueError):
    def __init__(self, loc, msg, value):
        super().__init__(msg)
        self.detail = [{"type": "value_error", "loc": ["body", *loc], "msg": msg, "input": value}]


def parse_notification(payload, received_at):
    """The parts of a notification's JSON document; InvalidNotification if it is not one."""
    if not isinstance(payload, dict):
        raise InvalidNotification([], "Input should be a WhatsApp notification object", None)
    if not isinstance(payload.get("object"), str):
        raise InvalidNotification(["object"], "Field required: a string", payload.get("object"))
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise InvalidNotification(["entry"], "Field required: a list", entries)
    found = Notification([], [], [], [], 0)
    for i, entry in enumerate(entries):
        changes = entry.get("changes", []) if isinstance(entry, dict) else None
        if not isinstance(changes, list):  # not a notification's shape: refused as a whole
            raise InvalidNotification(
                ["entry", i], "Should be an object with a list of changes", None
            )
        entry_id = entry.get("id")
        for j, change in enumerate(changes):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict) or change.get("field") != "messages":
                found = found._replace(other_changes=found.other_changes + 1)
                continue
            _read_change(found, value, entry_id, ["entry", i, "changes", j, "value"], received_at)
    return found


def _read_change(found, value, entry_id, loc, received_at):
    metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else None
    contacts = value.get("contacts") if isinstance(value.get("contacts"), list) else []
    errors = value.get("errors")
    messages, statuses = value.get("messages", []), value.get("statuses", [])
    for name, items in (("messages", messages), ("statuses", statuses)):
        if not isinstance(items, list):
            found.invalid.append(_invalid([*loc, name], "Should be a list", items))
    recipient = None
    if isinstance(messages, list) and messages:
        try:
            recipient = _business_number(metadata, loc)
        except InvalidNotification as exc:
            found.invalid.extend({**exc.detail[0], "input": m} for m in messages)
            messages = []
    for k, message in enumerate(messages if isinstance(messages, list) else []):
        try:
            contact = record.contact_for(message, contacts) if isinstance(message, dict) else None
            raw = record.raw_document(message, contact, metadata, entry_id, errors)
            row, action = _row(message, recipient, contacts, contact, raw, [*loc, "messages", k])
        except InvalidNotification as exc:
            found.invalid.append({**exc.detail[0], "input": message})
            continue
        found.messages.append(row)
        if action is not None:
            found.actions.append(action)
    for k, status in enumerate(statuses if isinstance(statuses, list) else []):
        event = _status(status, metadata, entry_id, received_at)
        if event is None:
            found.invalid.append(
                _invalid([*loc, "statuses", k], "Should be a status with id and status", status)
            )
        else:
            found.statuses.append(event)


def _invalid(loc, msg, value):
    return {"type": "value_error", "loc": ["body", *loc], "msg": msg, "input": value}


def _business_number(metadata, loc):
    number = metadata.get("display_phone_number") if isinstance(metadata, dict) else None
    digits = (
        "".join(c for c in number if c.isascii() and c.isdigit()) if isinstance(number, str) else ""
    )
    if not digits:
        raise InvalidNotification(
            [*loc, "metadata", "display_phone_number"], "Field required: a phone number", number
        )
    return "+" + digits


def _row(message, recipient, contacts, contact, raw, loc):
    """A message object as (a row to store, the action it takes or None)."""
    if not isinstance(message, dict):
        raise InvalidNotification(loc, "Should be a message object", None)
    message_id = message.get("id")
    if not (isinstance(message_id, str) and 1 <= len(message_id) <= MESSAGE_ID_MAX):
        raise InvalidNotification([*loc, "id"], "Field required: a message ID", message_id)
    ts = timestamp(message.get("timestamp"), [*loc, "timestamp"])
    found = record.fields(message, contact)
    sender = _sender(message, contacts, [*loc, "from"])
    row = {
        "message_id": message_id,
        "from_msisdn": sender,
        "to_msisdn": recipient,
        "ts": ts,
        "ts_key": timestamps.message_ts_key(ts),
        "text": found["text"],
        "provider": PROVIDER,
        # A type no backend can store (NUL, a lone surrogate) is no type Meta has: raw keeps it.
        "type": found["type"] if storable(found["type"]) else "unknown",
        # ASCII JSON: whatever the object holds (lone surrogates included) can be stored.
        "raw": json.dumps(raw),
        "channel": found["channel"],
        "sender_name": _storable_or_none(found["sender_name"]),
        "media": record.dumps(found["media"]),
        "location": record.dumps(found["location"]),
        "reply_to": _storable_or_none(found["reply_to"]),
    }
    if not (storable(message_id) and storable(sender)):
        raise InvalidNotification(loc, "IDs cannot hold NUL or lone surrogates", None)
    if row["text"] is not None and not storable(row["text"], nul=True):
        raise InvalidNotification(loc, "Text should be a string without lone surrogates", None)
    acted = record.action(message)
    if acted is None:
        return row, None
    kind, target, emoji = acted
    if not storable(target):
        raise InvalidNotification(loc, "IDs cannot hold NUL or lone surrogates", None)
    action = {"event": message_id, "kind": kind, "target": target, "from": sender, "ts": ts}
    if kind == record.REACTION:
        action["emoji"] = emoji
    elif kind == record.EDIT:
        action.update(text=row["text"], media=found["media"], location=found["location"])
        # The edited message shows the new content; the edit itself is delivered in /feed (its
        # raw says what changed), not searched twice (nor found after a revoke of its target).
        row.update(text=None, media=None, location=None)
    return row, action


def timestamp(value, loc):
    """Meta's Unix seconds (a string of digits) as the contract's UTC ``YYYY-MM-DDTHH:MM:SSZ``."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 11:
        try:
            return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, ValueError, OSError):
            pass
    raise InvalidNotification(loc, "Field required: Unix seconds as a string of digits", value)


def _sender(message, contacts, loc):
    """``+`` and the sender's phone number; without one, the business-scoped user ID as given."""
    number = message.get("from")
    if isinstance(number, str) and number.isascii() and number.isdigit():
        return "+" + number
    user_id = message.get("from_user_id")
    if not isinstance(user_id, str) and len(contacts) == 1 and isinstance(contacts[0], dict):
        user_id = contacts[0].get("user_id")
    if isinstance(user_id, str) and user_id:
        return user_id
    raise InvalidNotification(loc, "Field required: a phone number or a user ID", number)


def _status(status, metadata, entry_id, received_at):
    """A status receipt as a status event, or None if it has no message id and status."""
    if not isinstance(status, dict):
        return None
    message_id, name = status.get("id"), status.get("status")
    if not (isinstance(message_id, str) and isinstance(name, str) and message_id and name):
        return None
    if not (storable(message_id) and storable(name)) or len(message_id) > MESSAGE_ID_MAX:
        return None
    try:
        ts = timestamp(status.get("timestamp"), [])
    except InvalidNotification:
        ts = received_at
    recipient = status.get("recipient_id")
    errors = status.get("errors")
    raw = {"status": status, "metadata": metadata, "entry_id": entry_id}
    return {
        "provider": PROVIDER,
        "message_id": message_id,
        "status": name,
        "ts": ts,
        "ts_key": timestamps.message_ts_key(ts),
        "recipient": _storable_or_none(recipient),
        "errors": json.dumps(errors) if errors is not None else None,
        "raw": json.dumps(raw),
        "received_at": received_at,
    }


def _storable_or_none(value):
    return value if isinstance(value, str) and storable(value) else None
