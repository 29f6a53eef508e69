"""How the console writes times and texts for a person: "3 min ago" with the exact UTC instant on
hover, and a search term marked in an escaped text."""

import re
from datetime import UTC, datetime

from markupsafe import Markup, escape

from lyftr import timestamps

# Around the first match, this many characters of a long text are shown in a list.
SNIPPET = 160


def _moment(value):
    """A UTC instant as messages write them (a ts, a received_at), as a datetime; or None."""
    key = timestamps.message_ts_key(value)
    if key is None:
        return None
    return datetime.fromisoformat(key[:19]).replace(tzinfo=UTC)


def relative(moment, now):
    """``just now``, ``3 min ago``, ``5 h ago``, ``yesterday``, ``4 days ago``, else the date."""
    seconds = (now - moment).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        return "just now"
    if seconds < 86_400:
        amount = f"{int(seconds // 60)} min" if seconds < 3600 else f"{int(seconds // 3600)} h"
        return f"in {amount}" if ahead else f"{amount} ago"
    days = int(seconds // 86_400)
    if days < 7 and not ahead:
        return "yesterday" if days == 1 else f"{days} days ago"
    if moment.year == now.year:
        return f"{moment.day} {moment:%b}"
    return f"{moment.day} {moment:%b} {moment.year}"


def when(value, now=None):
    """A ``<time>`` element: the relative time, the exact instant in UTC on hover."""
    moment = _moment(value) if value else None
    if moment is None:
        return escape(value or "")
    exact = f"{moment:%Y-%m-%d %H:%M:%S} UTC"
    shown = relative(moment, now or datetime.now(UTC))
    return Markup('<time datetime="{}" title="{}">{}</time>').format(value, exact, shown)


def marked(text, term, limit=None):
    """``text`` escaped, each case-insensitive occurrence of ``term`` in ``<mark>``; with
    ``limit``, a window of that many characters around the first occurrence."""
    if text is None:
        return Markup("")
    pattern = re.compile(re.escape(term), re.IGNORECASE) if term else None
    first = pattern.search(text) if pattern else None
    if limit is not None and len(text) > limit:
        start = max(0, min(first.start() - limit // 3, len(text) - limit)) if first else 0
        text = ("…" if start else "") + text[start : start + limit] + "…"
    if pattern is None:
        return escape(text)
    parts, position = [], 0
    for match in pattern.finditer(text):
        parts.append(escape(text[position : match.start()]))
        parts.append(Markup("<mark>{}</mark>").format(match.group()))
        position = match.end()
    parts.append(escape(text[position:]))
    return Markup("").join(parts)


def template_helpers():
    return {"when": when, "marked": marked, "snippet": SNIPPET}
