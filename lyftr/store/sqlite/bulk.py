"""Bulk loading on SQLite (``flask seed``, ``flask import``): large transactions, the search index
written per batch and merged once at the end, the WAL checkpointed every few batches rather than
at every commit, and purged IDs looked up once per batch rather than once per row."""

import itertools
import json

from lyftr.store import sql
from lyftr.store.folding import indexed_text
from lyftr.store.sqlite import positions
from lyftr.store.sqlite.writes import SEARCH_ONE


# A plain INSERT ... VALUES: the purged IDs are taken out of the batch beforehand (an INSERT ...
# SELECT ... WHERE NOT EXISTS per row took half the load's time). It names only the columns some
# row of the batch has a value for: binding None costs the sqlite3 module an adaptation lookup
# (about 0.8 us), and the eight record columns a plain message leaves NULL made the insert 70%
# slower. Every column left out is nullable with no default, so the row is the same.
def _insert_numbered(columns):
    return (
        f"INSERT INTO messages ({', '.join((*columns, 'seq'))}) "
        f"VALUES ({', '.join('?' * (len(columns) + 1))}) ON CONFLICT (message_id) DO NOTHING"
    )


_ANY_PURGED = "SELECT 1 FROM purged_hashes LIMIT 1"
_PURGED_AMONG = "SELECT p.hash FROM json_each(?) AS j JOIN purged_hashes AS p ON p.hash = j.value"
# The loader's connection does not checkpoint the WAL at its commits; bulk_insert checkpoints
# (PASSIVE: readers and writers go on) after this many rows, and after_bulk_load at the end.
CHECKPOINT_ROWS = 250_000

# bulk_insert writes this many messages per transaction: big enough that commits and index flushes
# are rare, small enough that the WAL stays bounded and the write lock is released regularly.
BATCH_ROWS = 50_000
# Page cache of the bulk loader's connection while it loads (KiB), from its first batch to its
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
MERGE_AFTER_ROWS = BATCH_ROWS
# Pages of merge work per transaction: the write lock is released between steps (~0.1-0.3 s each).
MERGE_STEP_PAGES = 2000


def load_batch(connection, rows):
    """Insert ``rows`` (in the caller's write transaction) with their counts, feed positions and
    search entries; return how many were new."""
    # Under BEGIN IMMEDIATE nobody else writes: SQLite gives new rows rowids above the
    # largest one, so "rowid > before" is exactly this batch's new rows.
    connection.exec_driver_sql(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('hashsize', ?)",
        (FTS_HASHSIZE,),
    )
    before = connection.exec_driver_sql("SELECT max(rowid) FROM messages").scalar()
    before = before or 0
    if before >= 2**63 - 1:  # SQLite would pick random rowids from here on
        raise OverflowError("messages rowids exhausted")
    # The DB-API cursor: positional rows, no Row objects for tens of thousands of rows.
    cursor = connection.connection.cursor()
    try:
        # Numbered as they are written (under the write lock, as the feed's
        # numbering is), after the rows already waiting for a position.
        positions.number_pending(cursor)
        rows = _not_purged(cursor, rows)
        if not rows:
            return 0
        first = positions.take(cursor, len(rows))
        columns = _with_values(rows)
        numbered = zip(*(column for _, column in columns), itertools.count(first))
        cursor.executemany(_insert_numbered(tuple(name for name, _ in columns)), numbered)
        # ON CONFLICT DO NOTHING: rowcount is the number of rows actually inserted.
        stored = cursor.rowcount
        if stored < len(rows):
            positions.close_gaps(cursor, before, first)
        cursor.execute(_COUNT_NEW, (before,))
        for statement in _COUNT_NEW_HOURS:
            cursor.execute(statement, (before,))
        if stored == len(rows):
            # Every row is new: SQLite gave them the rowids after the largest, one by one.
            texts = zip(itertools.count(before + 1), dict(columns).get("text", ()))
        else:
            texts = cursor.execute(_NEW_TEXTS, (before,)).fetchall()
        cursor.executemany(
            SEARCH_ONE, [(rowid, indexed_text(value)) for rowid, value in texts if value]
        )
    finally:
        cursor.close()
    return stored


def _with_values(rows):
    """(name, values) of each of MESSAGE_COLUMNS that has a value in some row of ``rows``."""
    columns = zip(sql.MESSAGE_COLUMNS, zip(*rows, strict=True), strict=True)
    return [(name, values) for name, values in columns if values.count(None) < len(values)]


def _not_purged(cursor, rows):
    """``rows`` without those whose message_id was purged (its hash remembered: a retry of a purged
    message is a duplicate, as on /webhook)."""
    if cursor.execute(_ANY_PURGED).fetchone() is None:
        return rows
    hashes = [sql.id_hash(row[0]) for row in rows]
    purged = {found[0] for found in cursor.execute(_PURGED_AMONG, (json.dumps(hashes),))}
    if not purged:
        return rows
    return [row for row, hashed in zip(rows, hashes, strict=True) if hashed not in purged]


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
