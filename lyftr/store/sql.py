"""The SQL both backends speak alike, written once: columns, filters, stats, batching.

Statements use named parameters (``:name``), which sqlite3 and SQLAlchemy's ``text()`` both bind
from a dict.
"""

import hashlib
import itertools
from datetime import datetime, timedelta

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
RECORD_COLUMNS = (
    "message_id, from_msisdn, to_msisdn, ts, text, provider, type, created_at, raw, seq"
)
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
        get("created_at") or created_at,  # kept when given (an import), else now
    )


def id_hash(message_id):
    """How a purged message_id is remembered (purged_hashes): the first 8 bytes of the SHA-256 of
    its UTF-8, as a signed 64-bit integer. Two IDs share one with a chance of about n / 2**64
    (n: the IDs remembered), so a new message is refused as purged by mistake practically never.
    PostgreSQL computes the same in SQL (``pg_id_hash``)."""
    digest = hashlib.sha256(message_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def pg_id_hash(expression):
    """``id_hash`` of the SQL ``expression`` (a message_id), in PostgreSQL (11 and later)."""
    return (
        f"('x' || left(encode(sha256(convert_to({expression}, 'UTF8')), 'hex'), 16))"
        "::bit(64)::bigint"
    )


def insert_message(columns=MESSAGE_COLUMNS, *, returning=None, named=True):
    """INSERT of one message that leaves a stored message_id alone, and a purged one too (see
    purged_hashes); named (``:column``, and ``:purged_hash``) or numbered (``?1``, the hash
    after the columns) parameters. The hash is ``id_hash`` of the message_id."""
    values = [f":{name}" if named else f"?{i}" for i, name in enumerate(columns, 1)]
    purged_hash = ":purged_hash" if named else f"?{len(columns) + 1}"
    statement = (
        f"INSERT INTO messages ({', '.join(columns)}) SELECT {', '.join(values)} "
        f"WHERE NOT EXISTS (SELECT 1 FROM purged_hashes WHERE hash = {purged_hash}) "
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


# --- the feed ------------------------------------------------------------------------------------

# Rows committed but not numbered yet, in arrival order (found through ix_messages_seq: NULL).
UNSEQUENCED = (
    "SELECT message_id FROM messages WHERE seq IS NULL ORDER BY created_at, message_id LIMIT :n"
)
ANY_UNSEQUENCED = "SELECT 1 FROM messages WHERE seq IS NULL LIMIT 1"
FEED_PAGE = f"SELECT {RECORD_COLUMNS} FROM messages WHERE seq > :after ORDER BY seq LIMIT :limit"

# --- retention -----------------------------------------------------------------------------------

PURGEABLE = "SELECT count(*) FROM messages WHERE created_at < :before"
DISCOUNT_SENDER = "UPDATE sender_counts SET count = count - :n WHERE from_msisdn = :from_msisdn"
DROP_EMPTY_SENDER = "DELETE FROM sender_counts WHERE from_msisdn = :from_msisdn AND count <= 0"
REMEMBER_PURGED = (
    "INSERT INTO purged_hashes (hash, purged_at) VALUES (:hash, :purged_at) "
    "ON CONFLICT (hash) DO NOTHING"
)
FORGET_PURGED = "DELETE FROM purged_hashes WHERE purged_at < :before"

# --- console sessions ----------------------------------------------------------------------------

REVOKE_SESSION = (
    "INSERT INTO console_revocations (nonce, expires_at) VALUES (:nonce, :expires_at) "
    "ON CONFLICT (nonce) DO NOTHING"
)
FORGET_REVOCATIONS = "DELETE FROM console_revocations WHERE expires_at < :now"
SESSION_REVOKED = "SELECT 1 FROM console_revocations WHERE nonce = :nonce"


def export_page(*, from_msisdn=None, since_key=None, position=None, columns=RECORD_COLUMNS):
    """The next page of an export in arrival order, after ``position`` (created_at, message_id)."""
    conditions, params = filters(from_msisdn=from_msisdn, since_key=since_key)
    if position is not None:
        conditions.append("(created_at, message_id) > (:after_created_at, :after_message_id)")
        params.update(after_created_at=position[0], after_message_id=position[1])
    statement = (
        f"SELECT {columns} FROM messages{where(conditions)} "
        "ORDER BY created_at, message_id LIMIT :limit"
    )
    return statement, params


# --- the console: arrivals, newest first, and arrivals per hour -----------------------------------

ARRIVAL_ORDER = " ORDER BY created_at DESC, message_id DESC"


def arrivals(*, received_since=None, before=None):
    """The range conditions of a newest-first listing by arrival (ix_messages_created_at): arrived
    at or after ``received_since`` and before the position ``before`` (created_at, message_id)."""
    conditions, params = [], {}
    if received_since is not None:
        conditions.append("created_at >= :received_since")
        params["received_since"] = received_since
    if before is not None:
        conditions.append("(created_at, message_id) < (:before_created_at, :before_message_id)")
        params.update(before_created_at=before[0], before_message_id=before[1])
    return conditions, params


def arrivals_per_hour(hours):
    """How many messages arrived in each of ``hours`` ('YYYY-MM-DDTHH' prefixes of created_at, in
    order): one range count on ix_messages_created_at per hour, no sort of the rows. The bounds
    are hour prefixes, which order like the instants under any collation."""
    params, bounds = {}, []
    for i, hour in enumerate(hours):
        until = datetime.strptime(hour, "%Y-%m-%dT%H") + timedelta(hours=1)
        params[f"h{i}"], params[f"u{i}"] = hour, until.strftime("%Y-%m-%dT%H")
        bounds.append(f"(CAST(:h{i} AS VARCHAR), CAST(:u{i} AS VARCHAR))")
    statement = (
        f"WITH hours (hour, until) AS (VALUES {', '.join(bounds)}) "
        "SELECT hour, (SELECT count(*) FROM messages "
        "WHERE created_at >= hours.hour AND created_at < hours.until) FROM hours ORDER BY hour"
    )
    return statement, params
