"""Bulk loading on SQLite (``flask seed``, ``flask import``): each staged chunk (``staging``)
attached and moved in one transaction, the search index written per chunk and merged once at the
end, the WAL checkpointed every few chunks rather than at every commit, and purged IDs looked up
once per chunk rather than once per row."""

import json

from lyftr.store import sql, staging
from lyftr.store.folding import indexed_text
from lyftr.store.sqlite import positions
from lyftr.store.sqlite.writes import SEARCH_ONE

# The attached chunk's rows (``staging``), numbered from ?1 + 1 in the chunk's order, less the
# message_ids in the JSON array ?2 (purged).
_MOVE_STAGED = (
    f"INSERT INTO messages ({', '.join(sql.MESSAGE_COLUMNS)}, seq) "
    f"SELECT {', '.join(sql.MESSAGE_COLUMNS)}, ?1 + rowid FROM chunk.{staging.TABLE} "
    "WHERE message_id NOT IN (SELECT value FROM json_each(?2)) ORDER BY rowid "
    "ON CONFLICT (message_id) DO NOTHING"
)
# Every row of the chunk was stored: the Nth got rowid ?1 + N.
_SEARCH_STAGED = (
    f"INSERT INTO messages_fts (rowid, text_folded) SELECT ?1 + rowid, text_folded "
    f"FROM chunk.{staging.TABLE} WHERE text_folded IS NOT NULL"
)
_STAGED_IDS = f"SELECT message_id FROM chunk.{staging.TABLE}"
_ANY_PURGED = "SELECT 1 FROM purged_hashes LIMIT 1"
_PURGED_AMONG = "SELECT p.hash FROM json_each(?) AS j JOIN purged_hashes AS p ON p.hash = j.value"
# The loader's connection does not checkpoint the WAL at its commits; bulk_insert checkpoints
# (PASSIVE: readers and writers go on) after this many rows, and after_bulk_load at the end.
CHECKPOINT_ROWS = 250_000

# Page cache of the bulk loader's connection while it loads (KiB), from its first chunk to its
# merge (commits and merge steps included); restored afterwards. 1 GiB loads no faster.
CACHE_KIB = 256 * 1024
# FTS5 keeps this many bytes of new index entries in memory before writing a segment (default 1 MB):
# bigger segments, fewer merges. Stored in the index's config; one-message transactions of the
# server write their segment at commit whatever it is.
FTS_HASHSIZE = 16 * 1024 * 1024
# The senders of the rows a batch added (rowid > the largest rowid before it), added to their
# counts.
_COUNT_NEW = (
    "INSERT INTO sender_counts (from_msisdn, count) "
    "SELECT from_msisdn, count(*) FROM messages WHERE rowid > ? GROUP BY from_msisdn "
    "ON CONFLICT (from_msisdn) DO UPDATE SET count = sender_counts.count + excluded.count"
)
# The hours of the batch's new rows, added to the per-hour counts (sql.count_hours).
_COUNT_NEW_HOURS = [
    sql.count_hours(
        table,
        rows=f"SELECT substr({column}, 1, {sql.HOUR}) AS hour, count(*) AS n FROM messages "
        f"WHERE rowid > ? GROUP BY substr({column}, 1, {sql.HOUR})",
    )
    for table, column in (("ts_hour_counts", "ts_key"), ("arrival_hour_counts", "created_at"))
]
_NEW_TEXTS = "SELECT rowid, text FROM messages WHERE rowid > ? AND text <> ''"
# After a load this big the search index is merged into one segment. Left as a pile of segments,
# FTS5 would merge them later inside some webhook's commit, which then takes seconds.
MERGE_AFTER_ROWS = staging.ROWS
# Pages of merge work per transaction: the write lock is released between steps (~0.1-0.3 s each).
MERGE_STEP_PAGES = 2000


def load_batch(connection, count):
    """Move the ``count`` rows of the staged chunk attached as ``chunk`` into messages (in the
    caller's write transaction) with their counts, feed positions and search entries; return how
    many were new."""
    # Under BEGIN IMMEDIATE nobody else writes: SQLite gives new rows rowids above the
    # largest one, so "rowid > before" is exactly this chunk's new rows.
    connection.exec_driver_sql(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('hashsize', ?)",
        (FTS_HASHSIZE,),
    )
    before = connection.exec_driver_sql("SELECT max(rowid) FROM messages").scalar()
    before = before or 0
    if before >= 2**63 - 1:  # SQLite would pick random rowids from here on
        raise OverflowError("messages rowids exhausted")
    cursor = connection.connection.cursor()
    try:
        # Numbered as they are written (under the write lock, as the feed's
        # numbering is), after the rows already waiting for a position.
        positions.number_pending(cursor)
        first = positions.take(cursor, count)
        cursor.execute(_MOVE_STAGED, (first - 1, json.dumps(_purged(cursor))))
        # ON CONFLICT DO NOTHING: rowcount is the number of rows actually inserted.
        stored = cursor.rowcount
        if stored < count:
            positions.close_gaps(cursor, before, first)
        cursor.execute(_COUNT_NEW, (before,))
        for statement in _COUNT_NEW_HOURS:
            cursor.execute(statement, (before,))
        if stored == count:
            cursor.execute(_SEARCH_STAGED, (before,))
        else:  # some rows skipped: read back which rowids the stored ones got
            texts = cursor.execute(_NEW_TEXTS, (before,)).fetchall()
            cursor.executemany(
                SEARCH_ONE, [(rowid, indexed_text(value)) for rowid, value in texts if value]
            )
    finally:
        cursor.close()
    return stored


def _purged(cursor):
    """The message_ids of the attached chunk that were purged (their hashes remembered: a retry of
    a purged message is a duplicate, as on /webhook)."""
    if cursor.execute(_ANY_PURGED).fetchone() is None:
        return []
    ids = [row[0] for row in cursor.execute(_STAGED_IDS)]
    hashes = [sql.id_hash(message_id) for message_id in ids]
    purged = {found[0] for found in cursor.execute(_PURGED_AMONG, (json.dumps(hashes),))}
    return [message_id for message_id, hashed in zip(ids, hashes, strict=True) if hashed in purged]


def merge_step(connection):
    """One step of merging the search index's segments; True once there is no work left."""
    driver = connection.connection.driver_connection
    before = driver.total_changes
    # Negative: merge segments of every level, as 'optimize' does, a step at a time.
    connection.exec_driver_sql(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('merge', ?)",
        (-MERGE_STEP_PAGES,),
    )
    return driver.total_changes - before < 2  # FTS5's documented "no work left" signal
