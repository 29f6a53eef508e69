"""The SQL both backends speak alike, written once: columns, filters, stats, batching.

Statements use named parameters (``:name``), which sqlite3 and SQLAlchemy's ``text()`` both bind
from a dict.
"""

import hashlib
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
    "channel",
    "sender_name",
    "media",
    "location",
    "reply_to",
    "reactions",
    "edited_at",
    "revoked_at",
)
# A message from /webhook says nothing of these: it is a text, and the contract's fields are all.
MESSAGE_DEFAULTS = {"provider": "webhook", "type": "text", "raw": None}
# What a page read selects; rows come back as backend.MessageRow.
PAGE_COLUMNS = "message_id, from_msisdn, to_msisdn, ts, text, ts_key"
# What one message's full record reads; rows come back as backend.MessageRecord.
RECORD_COLUMNS = (
    "message_id, from_msisdn, to_msisdn, ts, text, provider, type, created_at, raw, seq, "
    "channel, sender_name, media, location, reply_to, reactions, edited_at, revoked_at"
)
PAGE_ORDER = " ORDER BY ts_key, message_id"
# The same order backwards: the last page of a long list without walking the rows before it.
NEWEST_ORDER = " ORDER BY ts_key DESC, message_id DESC"


def page_order(newest_first):
    return NEWEST_ORDER if newest_first else PAGE_ORDER


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
        # The normalized record's fields (JSON values already as text); /webhook's have none.
        get("channel", "webhook"),
        get("sender_name"),
        get("media"),
        get("location"),
        get("reply_to"),
        get("reactions"),
        get("edited_at"),
        get("revoked_at"),
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
# --- counts per hour: of ts (for since=) and of arrival (for the console's chart) ---------------
#
# ts_hour_counts and arrival_hour_counts hold how many stored messages have each hour prefix
# ('YYYY-MM-DDTHH') of ts_key and of created_at, kept in the transactions that insert and delete
# messages, as sender_counts is. Both keys are fixed-width text that sorts chronologically, so a
# prefix is an hour and the hours sort as the keys do. An hour's count is the sum over its shards:
# SQLite (one writer) uses shard 0; PostgreSQL writes the shard of its connection (the backend's
# pid modulo HOUR_SHARDS), so concurrent inserts of one hour do not queue on one row's lock.
HOUR = 13  # len('YYYY-MM-DDTHH')
HOUR_SHARDS = 16
HOUR_COUNT_TABLES = ("ts_hour_counts", "arrival_hour_counts")


def count_hours(table, *, shard="0", rows=None):
    """Add to ``table``'s hours: ``:hour``/``:n`` bound, or the ``rows`` query's (hour, n) rows."""
    source = (
        f"SELECT hour, {shard}, n FROM ({rows}) AS counted WHERE true"
        if rows
        else (f"VALUES (:hour, {shard}, :n)")
    )
    return (
        f"INSERT INTO {table} (hour, shard, count) {source} "
        f"ON CONFLICT (hour, shard) DO UPDATE SET count = {table}.count + excluded.count"
    )


def count_hours_of(rows, *, shard, sign=""):
    """CTEs (each starting with a comma) adding the messages of the ``rows`` CTE (with ts_key and
    created_at) to their hours' counts, or, with ``sign`` "-", taking them away."""
    return "".join(
        f", counted_{table} AS ("
        + count_hours(
            table,
            shard=shard,
            rows=f"SELECT substr({column}, 1, {HOUR}) AS hour, {sign}count(*) AS n "
            f"FROM {rows} GROUP BY substr({column}, 1, {HOUR})",
        )
        + ")"
        for table, column in (("ts_hour_counts", "ts_key"), ("arrival_hour_counts", "created_at"))
    )


def drop_empty_hours(table, hours_parameter):
    """Delete the rows of the hours in ``hours_parameter`` whose shards add up to nothing."""
    return (
        f"DELETE FROM {table} WHERE hour IN (SELECT hour FROM {table} WHERE hour IN "
        f"({hours_parameter}) GROUP BY hour HAVING sum(count) <= 0)"
    )


# The exact number of messages with ts_key >= :since_key: the whole hours after since's hour from
# the counts, plus the rows of since's own hour from :since_key on, read through ix_messages_ts_key.
# Every key of that hour is 'YYYY-MM-DDTHH:...' and ';' follows ':', so the hour ends below
# :hour_end. Reads (hours after since) + (rows in one hour), whatever the number of rows matched.
SINCE_TOTAL = (
    "SELECT (SELECT coalesce(sum(count), 0) FROM ts_hour_counts WHERE hour > :since_hour) + "
    "(SELECT count(*) FROM messages WHERE ts_key >= :since_key AND ts_key < :hour_end)"
)


def since_total_params(since_key):
    hour = since_key[:HOUR]
    return {"since_hour": hour, "since_key": since_key, "hour_end": hour + ";"}


def hour_counts(keys, sign=1):
    """``[{"hour": ..., "n": ...}]``: how many of ``keys`` (ts_key or created_at values) fall in
    each hour (negated with ``sign=-1``), as the parameters of ``count_hours``."""
    counts = {}
    for key in keys:
        hour = key[:HOUR]
        counts[hour] = counts.get(hour, 0) + sign
    return [{"hour": hour, "n": n} for hour, n in counts.items()]


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
    """How many messages arrived in each of ``hours`` ('YYYY-MM-DDTHH', in order), from the counts
    kept per hour (an hour nobody arrived in has no row)."""
    params = {f"h{i}": hour for i, hour in enumerate(hours)}
    placeholders = ", ".join(f":{name}" for name in params)
    statement = (
        f"SELECT hour, sum(count) FROM arrival_hour_counts WHERE hour IN ({placeholders}) "
        "GROUP BY hour"
    )
    return statement, params


def hours_in_order(hours, rows):
    """``[(hour, count)]`` for every one of ``hours``, from the rows of ``arrivals_per_hour``."""
    counted = {hour: int(n) for hour, n in rows}
    return [(hour, counted.get(hour, 0)) for hour in hours]
