#!/usr/bin/env python3
"""The floor under ``flask seed`` and ``flask import``: lyftr's own schema (its migrations) and
synthetic rows, inserted by bare sqlite3.

    .venv/bin/python bench/sqlite_floor.py [N]     # default 1,000,000 rows

No Flask, no storage layer, no counts or feed bookkeeping: only SQLite writing the rows in
50,000-row transactions, as the loader does (page cache, WAL checkpoints every 250,000 rows, the
search index's hash size), into a new database each time: first with the primary key alone, then
with lyftr's four secondary indexes, then with the trigram search index too, and last with the
search index merged into one segment and the WAL checkpointed at the end, as the loader leaves
them. The last line is the fastest any loader of this schema can go here.
"""

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import BIN, ROOT  # noqa: E402
from bench.synthetic import synthetic_messages  # noqa: E402
from lyftr.store import staging  # noqa: E402
from lyftr.store.sqlite import bulk  # noqa: E402

COLUMNS = ("message_id", "from_msisdn", "to_msisdn", "ts", "ts_key", "text", "created_at", "seq")
INSERT = (
    f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT DO NOTHING"
)
SECONDARY = ("ix_messages_ts_key", "ix_messages_from_ts_key", "ix_messages_seq",
             "ix_messages_created_at")  # fmt: skip


def load(rows, *, indexes, search, finish):
    """Rows per second loading ``rows`` into a new lyftr database in a temporary directory,
    removed after (about 0.6 GB at a million rows with every index)."""
    with tempfile.TemporaryDirectory(prefix="lyftr-floor-") as directory:
        path = f"{directory}/floor.db"
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{path}"}
        subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            if not indexes:
                for name in SECONDARY:
                    connection.execute(f"DROP INDEX {name}")
            return _timed_load(connection, rows, search=search, finish=finish)
        finally:
            connection.close()


def _timed_load(connection, rows, *, search, finish):
    for pragma in (
        "synchronous=FULL",
        f"cache_size=-{bulk.CACHE_KIB}",
        "wal_autocheckpoint=0",
    ):
        connection.execute("PRAGMA " + pragma)
    connection.execute(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('hashsize', ?)", (bulk.FTS_HASHSIZE,)
    )
    started = time.perf_counter()
    for first in range(0, len(rows), staging.ROWS):
        batch = rows[first : first + staging.ROWS]
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(INSERT, [(*row, first + i + 1) for i, row in enumerate(batch)])
        if search:
            connection.executemany(
                "INSERT INTO messages_fts (rowid, text_folded) VALUES (?, ?)",
                [(first + i + 1, row[5].casefold()) for i, row in enumerate(batch) if row[5]],
            )
        connection.execute("COMMIT")
        if (first + len(batch)) % bulk.CHECKPOINT_ROWS == 0:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    if finish:
        while True:
            before = connection.total_changes
            connection.execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('merge', ?)",
                (-bulk.MERGE_STEP_PAGES,),
            )
            if connection.total_changes - before < 2:
                break
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
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
        ("rows only (primary key)", {"indexes": False, "search": False, "finish": False}),
        ("+ lyftr's four indexes", {"indexes": True, "search": False, "finish": False}),
        ("+ trigram search index", {"indexes": True, "search": True, "finish": False}),
        ("+ merged, checkpointed", {"indexes": True, "search": True, "finish": True}),
    ):
        print(f"{name:<28} {load(rows, **options):>10,.0f} rows/s", flush=True)


if __name__ == "__main__":
    main()
