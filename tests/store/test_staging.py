"""Chunks staged for a bulk load (``store.staging``): a file holds its rows as given, in order,
with the texts folded for the search index; a stored chunk's file is removed; a chunk that fails
to load leaves the loader's connection as it found it."""

import itertools
import sqlite3
import tempfile

import pytest
from helpers import stored_row

from lyftr import store
from lyftr.store import sql, staging
from lyftr.store.folding import NUL_STANDIN


def rows(*messages):
    return [sql.message_values(message, "2026-01-01T00:00:00.000000Z") for message in messages]


def test_a_staged_chunk_reads_back_as_written(tmp_path):
    written = rows(
        stored_row("m1", text="Straße\x00ǅ"),
        stored_row("m2", text=None, raw='{"a": 1}'),
        stored_row("m3", text="", sender_name="Zoë"),
    )
    staged = staging.write(str(tmp_path / "chunk.staged"), written)
    assert staged.rows == 3
    assert list(staging.read(staged)) == written
    with sqlite3.connect(staged.path) as connection:
        folded = connection.execute("SELECT rowid, text_folded FROM staged ORDER BY 1").fetchall()
    assert folded == [(1, f"strasse{NUL_STANDIN}ǆ"), (2, None), (3, None)]


def test_an_empty_chunk_holds_no_rows(tmp_path):
    staged = staging.write(str(tmp_path / "chunk.staged"), [])
    assert staged.rows == 0
    assert list(staging.read(staged)) == []


def test_chunks_take_their_sizes_in_turn_and_each_file_goes_once_consumed(tmp_path):
    written = rows(*(stored_row(f"m{n}") for n in range(6)))
    chunks = staging.stage_all(written, tmp_path, itertools.chain([1], itertools.repeat(2)))
    taken = staging.consumed(chunks)
    first = next(taken)
    assert [path.name for path in tmp_path.iterdir()] == ["0.staged"]
    second = next(taken)
    assert [path.name for path in tmp_path.iterdir()] == ["1.staged"]
    taken.close()  # an abandoned load
    assert list(tmp_path.iterdir()) == []
    assert (first.rows, second.rows) == (1, 2)


def test_staged_chunks_hold_every_row_once_in_order(tmp_path):
    written = rows(*(stored_row(f"m{n}") for n in range(6)))
    chunks = list(staging.stage_all(written, tmp_path, itertools.chain([1], itertools.repeat(4))))
    assert [chunk.rows for chunk in chunks] == [1, 4, 1]
    assert [row for chunk in chunks for row in staging.read(chunk)] == written


def test_a_bulk_load_leaves_no_file_behind(app, tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"  # TMPDIR
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with app.app_context():
        assert store.bulk_insert([stored_row(f"m{n}") for n in range(7)], batch_size=3) == 7
    assert list(scratch.iterdir()) == []


@pytest.mark.sqlite_only
def test_a_chunk_that_fails_to_load_leaves_the_connection_usable(app, client, tmp_path):
    broken = tmp_path / "broken.staged"
    with sqlite3.connect(broken) as connection:
        connection.execute("CREATE TABLE staged (message_id)")  # not the staged columns
    with app.app_context():
        with pytest.raises(Exception, match="no such column"):
            store.bulk_insert_staged([staging.Staged(str(broken), 1)])
        # The pooled connection was detached from the broken file: the next load attaches its own.
        assert store.bulk_insert([stored_row("m1")]) == 1
    assert client.get("/messages").get_json()["total"] == 1
