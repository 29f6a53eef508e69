#!/usr/bin/env python3
"""The floor under ``flask seed``: lyftr's schema and synthetic rows, inserted by bare sqlite3.

    .venv/bin/python bench/sqlite_floor.py [N]     # default 1,000,000 rows

No Flask, no storage layer, no sender counts: only SQLite writing the rows in 50,000-row
transactions, first with no secondary index, then with the two time-ordered indexes, then with
the trigram search index too. The last line is the fastest any loader of this schema can go here.
"""

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.synthetic import synthetic_messages  # noqa: E402

BATCH = 50_000


def load(rows, *, indexes, search):
    """Rows per second loading ``rows`` into a new database in a temporary directory, removed after
    (about 0.5 GB at a million rows with every index)."""
    with tempfile.TemporaryDirectory(prefix="lyftr-floor-") as directory:
        connection = sqlite3.connect(f"{directory}/floor.db", isolation_level=None)
        try:
            return _timed_load(connection, rows, indexes=indexes, search=search)
        finally:
            connection.close()


def _timed_load(connection, rows, *, indexes, search):
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "cache_size=-262144"):
        connection.execute("PRAGMA " + pragma)
    connection.execute(
        "CREATE TABLE messages (message_id VARCHAR NOT NULL PRIMARY KEY,"
        " from_msisdn VARCHAR NOT NULL, to_msisdn VARCHAR NOT NULL, ts VARCHAR NOT NULL,"
        " ts_key VARCHAR NOT NULL, text TEXT, created_at VARCHAR NOT NULL)"
    )
    if indexes:
        connection.execute("CREATE INDEX ix_ts ON messages (ts_key, message_id)")
        connection.execute("CREATE INDEX ix_from ON messages (from_msisdn, ts_key, message_id)")
    connection.execute(
        "CREATE VIRTUAL TABLE search USING fts5(t, tokenize='trigram case_sensitive 1')"
    )
    connection.execute("INSERT INTO search (search, rank) VALUES ('hashsize', 16777216)")
    started = time.perf_counter()
    for first in range(0, len(rows), BATCH):
        batch = rows[first : first + BATCH]
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", batch
        )
        if search:
            connection.executemany(
                "INSERT INTO search (rowid, t) VALUES (?, ?)",
                [(first + i + 1, row[5].casefold()) for i, row in enumerate(batch) if row[5]],
            )
        connection.execute("COMMIT")
    if search:
        connection.execute("INSERT INTO search (search) VALUES ('optimize')")
    return len(rows) / (time.perf_counter() - started)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rows = [
        (
            m["message_id"],
            m["from_msisdn"],
            m["to_msisdn"],
            m["ts"],
            m["ts_key"],
            m["text"],
            "2026-01-01T00:00:00.000Z",
        )
        for m in synthetic_messages(count)
    ]
    for name, options in (
        ("rows only (primary key)", {"indexes": False, "search": False}),
        ("+ two time-ordered indexes", {"indexes": True, "search": False}),
        ("+ trigram search index", {"indexes": True, "search": True}),
    ):
        print(f"{name:<28} {load(rows, **options):>10,.0f} rows/s", flush=True)


if __name__ == "__main__":
    main()
