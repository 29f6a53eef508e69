"""Faults: a locked database, a database that appears late, a crash inside a handler.

Whatever fails, the answer is JSON (503 with Retry-After when a retry can succeed), nothing is
half-written, the request line says what happened, and the same app serves the next request.
"""

import json
import logging
import os
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import SECRET, Sender, metric, sample_message

import lyftr.store
from lyftr.logs import LineFormatter
from lyftr.providers.signing import sign

FORMATTER = LineFormatter()
TESTS = Path(__file__).parents[1]
BUSY_TIMEOUT_MS = 200


def request_lines(caplog, path=None):
    """The request log lines so far, formatted as they are written, as dicts."""
    return [
        json.loads(FORMATTER.format(record))
        for record in caplog.records
        if record.name == "lyftr.request" and (path is None or record.path == path)
    ]


def only(items):
    assert len(items) == 1, items
    return items[0]


def snapshot(client):
    """Everything a reader can see: the full listing and the stats."""
    listed, stats = client.get("/messages", query_string={"limit": 100}), client.get("/stats")
    assert listed.status_code == stats.status_code == 200
    return listed.get_json(), stats.get_json()


def assert_json(response, status):
    assert response.status_code == status, (response.status_code, response.get_data())
    assert response.mimetype == "application/json"
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "<html" not in text.lower()
    return response.get_json()


# --- (a) a database locked by another connection or process ------------------------------------

LOCK_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
connection.execute("ROLLBACK")
"""


@contextmanager
def exclusive_lock(path, holder):
    """Hold ``BEGIN EXCLUSIVE`` on ``path`` from a plain sqlite3 connection or another process."""
    if holder == "connection":
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
    else:
        process = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout.readline().strip() == "locked"
            yield
        finally:
            process.stdin.close()
            assert process.wait(timeout=30) == 0
            process.stdout.close()


@pytest.fixture
def busy(make_app, tmp_path):
    """An app with a short busy timeout and one message stored, and its database file."""
    app = make_app(DB_BUSY_TIMEOUT_MS=BUSY_TIMEOUT_MS)
    client = app.test_client()
    assert Sender(client)(message_id="m0").status_code == 200
    return client, tmp_path / "app.db"


@pytest.mark.sqlite_only
@pytest.mark.parametrize("holder", ["connection", "process"])
def test_webhook_503_while_database_locked_then_retry_stores_once(busy, caplog, holder):
    client, path = busy
    send = Sender(client)
    before = snapshot(client)
    unavailable_before = metric(client, "webhook_requests_total", result="unavailable")
    message = sample_message(message_id="m1", text="locked out")
    body = json.dumps(message).encode()

    caplog.set_level(logging.INFO, logger="lyftr.request")
    with exclusive_lock(path, holder):
        response = send.raw(body)
        body_503 = assert_json(response, 503)
        assert isinstance(body_503["detail"], str)
        assert int(response.headers["Retry-After"]) >= 0
        line = only(request_lines(caplog, "/webhook"))
        assert (line["level"], line["status"], line["result"]) == ("ERROR", 503, "unavailable")
        assert line["message_id"] == "m1" and line["dup"] is False
        assert line["cause"] == "locked"
        assert (
            metric(client, "webhook_requests_total", result="unavailable") == unavailable_before + 1
        )

    # Released: nothing of the refused delivery was written.
    assert snapshot(client) == before
    # The sender retries the same delivery on the same app: stored once, and once only.
    assert send.raw(body).status_code == 200
    assert send.raw(body).status_code == 200
    listed, stats = snapshot(client)
    assert [m["message_id"] for m in listed["data"]] == ["m0", "m1"]
    assert listed["data"][1] == message
    assert stats["total_messages"] == 2
    assert stats["messages_per_sender"] == [{"from": message["from"], "count": 2}]


@pytest.mark.sqlite_only
@pytest.mark.parametrize("failed_write_first", [False, True], ids=["reads-only", "after-a-503"])
def test_reads_while_database_locked(busy, failed_write_first):
    # In WAL mode a writer's lock, even BEGIN EXCLUSIVE, does not block readers: reads stay 200 and
    # the app stays ready, also after a delivery was refused with 503 because of that lock.
    client, path = busy
    before = snapshot(client)
    with exclusive_lock(path, "connection"):
        if failed_write_first:
            assert Sender(client)(message_id="m1").status_code == 503
        for url in ("/messages", "/stats", "/health/ready"):
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code, response.get_data())
            assert response.mimetype == "application/json"
        assert snapshot(client) == before
    assert snapshot(client) == before
    assert client.get("/health/ready").status_code == 200


@pytest.mark.sqlite_only
def test_lock_released_within_busy_timeout_is_not_an_error(make_app, tmp_path):
    # A writer that holds the lock briefly only delays a delivery: the busy timeout waits for it.
    client = make_app(DB_BUSY_TIMEOUT_MS=5000).test_client()
    assert client.get("/health/ready").status_code == 200
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LOCK_HOLDER.replace("sys.stdin.read()", "import time; time.sleep(0.3)"),
            str(tmp_path / "app.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "locked"
        assert Sender(client)().status_code == 200
    finally:
        assert process.wait(timeout=30) == 0
        process.stdout.close()
    assert client.get("/stats").get_json()["total_messages"] == 1


@pytest.mark.sqlite_only
@pytest.mark.parametrize("sender_known", [False, True], ids=["new-sender", "known-sender"])
def test_failure_mid_transaction_leaves_nothing_half_written(make_app, tmp_path, sender_known):
    # The message row is inserted first; the sender count after it fails: the row must go too.
    client = make_app().test_client()
    send = Sender(client)
    if sender_known:
        assert send(message_id="m0").status_code == 200
    else:
        assert send(message_id="m0", **{"from": "+10000000000"}).status_code == 200
    before = snapshot(client)
    with sqlite3.connect(tmp_path / "app.db") as connection:
        for event in ("INSERT", "UPDATE"):
            connection.execute(
                f"CREATE TRIGGER fail_{event.lower()} BEFORE {event} ON sender_counts "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
    connection.close()

    response = send(message_id="m1", text="half")
    assert response.status_code >= 500
    body = assert_json(response, response.status_code)
    assert "injected" not in json.dumps(body)
    assert snapshot(client) == before
    assert client.get("/messages", query_string={"q": "half"}).get_json()["total"] == 0

    with sqlite3.connect(tmp_path / "app.db") as connection:
        connection.execute("DROP TRIGGER fail_insert")
        connection.execute("DROP TRIGGER fail_update")
    connection.close()
    assert send(message_id="m1", text="half").status_code == 200
    listed, stats = snapshot(client)
    assert [m["message_id"] for m in listed["data"]] == ["m0", "m1"]
    assert stats["total_messages"] == sum(s["count"] for s in stats["messages_per_sender"]) == 2
    assert client.get("/messages", query_string={"q": "half"}).get_json()["total"] == 1


# --- (b) a database that is not there at start and appears later ---------------------------------
# (A directory blocked by a regular file is covered in test_health.py and test_errors.py.)


@pytest.mark.sqlite_only
def test_database_path_is_a_directory_at_start_then_appears(make_app, tmp_path, caplog):
    path = tmp_path / "app.db"
    path.mkdir()
    app = make_app()
    client, send = app.test_client(), Sender(app.test_client())
    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"].startswith("unavailable: unreachable")
    caplog.set_level(logging.INFO, logger="lyftr.request")
    for response in (send(), client.get("/messages"), client.get("/stats")):
        assert_json(response, 503)
        assert "Retry-After" in response.headers
    causes = [
        line.get("cause")
        for line in request_lines(caplog)
        if line["path"] in ("/webhook", "/messages", "/stats")
    ]
    assert causes == ["unreachable"] * 3

    path.rmdir()
    assert client.get("/health/ready").status_code == 200
    assert send().status_code == 200
    assert client.get("/messages").get_json()["data"] == [sample_message()]


@pytest.mark.sqlite_only
def test_file_that_is_not_a_database(make_app, tmp_path, caplog):
    path = tmp_path / "app.db"
    path.write_bytes(b"this is not a database\n" * 100)
    app = make_app()
    client, send = app.test_client(), Sender(app.test_client())
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"] != "ok"
    caplog.set_level(logging.INFO, logger="lyftr.request")
    for response in (send(), client.get("/messages"), client.get("/stats")):
        # Not a database is as unavailable as no database: 503 with Retry-After, never a 500.
        assert response.status_code == 503
        assert_json(response, 503)
        assert "Retry-After" in response.headers
    lines = [line for line in request_lines(caplog) if line["path"] != "/health/ready"]
    assert [(line["level"], line.get("cause")) for line in lines] == [("ERROR", "corrupt")] * 3

    path.unlink()
    assert client.get("/health/ready").status_code == 200
    assert send().status_code == 200
    assert client.get("/stats").get_json()["total_messages"] == 1


# --- (c) an unexpected exception inside a handler -------------------------------------------------


def crash(*args, **kwargs):
    raise RuntimeError("kaboom: internals")


@pytest.mark.parametrize(
    ("target", "request_"),
    [
        ("stats", lambda client: client.get("/stats", headers={"X-Request-ID": "fault-1"})),
        (
            "list_messages",
            lambda client: client.get("/messages", headers={"X-Request-ID": "fault-1"}),
        ),
        (
            "_read_tables",
            lambda client: client.get("/health/ready", headers={"X-Request-ID": "fault-1"}),
        ),
    ],
)
def test_crash_in_a_read_handler(client, monkeypatch, caplog, target, request_):
    monkeypatch.setattr(lyftr.store, target, crash)
    caplog.set_level(logging.INFO, logger="lyftr.request")
    response = request_(client)
    if target == "_read_tables":  # readiness turns any failure into "not ready"
        assert assert_json(response, 503)["checks"]["database"] != "ok"
    else:
        assert assert_json(response, 500) == {"detail": "internal error", "request_id": "fault-1"}
        assert response.headers["X-Request-ID"] == "fault-1"
        text = response.get_data(as_text=True)
        assert "kaboom" not in text and "RuntimeError" not in text
        line = only(request_lines(caplog))
        assert (line["level"], line["status"], line["request_id"]) == ("ERROR", 500, "fault-1")
        assert isinstance(line["exc_info"], str)
        assert (
            "Traceback" in line["exc_info"]
            and "RuntimeError: kaboom: internals" in line["exc_info"]
        )

    # The other endpoints keep working meanwhile, and the same one once the fault is gone.
    assert client.get("/health/live").status_code == 200
    monkeypatch.undo()
    assert request_(client).status_code == 200


def test_crash_while_storing_a_message(client, monkeypatch, caplog):
    send = Sender(client)
    errors_before = metric(client, "webhook_requests_total", result="error")
    monkeypatch.setattr(lyftr.store, "insert_message", crash)
    caplog.set_level(logging.INFO, logger="lyftr.request")
    body = json.dumps(sample_message(text="keep me")).encode()

    response = send.raw(body, **{"X-Request-ID": "fault-2"})
    assert assert_json(response, 500) == {"detail": "internal error", "request_id": "fault-2"}
    assert "kaboom" not in response.get_data(as_text=True)
    assert metric(client, "webhook_requests_total", result="error") == errors_before + 1
    line = only(request_lines(caplog, "/webhook"))
    assert (line["level"], line["status"], line["result"]) == ("ERROR", 500, "error")
    assert line["message_id"] == "m1" and line["dup"] is False
    assert "RuntimeError: kaboom: internals" in line["exc_info"]
    assert "keep me" not in json.dumps(line)

    monkeypatch.undo()
    assert send.raw(body).status_code == 200
    assert client.get("/messages").get_json()["data"] == [sample_message(text="keep me")]


def test_repeated_crashes_leave_no_state_behind(client, monkeypatch):
    # Many crashes in a row, then normal service: no state is left behind by a failed request.
    monkeypatch.setattr(lyftr.store, "insert_message", crash)
    send = Sender(client)
    for i in range(5):
        assert send(message_id=f"x{i}").status_code == 500
    monkeypatch.undo()
    for i in range(5):
        assert send(message_id=f"x{i}").status_code == 200
    assert client.get("/stats").get_json()["total_messages"] == 5


# --- (d) error bodies are never HTML -----------------------------------------------------------


def oversized(client):
    body = json.dumps(sample_message(text="x" * 70_000)).encode()
    return client.post("/webhook", data=body, headers={"X-Signature": sign(SECRET, body)})


@pytest.mark.parametrize(
    ("status", "call"),
    [
        (404, lambda c: c.get("/nope")),
        (404, lambda c: c.post("/nope", data=b"{}")),
        (404, lambda c: c.get("/webhook/")),
        (404, lambda c: c.get("/health")),
        (405, lambda c: c.get("/webhook")),
        (405, lambda c: c.post("/stats")),
        (405, lambda c: c.delete("/messages")),
        (405, lambda c: c.put("/health/live")),
        (405, lambda c: c.post("/metrics")),
        (413, oversized),
        (500, None),
    ],
)
def test_error_bodies_are_json(client, monkeypatch, status, call):
    if call is None:
        monkeypatch.setattr(lyftr.store, "stats", crash)
        call = lambda c: c.get("/stats", headers={"Accept": "text/html"})  # noqa: E731
    response = call(client)
    body = assert_json(response, status)
    assert set(body) >= {"detail"}
    assert not response.get_data(as_text=True).lstrip().startswith("<")
    if status == 405:
        assert response.headers["Allow"]
    if status == 413:
        assert isinstance(body["detail"], str)


def test_error_bodies_json_even_when_html_is_asked_for(client):
    for url in ("/nope", "/webhook"):
        response = client.get(url, headers={"Accept": "text/html,application/xhtml+xml"})
        assert response.status_code in (404, 405)
        assert response.mimetype == "application/json"


def test_413_declared_length_without_a_body_is_json(client):
    # A client announcing a huge body is refused on the header alone, before anything is read.
    response = client.post(
        "/webhook",
        data=b"",
        headers={"X-Signature": "0" * 64},
        environ_overrides={"CONTENT_LENGTH": str(10 * 1024 * 1024)},
    )
    assert_json(response, 413)


# --- (e) what an operator can act on: the cause in the log, readiness that sees it ---------------


@pytest.mark.sqlite_only
def test_writer_queue_timeout_is_locked_and_keeps_the_schema(busy, caplog):
    # The in-process writer queue timing out is a busy database, like SQLite's own busy timeout:
    # it must not make the next request re-check the schema, which would queue for the same lock.
    client, _ = busy
    writer = client.application.extensions["lyftr.storage"].writer
    caplog.set_level(logging.INFO, logger="lyftr.request")
    with writer.lock:  # another writer of this process holds its turn past the busy timeout
        assert_json(Sender(client)(message_id="m1"), 503)
        assert only(request_lines(caplog, "/webhook"))["cause"] == "locked"
        assert client.get("/messages").status_code == 200
        assert client.get("/health/ready").status_code == 200
    assert Sender(client)(message_id="m1").status_code == 200
    assert client.get("/stats").get_json()["total_messages"] == 2


@contextmanager
def small_filesystem(tmp_path, size="3m"):
    """A tmpfs of ``size`` at tmp_path/small (needs root, as the CI machine has)."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill(directory):
    """Write a file until the filesystem is full; return its path."""
    filler = directory / "filler"
    with open(filler, "wb") as file:
        try:
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        except OSError:
            pass
    return filler


@pytest.mark.sqlite_only
def test_disk_full_is_named_and_makes_readiness_fail(make_app, tmp_path, caplog):
    with small_filesystem(tmp_path) as disk:
        app = make_app(DATABASE_URL=f"sqlite:///{disk}/app.db")
        client, send = app.test_client(), Sender(app.test_client())
        assert send(message_id="m0").status_code == 200
        filler = fill(disk)

        caplog.set_level(logging.INFO, logger="lyftr.request")
        caplog.clear()  # only m1's line (m0's is captured too when INFO was already on)
        response = send(message_id="m1", text="x" * 4000)
        assert_json(response, 503)
        assert response.headers["Retry-After"]
        assert only(request_lines(caplog, "/webhook"))["cause"] == "disk full"
        ready = assert_json(client.get("/health/ready"), 503)
        assert ready["checks"]["database"] == "unavailable: cannot take writes: disk full"
        assert client.get("/stats").get_json()["total_messages"] == 1  # reads still work

        filler.unlink()
        assert client.get("/health/ready").status_code == 200
        assert send(message_id="m1", text="x" * 4000).status_code == 200
        assert [m["message_id"] for m in client.get("/messages").get_json()["data"]] == [
            "m0",
            "m1",
        ]


STORE_ONE = """
import sys
from helpers import Sender
from lyftr import create_app
app = create_app({"WEBHOOK_SECRET": "test-secret", "DATABASE_URL": sys.argv[1]})
assert Sender(app.test_client())(message_id="m0").status_code == 200
"""


@pytest.mark.sqlite_only
def test_read_only_filesystem_is_named_and_makes_readiness_fail(make_app, tmp_path, caplog):
    with small_filesystem(tmp_path) as disk:
        url = f"sqlite:///{disk}/app.db"
        # Stored by another process: a filesystem with files open for writing cannot become ro.
        path = os.pathsep.join((str(TESTS), str(TESTS.parent)))
        subprocess.run(
            [sys.executable, "-c", STORE_ONE, url],
            env={**os.environ, "PYTHONPATH": path},
            check=True,
        )
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        app = make_app(DATABASE_URL=url)
        client, send = app.test_client(), Sender(app.test_client())
        try:
            caplog.set_level(logging.INFO, logger="lyftr.request")
            assert_json(send(message_id="m1"), 503)
            assert only(request_lines(caplog, "/webhook"))["cause"] == "read-only"
            ready = assert_json(client.get("/health/ready"), 503)
            assert ready["checks"]["database"] == "unavailable: cannot take writes: read-only"
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        assert client.get("/health/ready").status_code == 200
        assert send(message_id="m1").status_code == 200
        assert client.get("/stats").get_json()["total_messages"] == 2
