"""The PostgreSQL backend's SQL statements (``store.postgres``): one round trip each where it
can, counts and NOTIFY in the statement that writes; and the rows that fill COLUMNS."""

import json

from sqlalchemy import text

from lyftr.store import commit_signal, sql
from lyftr.store.folding import indexed_text

COLUMNS = (*sql.MESSAGE_COLUMNS, "text_escaped", "text_folded")
_TEXT = sql.MESSAGE_COLUMNS.index("text")
# This connection's shard of the per-hour counts (see sql.py).
SHARD = f"mod(pg_backend_pid(), {sql.HOUR_SHARDS})"


# How many were added; if any, the long polls of every host are woken at commit (commit_signal).
COUNT_AND_NOTIFY = (
    f" SELECT count(*) FROM (SELECT {commit_signal.NOTIFY_CALL} FROM added) AS notified"
)

# One message and its counts in one statement (one round trip): nothing is counted for a duplicate.
INSERT = text(
    "WITH added AS ("
    + sql.insert_message(COLUMNS, returning="from_msisdn, ts_key, created_at")
    + "), senders AS ("
    " INSERT INTO sender_counts (from_msisdn, count) SELECT from_msisdn, 1 FROM added"
    " ON CONFLICT (from_msisdn) DO UPDATE SET count = sender_counts.count + excluded.count)"
    + sql.count_hours_of("added", shard=SHARD)
    + COUNT_AND_NOTIFY
)
RECORD = text(
    f"SELECT {sql.RECORD_COLUMNS}, text_escaped FROM messages WHERE message_id = :message_id"
)
STAGE = (
    "CREATE TEMPORARY TABLE lyftr_bulk (position bigint, message_id text, from_msisdn text, "
    "to_msisdn text, ts text, ts_key text, text text, provider text, type text, raw text, "
    "created_at text, channel text, sender_name text, media text, location text, reply_to text, "
    "reactions text, edited_at text, revoked_at text, text_escaped boolean, text_folded text) "
    "ON COMMIT DROP"
)


# The staged rows in order (the first of a repeated message_id wins), their senders counted; with
# NUMBERED, each given its feed position as it is written. Rows already stored, purged or repeated
# are left out before nextval, so they take no position (ON CONFLICT stays for a concurrent
# insert of the same message_id).
def move_staged(numbered):
    seq_column, seq_value = (", seq", ", nextval('messages_seq')") if numbered else ("", "")
    return (
        "WITH added AS ("
        f" INSERT INTO messages ({', '.join(COLUMNS)}{seq_column})"
        f" SELECT {', '.join(COLUMNS)}{seq_value} FROM ("
        " SELECT DISTINCT ON (message_id) * FROM lyftr_bulk b"
        " WHERE NOT EXISTS (SELECT 1 FROM purged_hashes p"
        f" WHERE p.hash = {sql.pg_id_hash('b.message_id')})"
        " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.message_id = b.message_id)"
        " ORDER BY message_id, position) b"
        " ORDER BY position"
        " ON CONFLICT (message_id) DO NOTHING RETURNING from_msisdn, ts_key, created_at),"
        " counted AS ("
        " INSERT INTO sender_counts (from_msisdn, count)"
        " SELECT from_msisdn, count(*) FROM added GROUP BY from_msisdn"
        " ON CONFLICT (from_msisdn) DO UPDATE SET count = sender_counts.count + excluded.count)"
        f"{sql.count_hours_of('added', shard=SHARD)}{COUNT_AND_NOTIFY}"
    )


BULK_MOVE = move_staged(numbered=True)
SELECT = f"SELECT {sql.PAGE_COLUMNS}, text_escaped FROM messages"
# Numbers committed rows in arrival order. nextval is taken under SEQUENCE_LOCK_KEY, held to the
# commit: a later numbering starts after this one is visible, and takes higher numbers.
SEQUENCE = text(
    "WITH pending AS ("
    " SELECT message_id FROM messages WHERE seq IS NULL"
    " ORDER BY created_at, message_id LIMIT :n FOR UPDATE),"  # LIMIT NULL: all
    " numbered AS (SELECT message_id, nextval('messages_seq') AS seq FROM pending)"
    " UPDATE messages m SET seq = numbered.seq FROM numbered"
    " WHERE m.message_id = numbered.message_id"
)
FEED = text(
    f"SELECT {sql.RECORD_COLUMNS}, text_escaped FROM messages WHERE seq > :after "
    "ORDER BY seq LIMIT :limit"
)
# A batch of the oldest arrivals: their IDs remembered, their senders discounted, then deleted.
PURGE = text(
    "WITH doomed AS ("
    " SELECT message_id FROM messages WHERE created_at < :before"
    " ORDER BY created_at, message_id LIMIT :n FOR UPDATE SKIP LOCKED),"
    " deleted AS (DELETE FROM messages m USING doomed WHERE m.message_id = doomed.message_id"
    " RETURNING m.message_id, m.from_msisdn, m.ts_key, m.created_at),"
    " remembered AS (INSERT INTO purged_hashes (hash, purged_at)"
    f" SELECT {sql.pg_id_hash('message_id')}, :purged_at FROM deleted"
    " ON CONFLICT (hash) DO NOTHING),"
    " discounted AS (UPDATE sender_counts s SET count = s.count - d.n"
    " FROM (SELECT from_msisdn, count(*) AS n FROM deleted GROUP BY from_msisdn) d"
    " WHERE s.from_msisdn = d.from_msisdn RETURNING s.from_msisdn, s.count)"
    f"{sql.count_hours_of('deleted', shard=SHARD, sign='-')}"
    " SELECT (SELECT count(*) FROM deleted),"
    " ARRAY(SELECT from_msisdn FROM discounted WHERE count <= 0),"
    f" ARRAY(SELECT DISTINCT substr(ts_key, 1, {sql.HOUR}) FROM deleted),"
    f" ARRAY(SELECT DISTINCT substr(created_at, 1, {sql.HOUR}) FROM deleted)"
)
# After a purge: the hours it emptied lose their rows (the statement above could not see its own
# additions to the counts).
DROP_EMPTY_HOURS = {
    table: text(sql.drop_empty_hours(table, "SELECT unnest(CAST(:hours AS text[]))"))
    for table in sql.HOUR_COUNT_TABLES
}
# Two-key advisory locks (a key space apart from the one-key locks above), one per message id.
LOCK_TARGETS = text(
    "SELECT pg_advisory_xact_lock(7, h) FROM (SELECT DISTINCT hashtext(id) AS h"
    " FROM unnest(CAST(:ids AS text[])) AS id ORDER BY h) AS keys"
)
READ_ONLY = "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"


def stored_text(value):
    """(text column, text_escaped, text_folded) for a message text (None stays None)."""
    if value is None:
        return None, False, None
    folded = indexed_text(value)
    if "\x00" in value:
        return json.dumps(value), True, folded
    return value, False, folded


def stored_row(values):
    """A row of ``sql.message_values`` in COLUMNS order (its text as stored_text)."""
    text_value, escaped, folded = stored_text(values[_TEXT])
    return (*values[:_TEXT], text_value, *values[_TEXT + 1 :], escaped, folded)
