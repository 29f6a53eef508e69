"""Bulk loads made in a forked child (``lyftr.ops.producer``): ``flask import`` and ``flask seed``
across many chunks keep the order, the verdicts and the counts of a load made in one process, and
a child that fails or dies stops the load with a clear error, not a hang."""

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import weakref

import pytest
from helpers import SECRET, sample_message, stored_total

from lyftr.ops import producer


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of two rows: every load below crosses many of them (the child is forked after this,
    so it sees the same size)."""
    monkeypatch.setattr(producer, "CHUNK", 2)
    monkeypatch.setattr(producer, "AHEAD", 1)


def _lines(count, bad_every):
    lines = []
    for number in range(1, count + 1):
        if number % bad_every == 0:
            lines.append(f'{{"message_id": "bad{number}"'.encode())  # not JSON
        else:
            lines.append(json.dumps(sample_message(message_id=f"m{number:03d}")).encode())
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_import_across_chunks_keeps_file_order_and_reports_each_bad_line(
    app, client, tmp_path, small_chunks, source
):
    data = _lines(25, bad_every=4)
    path = tmp_path / "in.ndjson"
    path.write_bytes(data)
    runner = app.test_cli_runner()
    if source == "file":
        result = runner.invoke(args=["import", str(path)])
    else:
        result = runner.invoke(args=["import", "-"], input=data)
    assert result.exit_code == 1, result.output
    complaints = [line.split(":")[0] for line in result.output.splitlines() if line[:5] == "line "]
    assert complaints == [f"line {n}" for n in (4, 8, 12, 16, 20, 24)]
    assert "imported 19 new messages (0 skipped: already stored or purged; 6 bad lines)" in (
        result.output
    )
    assert stored_total(client) == 19
    # The feed numbers the messages in the file's order, whichever chunk each came in.
    stored_ids = [
        item["message_id"] for item in client.get("/messages?limit=100").get_json()["data"]
    ]
    seq = {
        message_id: client.get(f"/messages/{message_id}").get_json()["seq"]
        for message_id in stored_ids
    }
    assert sorted(stored_ids, key=seq.get) == [f"m{n:03d}" for n in range(1, 26) if n % 4 != 0]


def test_seed_across_chunks_stores_what_one_process_would(
    app, make_app, tmp_path, small_chunks, monkeypatch
):
    chunked = app.test_cli_runner().invoke(args=["seed", "--count", "15", "--seed", "7"])
    assert "seeded 15 new messages" in chunked.output, chunked.output
    other = make_app(DATABASE_URL=f"sqlite:///{tmp_path}/other.db")
    monkeypatch.setattr(producer, "CHUNK", 1000)
    whole = other.test_cli_runner().invoke(args=["seed", "--count", "15", "--seed", "7"])
    assert "seeded 15 new messages" in whole.output, whole.output
    assert (
        app.test_client().get("/messages?limit=100").get_json()
        == other.test_client().get("/messages?limit=100").get_json()
    )


def test_a_failing_child_stops_the_load_with_its_traceback():
    def chunks(folder):
        yield [1, 2]
        raise LookupError("the child's own error")

    made = producer.made_in_child(chunks)
    assert next(made) == [1, 2]
    with pytest.raises(producer.ProducerFailed, match="LookupError: the child's own error"):
        next(made)


def test_a_child_that_dies_stops_the_load(monkeypatch):
    monkeypatch.setattr(producer, "_POLL_S", 0.05)

    def chunks(folder):
        os._exit(3)  # killed, say: not even its queued chunks get out
        yield ["never"]

    with pytest.raises(producer.ProducerFailed, match="ended with status 3"):
        next(producer.made_in_child(chunks))


@pytest.fixture
def temporary_folder(tmp_path, monkeypatch):
    """Where the load's chunk files go (TMPDIR), to see what is left there."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_load_hands_over_every_chunk_in_order_and_leaves_no_files(temporary_folder):
    def chunks(folder):
        for number in range(50):
            yield [number, str(number), None]

    assert list(producer.made_in_child(chunks)) == [[n, str(n), None] for n in range(50)]
    assert list(temporary_folder.iterdir()) == []


def test_a_load_abandoned_midway_leaves_no_child_and_no_files(small_chunks, temporary_folder):
    def chunks(folder):
        while True:
            yield [0] * 2

    made = producer.made_in_child(chunks)
    next(made)
    deadline = time.monotonic() + 10
    while not any(temporary_folder.rglob("*.pickle")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(temporary_folder.rglob("*.pickle"))  # a chunk made ahead waits there
    made.close()
    assert producer.multiprocessing.active_children() == []
    assert list(temporary_folder.iterdir()) == []


def _running(pid):
    """Whether process ``pid`` exists and has not exited (a zombie has, whoever reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_a_child_whose_writer_was_killed_exits_and_removes_its_files(
    tmp_path, temporary_folder, monkeypatch
):
    monkeypatch.setattr(producer, "_POLL_S", 0.05)
    child_pid = tmp_path / "child.pid"

    def chunks(folder):
        child_pid.write_text(str(os.getpid()))
        while True:
            yield [0] * 1000

    writer = os.fork()
    if writer == 0:  # the writer: takes one chunk, then dies as a SIGKILL would leave it
        made = producer.made_in_child(chunks)  # held: closing it would stop the child
        try:
            next(made)
        finally:
            os._exit(0)
    os.waitpid(writer, 0)
    child = int(child_pid.read_text())
    deadline = time.monotonic() + 10
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child)
    assert list(temporary_folder.iterdir()) == []


def test_export_piped_into_import_from_stdin_moves_every_message(database_url, tmp_path):
    """``flask export | flask import -`` as an operator runs it: two processes and a real pipe,
    the import's child reading the pipe it inherited (multiprocessing closes a child's stdin)."""
    source = f"sqlite:///{tmp_path}/source.db"
    lines = _lines(30, bad_every=1000).decode()
    environment = {**os.environ, "WEBHOOK_SECRET": SECRET}
    loaded = subprocess.run(
        [sys.executable, "-m", "lyftr", "import", "-"],
        env={**environment, "DATABASE_URL": source},
        input=lines, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "imported 30 new messages" in loaded.stdout, loaded.stderr
    export = subprocess.Popen(
        [sys.executable, "-m", "lyftr", "export"],
        env={**environment, "DATABASE_URL": source},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    moved = subprocess.run(
        [sys.executable, "-m", "lyftr", "import", "-"],
        env={**environment, "DATABASE_URL": database_url},
        stdin=export.stdout, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    export.stdout.close()
    assert export.wait(timeout=60) == 0
    assert moved.returncode == 0, moved.stderr
    assert "imported 30 new messages (0 skipped" in moved.stdout, moved.stderr


class Cyclic:
    """An object in a reference cycle: only the garbage collector frees it."""

    def __init__(self):
        self.itself = self


def test_the_child_collects_only_its_own_garbage_once_a_chunk_and_the_parent_is_left_as_it_was():
    """What the child inherited is frozen for its garbage collector (never walked, nor its pages
    copied by the walk), whose automatic passes are off while it makes a chunk: it collects once
    each chunk is handed over. The parent's collector is back to normal once the child started."""

    def chunks(folder):
        cycle = weakref.ref(Cyclic())
        yield gc.get_freeze_count(), gc.isenabled(), cycle() is not None
        yield cycle() is not None

    made = producer.made_in_child(chunks)
    frozen, collecting, kept = next(made)
    assert frozen > 1000  # the test process's own objects, frozen in the child
    assert not collecting and kept  # no pass while the chunk was made
    assert next(made) is False  # collected after the first chunk was handed over
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    assert list(made) == []
