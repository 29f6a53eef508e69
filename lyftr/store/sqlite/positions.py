"""Feed positions on SQLite: one counter row, taken under the write lock in commit order."""

from lyftr.store import sql


def take(cursor, n):
    """Reserve ``n`` feed positions (in a write transaction); return the first."""
    start = cursor.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0]
    cursor.execute("UPDATE counters SET value = ? WHERE name = 'seq'", (start + n,))
    return start + 1


def number_pending(cursor, limit=-1):
    """Give up to ``limit`` (-1: all) committed rows without a feed position theirs, in arrival
    order; return how many."""
    ids = [row[0] for row in cursor.execute(sql.UNSEQUENCED, {"n": limit}).fetchall()]
    first = take(cursor, len(ids))
    cursor.executemany(
        "UPDATE messages SET seq = ? WHERE message_id = ?",
        [(first + i, message_id) for i, message_id in enumerate(ids)],
    )
    return len(ids)


def close_gaps(cursor, after_rowid, first):
    """After an insert that skipped rows (already stored, or purged), number the rows it did add
    (rowid > ``after_rowid``, in the order written) from ``first`` on, and give the positions the
    skipped rows had reserved back to the counter: a re-run takes no positions. Ascending, each
    row's new position is at most its reserved one, so the unique index never sees two alike."""
    rowids = [row[0] for row in cursor.execute(_ADDED, (after_rowid,)).fetchall()]
    cursor.executemany(
        "UPDATE messages SET seq = ? WHERE rowid = ?",
        [(first + i, rowid) for i, rowid in enumerate(rowids)],
    )
    cursor.execute("UPDATE counters SET value = ? WHERE name = 'seq'", (first - 1 + len(rowids),))


_ADDED = "SELECT rowid FROM messages WHERE rowid > ? ORDER BY rowid"
