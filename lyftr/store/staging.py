"""Rows staged for a bulk load (``flask seed``, ``flask import``): each chunk of
``sql.message_values`` rows written to a small SQLite file by the process that makes them (the
load's forked child), then stored from that file by the writer, one transaction per chunk.

SQLite attaches the file and moves its rows with one INSERT ... SELECT, so no row passes through
Python in the process holding the write lock: handing rows over as Python objects cost that
process about 5 us a row of 21 (unpickling them, binding each value, folding texts, checking for
empty columns). The file carries each text already folded for the search index. PostgreSQL reads
the rows back (``read``) into its COPY.
"""

import contextlib
import itertools
import os
import sqlite3
from typing import NamedTuple

from lyftr.store import sql
from lyftr.store.folding import indexed_text

TABLE = "staged"
COLUMNS = (*sql.MESSAGE_COLUMNS, "text_folded")
# Rows per chunk: each is one transaction on SQLite, big enough that commits and index flushes are
# rare, small enough that the WAL stays bounded and the write lock is released regularly.
ROWS = 50_000
_TEXT = sql.MESSAGE_COLUMNS.index("text")


class Staged(NamedTuple):
    """A chunk's file and how many rows it holds (rowids 1 to ``rows``, in the order given)."""

    path: str
    rows: int


def write(path, rows):
    """Stage the list ``rows`` in a new file at ``path``."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # A scratch file read once by this load: nothing to recover after a crash, no journal, no
        # flush to disk.
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        connection.execute(f"CREATE TABLE {TABLE} ({', '.join(COLUMNS)})")
        if columns := _with_values(rows):
            names = ", ".join(name for name, _ in columns)
            connection.execute("BEGIN")
            connection.executemany(
                f"INSERT INTO {TABLE} ({names}) VALUES ({', '.join('?' * len(columns))})",
                zip(*(values for _, values in columns), strict=True),
            )
            connection.execute("COMMIT")
    finally:
        connection.close()
    return Staged(path, len(rows))


def _with_values(rows):
    """(name, values) of each of COLUMNS that has a value in some row of ``rows``. A column left
    out is NULL all the same, and binding None costs the sqlite3 module an adaptation lookup
    (about 0.8 us): the eight record columns a plain message leaves NULL made the insert 70% slower.
    """
    if not rows:
        return []
    values = list(zip(*rows, strict=True))
    values.append(tuple(indexed_text(text) if text else None for text in values[_TEXT]))
    columns = zip(COLUMNS, values, strict=True)
    return [(name, column) for name, column in columns if column.count(None) < len(rows)]


def stage_all(rows, folder, sizes):
    """Stage the iterable ``rows`` in files of ``folder``, each chunk as many rows as the next of
    the iterable ``sizes`` says; yield each Staged."""
    rows = iter(rows)
    for number, size in enumerate(sizes):
        chunk = list(itertools.islice(rows, size))
        if not chunk:
            return
        yield write(os.path.join(folder, f"{number}.staged"), chunk)


def read(staged):
    """The rows of a staged chunk, in order."""
    connection = sqlite3.connect(staged.path)
    try:
        yield from connection.execute(
            f"SELECT {', '.join(sql.MESSAGE_COLUMNS)} FROM {TABLE} ORDER BY rowid"
        )
    finally:
        connection.close()


def consumed(chunks):
    """``chunks``, each file removed once its chunk is stored (when the next one is asked for)."""
    for staged in chunks:
        try:
            yield staged
        finally:
            with contextlib.suppress(FileNotFoundError):  # the load's folder went first
                os.remove(staged.path)
