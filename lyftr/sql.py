"""The SQL both backends speak alike, written once: columns, filters, stats, batching.

Statements use named parameters (``:name``), which sqlite3 and SQLAlchemy's ``text()`` both bind
from a dict.
"""

import itertools

# What a stored message is made of, in the order of every INSERT's VALUES.
MESSAGE_COLUMNS = (
    "message_id",
    "from_msisdn",
    "to_msisdn",
    "ts",
    "ts_key",
    "text",
    "provider",
    "type",
    "raw",
    "created_at",
)
# A message from /webhook says nothing of these: it is a text, and the contract's fields are all.
MESSAGE_DEFAULTS = {"provider": "webhook", "type": "text", "raw": None}
# What a page read selects; rows come back as backend.MessageRow.
PAGE_COLUMNS = "message_id, from_msisdn, to_msisdn, ts, text, ts_key"
# What one message's full record reads; rows come back as backend.MessageRecord.
RECORD_COLUMNS = "message_id, from_msisdn, to_msisdn, ts, text, provider, type, created_at, raw"
PAGE_ORDER = " ORDER BY ts_key, message_id"


def message_values(message, created_at):
    """The values of ``message`` (a dict as the schemas load it) in MESSAGE_COLUMNS order."""
    get = message.get
    return (
        message["message_id"],
        message["from_msisdn"],
        message["to_msisdn"],
        message["ts"],
        message["ts_key"],
        message["text"],
        get("provider", "webhook"),
        get("type", "text"),
        get("raw"),
        created_at,
    )


def insert_message(columns=MESSAGE_COLUMNS, *, returning=None, named=True):
    """INSERT of one message that leaves a stored message_id alone; named (``:column``) or
    positional (``?``) parameters."""
    values = ", ".join(":" + name if named else "?" for name in columns)
    statement = (
        f"INSERT INTO messages ({', '.join(columns)}) VALUES ({values}) "
        "ON CONFLICT (message_id) DO NOTHING"
    )
    return f"{statement} RETURNING {returning}" if returning else statement


COUNT_SENDER = (
    "INSERT INTO sender_counts (from_msisdn, count) VALUES (:from_msisdn, :n) "
    "ON CONFLICT (from_msisdn) DO UPDATE SET count = sender_counts.count + excluded.count"
)

TOTAL = "SELECT coalesce(sum(count), 0) FROM sender_counts"
SENDER_TOTAL = "SELECT count FROM sender_counts WHERE from_msisdn = :from_msisdn"
STATS_TOTALS = "SELECT coalesce(sum(count), 0), count(*) FROM sender_counts"
STATS_TOP = (
    "SELECT from_msisdn, count FROM sender_counts ORDER BY count DESC, from_msisdn LIMIT :top"
)
FIRST_TS = "SELECT ts FROM messages ORDER BY ts_key, message_id LIMIT 1"
LAST_TS = "SELECT ts FROM messages ORDER BY ts_key DESC, message_id DESC LIMIT 1"


def filters(*, from_msisdn=None, since_key=None):
    """The conditions on ``messages`` of the sender and since filters, and their parameters."""
    conditions, params = [], {}
    if from_msisdn is not None:
        conditions.append("from_msisdn = :from_msisdn")
        params["from_msisdn"] = from_msisdn
    if since_key is not None:
        conditions.append("ts_key >= :since_key")
        params["since_key"] = since_key
    return conditions, params


def after(cursor_position):
    """The keyset condition of a cursor: rows after ``(ts_key, message_id)``."""
    ts_key, message_id = cursor_position
    return "(ts_key, message_id) > (:after_ts_key, :after_message_id)", {
        "after_ts_key": ts_key,
        "after_message_id": message_id,
    }


def where(conditions):
    return (" WHERE " + " AND ".join(conditions)) if conditions else ""


def batched(items, size):
    """Lists of up to ``size`` consecutive items (itertools.batched, which is Python 3.12's)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
