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
