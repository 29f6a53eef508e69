"""ISO-8601 timestamps: strict parsing and a chronological text key.

The key is ``YYYY-MM-DDTHH:MM:SS.`` followed by the fractional digits without trailing zeros, in
UTC. Comparing two keys as strings compares the instants, at any precision: the fixed-width part
decides first, then the fraction digit by digit ("." < ".0001" < ".5").
"""

import re
from datetime import UTC, datetime, timedelta

# [0-9], not \d: \d also matches other scripts' digits, which are not ISO-8601.
_ISO = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:(?P<sep>[Tt])(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.(?P<frac>[0-9]{1,9}))?"
    r"(?P<zone>[Zz]|[+-][0-9]{2}:?[0-9]{2})?)?"
)


# A message ts as the contract writes it: a date-time in UTC, upper-case "T" and "Z".
_MESSAGE_TS = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?Z"
)


def _parse(value):
    match = _ISO.fullmatch(value)
    if match is None:
        return None
    zone = match["zone"]
    written = f"{match['date']}T{match['time'] or '00:00:00'}"
    try:
        moment = datetime.fromisoformat(written)
    except ValueError:  # not a real calendar date or time (Feb 30, 25:00, ...)
        return None
    # In UTC already, a real date and time is its own key: fixed-width ASCII digits, as
    # isoformat would write them back.
    if zone and zone not in ("Z", "z"):
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        try:
            moment = moment - offset if zone[0] == "+" else moment + offset
        except OverflowError:
            return None
        if not 1 <= moment.year <= 9999:
            return None
        written = moment.isoformat(timespec="seconds")
    frac = (match["frac"] or "").rstrip("0")
    return f"{written}.{frac}"


def message_ts_key(value):
    """Key of a message ``ts`` (UTC with a ``Z`` suffix), or None if it is not one."""
    # Every delivery and every imported line has one: read by a pattern of its own, in UTC
    # already, so only the calendar is left to check.
    match = _MESSAGE_TS.fullmatch(value)
    if match is None:
        return None
    written, frac = match.groups()
    try:
        datetime.fromisoformat(written)
    except ValueError:  # not a real calendar date or time (Feb 30, 25:00, ...)
        return None
    return f"{written}.{frac.rstrip('0') if frac else ''}"


def query_ts_key(value):
    """Key of a ``since`` query value: a date, or a date-time in UTC (``Z``), with an offset, or
    naive (taken as UTC). A ``+`` offset sent unencoded in a URL arrives as a space: read as ``+``.
    """
    value = value.strip()
    if len(value) > 19 and value[-6] == " ":
        value = f"{value[:-6]}+{value[-5:]}"
    return _parse(value)


def now_iso():
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
