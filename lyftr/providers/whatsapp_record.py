"""A WhatsApp message object as lyftr's normalized record: what a person sees, who sent it, media,
location, what it replies to, and what it acts on (an edit, a revoke, a reaction).

Pure functions of Meta's JSON (no Flask, no database): the endpoint uses them for each message,
and migration 0004 for the rows stored before it (whose ``raw`` was the message object alone).
"""

import json

CHANNEL = "whatsapp"
MEDIA_KINDS = frozenset({"image", "video", "document", "audio", "sticker"})
MEDIA_FIELDS = ("id", "url", "mime_type", "sha256", "filename", "caption")
# Kinds that act on an earlier message rather than say something of their own.
EDIT, REVOKE, REACTION = "edit", "revoke", "reaction"


def raw_document(message, contact, metadata, entry_id, errors):
    """What ``raw`` keeps of a message: the object and everything its notification said about it
    (the sender's contacts entry, the business number's metadata, the WABA id, value.errors)."""
    raw = {"message": message}
    if contact is not None:
        raw["contact"] = contact
    if metadata is not None:
        raw["metadata"] = metadata
    if entry_id is not None:
        raw["entry_id"] = entry_id
    if errors is not None:
        raw["errors"] = errors
    return raw


def from_raw(raw):
    """(message object, contacts entry) of a stored ``raw``: the document ``raw_document`` writes,
    or (rows stored before revision 0004) the message object alone."""
    if isinstance(raw, dict) and isinstance(raw.get("message"), dict) and "id" not in raw:
        return raw["message"], raw.get("contact")
    return raw, None


def contact_for(message, contacts):
    """The contacts entry of a message's sender: the one whose wa_id or user_id is its sender,
    else the only one."""
    entries = [c for c in contacts if isinstance(c, dict)]
    sender = _ids(message, "from", "from_user_id")
    for entry in entries:
        if sender & _ids(entry, "wa_id", "user_id"):
            return entry
    return entries[0] if len(entries) == 1 else None


def _ids(document, *names):
    # Only strings are IDs: a list or object in their place must not break the set.
    return {document[name] for name in names if isinstance(document.get(name), str)}


def fields(message, contact=None):
    """The normalized fields of a message object: text, type, channel, sender_name, media (a
    list), location, reply_to; JSON values as Python values."""
    kind = _str(message.get("type")) or "unknown"
    profile = contact.get("profile") if isinstance(contact, dict) else None
    content = message.get(kind)
    context = message.get("context")
    if kind == EDIT and isinstance(content, dict) and isinstance(content.get("message"), dict):
        # An edit carries the new message (without id or sender): its content is what is shown.
        shown = content["message"]
        shown_kind = _str(shown.get("type")) or "unknown"
        text, media, location = _content(shown_kind, shown.get(shown_kind))
        context = context or shown.get("context")
    else:
        text, media, location = _content(kind, content)
    return {
        "text": text,
        "type": kind,
        "channel": CHANNEL,
        "sender_name": _str(profile.get("name")) if isinstance(profile, dict) else None,
        "media": media,
        "location": location,
        "reply_to": _str(context.get("id")) if isinstance(context, dict) else None,
    }


def action(message):
    """What a message does to an earlier one: (kind, target message id, emoji) for an edit, a
    revoke or a reaction (emoji None: an un-reaction); None for any other message."""
    kind = message.get("type")
    content = message.get(kind) if isinstance(kind, str) else None
    if not isinstance(content, dict):
        return None
    if kind in (EDIT, REVOKE):
        target = _str(content.get("original_message_id"))
        return (kind, target, None) if target else None
    if kind == REACTION:
        target = _str(content.get("message_id"))
        return (kind, target, _str(content.get("emoji")) or None) if target else None
    return None


def _content(kind, content):
    """(text, media, location) of one kind's content object."""
    if kind == "contacts" and isinstance(content, list):
        names = [
            card["name"].get("formatted_name")
            for card in content
            if isinstance(card, dict) and isinstance(card.get("name"), dict)
        ]
        return ", ".join(n for n in names if isinstance(n, str) and n) or None, None, None
    if not isinstance(content, dict):
        return None, None, None
    if kind == "text":
        return _str(content.get("body")), None, None
    if kind in MEDIA_KINDS:
        item = {name: content[name] for name in MEDIA_FIELDS if _str(content.get(name))}
        text = _str(content.get("caption")) or (
            _str(content.get("filename")) if kind == "document" else None
        )
        return text, [item], None
    if kind == "location":
        location = {
            name: content.get(name) for name in ("latitude", "longitude", "name", "address")
        }
        place = [p for p in (_str(content.get("name")), _str(content.get("address"))) if p]
        return ", ".join(place) or None, None, location
    if kind == REACTION:
        return _str(content.get("emoji")) or None, None, None
    if kind == "button":
        return _str(content.get("text")), None, None
    if kind == "interactive":
        return _interactive_text(content), None, None
    if kind == "system":
        return _str(content.get("body")), None, None
    if kind == "order":
        return _order_text(content), None, None
    return None, None, None


def _interactive_text(content):
    reply = content.get(content.get("type")) if isinstance(content.get("type"), str) else None
    if not isinstance(reply, dict):
        return None
    # button_reply and list_reply have a title; a Flow's reply (nfm_reply) a body.
    return _str(reply.get("title")) or _str(reply.get("body"))


def _order_text(content):
    """The order's note, else its items ('3 × HAMBURGER, 2 × SODA')."""
    note = _str(content.get("text"))
    if note:
        return note
    items = [
        f"{item.get('quantity')} × {item.get('product_retailer_id')}"
        for item in _list(content.get("product_items"))
        if isinstance(item, dict) and item.get("product_retailer_id") is not None
    ]
    return ", ".join(items) or None


def _str(value):
    return value if isinstance(value, str) and value else None


def _list(value):
    return value if isinstance(value, list) else []


def dumps(value):
    """A JSON column's text (None stays None): ASCII, so anything Meta sent can be stored."""
    return None if value is None else json.dumps(value)
