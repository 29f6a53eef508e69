"""A Twilio Messaging form as lyftr's normalized record, and how a status callback is told apart.

Pure functions of the form's fields (a dict of str, as ``raw`` keeps them): the endpoint uses them
for each delivery, and migration 0004 for the rows stored before it.
"""

import math
import re

# A status callback carries one of these and no Body (Twilio's docs: "Message status callbacks").
STATUS_FIELDS = ("MessageStatus", "SmsStatus")
MAX_MEDIA = 10  # Twilio sends at most 10 media per message
_DECIMAL = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?|[+-]?\.[0-9]+")


def is_status_callback(form):
    return "Body" not in form and any(form.get(name) for name in STATUS_FIELDS)


def address(value):
    """A Twilio address without its channel prefix ('whatsapp:+1555...' -> '+1555...'); other
    channels' ids ('messenger:123') are kept whole, so they stay distinct from phone numbers."""
    return value.removeprefix("whatsapp:")


def channel(form):
    """'whatsapp', 'messenger', ... as the address's prefix says; else 'mms' with media, 'sms'."""
    sender = _first(form.get("From")) or ""
    prefix, sep, _ = sender.partition(":")
    if sep and prefix.isalpha():
        return prefix.lower()
    return "mms" if _num_media(form) else "sms"


def fields(form):
    """The normalized fields of a Twilio form: text, type, channel, sender_name, media, location,
    reply_to; JSON values as Python values."""
    get = form.get
    media = [
        {
            name: value
            for name, value in (
                ("url", _first(get(f"MediaUrl{i}"))),
                ("mime_type", _first(get(f"MediaContentType{i}"))),
            )
            if value
        }
        for i in range(min(_num_media(form), MAX_MEDIA))
    ]
    media = [item for item in media if item] or None
    location = None
    if get("Latitude") is not None and get("Longitude") is not None:
        location = {
            "latitude": _number(_first(get("Latitude"))),
            "longitude": _number(_first(get("Longitude"))),
            "name": _first(get("Label")) or None,
            "address": _first(get("Address")) or None,
        }
    kind = _first(get("MessageType")) or ("media" if media else "text")
    body = _first(get("Body"))
    text = body or _first(get("ButtonText")) or _first(get("ListTitle"))
    if not text and location:
        text = ", ".join(p for p in (location["name"], location["address"]) if p) or None
    return {
        # A text message keeps its Body exactly (even ""); other kinds say what is readable.
        "text": body if kind == "text" and body is not None else (text or None),
        "type": kind,
        "channel": channel(form),
        "sender_name": _first(get("ProfileName")) or None,
        "media": media,
        "location": location,
        "reply_to": _first(get("OriginalRepliedMessageSid")) or None,
    }


def _first(value):
    """A form field's value; a field sent several times is kept as a list in raw: its first."""
    return value[0] if isinstance(value, list) and value else value


def _num_media(form):
    value = _first(form.get("NumMedia")) or "0"
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else 0


def _number(value):
    """A coordinate as a number when it is written as one ('37.7749'), else as sent: float()
    would also read 'nan', 'inf' and '1e999', which no JSON answer can carry."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = float(value)
        if math.isfinite(number):
            return number
    return value
