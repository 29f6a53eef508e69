"""The feed and the data's lifecycle through the real server: several Gunicorn workers (and, on
PostgreSQL, two servers on one database) writing while a consumer follows the feed; long polls
woken by another worker's commit; a backup and automatic retention while ingesting."""

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .server import message, new_id

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def follow(server, after, seen, limit=50):
    page = server.get_json(f"/feed?after={after}&limit={limit}")
    seen += [item["message_id"] for item in page["data"]]
    if page["data"]:
        assert page["next_after"] == page["data"][-1]["seq"] > after
    return page["next_after"]


def deliver_all(servers, ids, threads=8):
    def post(i_id):
        i, message_id = i_id
        for _attempt in range(20):  # a busy database answers 503: retried, as providers do
            response = servers[i % len(servers)].post_webhook(message(message_id))
            if response.status != 503:
                break
            time.sleep(0.05)
        assert response.status == 200, response.body

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(post, enumerate(ids)))


def test_every_message_once_while_writers_run(start_server, backend):
    first = start_server(workers=4)
    # On PostgreSQL a second host shares the database: commits interleave across hosts.
    servers = [first, start_server(workers=2)] if backend == "postgres" else [first]
    ids = [new_id("feed") for _ in range(600)]
    writer = threading.Thread(target=deliver_all, args=(servers, ids))
    writer.start()
    seen, after = [], 0
    while writer.is_alive():
        after = follow(servers[len(seen) % len(servers)], after, seen)
    writer.join()
    while True:
        before = len(seen)
        after = follow(first, after, seen)
        if len(seen) == before:
            break
    assert len(seen) == len(set(seen)), "a message was handed out twice"
    assert sorted(seen) == sorted(ids), "a message was never handed out"


def test_long_poll_is_woken_by_another_workers_commit(start_server):
    server = start_server(workers=2)
    answers = {}

    def wait():
        answers["page"] = server.get_json("/feed?after=0&wait=20")
        answers["at"] = time.monotonic()

    waiters = [threading.Thread(target=wait) for _ in range(1)]
    for waiter in waiters:
        waiter.start()
    time.sleep(1.0)
    # Waiting holds no worker: the server still answers everything else meanwhile.
    for _ in range(20):
        assert server.get("/health/live").status == 200
    committed = time.monotonic()
    assert server.post_webhook(message("woken")).status == 200
    for waiter in waiters:
        waiter.join(20)
    assert [item["message_id"] for item in answers["page"]["data"]] == ["woken"]
    assert answers["at"] - committed < 1.0


@pytest.mark.sqlite_only
def test_backup_while_ingesting(start_server, tmp_path):
    server = start_server(workers=2)
    acknowledged_before, stop, failures = [], threading.Event(), []
    for _ in range(200):
        body = message(new_id("pre"))
        assert server.post_webhook(body).status == 200
        acknowledged_before.append(body["message_id"])

    def ingest():
        while not stop.is_set():
            response = server.post_webhook(message(new_id("during")))
            if response.status != 200:
                failures.append(response.status)

    loaders = [threading.Thread(target=ingest) for _ in range(4)]
    for loader in loaders:
        loader.start()
    time.sleep(0.3)
    snapshot = tmp_path / "snapshot.db"
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "backup", str(snapshot)],
        cwd=ROOT,
        env={**os.environ, **server.environment()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    time.sleep(0.3)
    stop.set()
    for loader in loaders:
        loader.join()
    assert result.returncode == 0, result.stderr
    assert failures == [], "ingest saw errors during the backup"
    with sqlite3.connect(snapshot) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in copy.execute("SELECT message_id FROM messages")}
    copy.close()
    assert set(acknowledged_before) <= stored

    # Restore, as documented: stop, replace the file, start.
    server.stop()
    database = Path(server.database_url.removeprefix("sqlite:///"))
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    database.write_bytes(snapshot.read_bytes())
    restored = start_server(workers=2, database_url=server.database_url)
    listed = {row["message_id"] for row in restored.all_messages(page_size=100)}
    assert listed == stored


def test_retention_purges_while_serving(start_server):
    server = start_server(
        workers=2, env={"RETENTION_DAYS": str(5 / 86400), "RETENTION_INTERVAL_S": "1"}
    )
    assert server.post_webhook(message("old")).status == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.get_json("/stats")["total_messages"]:
        time.sleep(0.5)
    assert server.get_json("/stats")["total_messages"] == 0
    assert server.get("/messages/old").status == 404
    # A provider retrying the purged message is answered as for a duplicate; nothing is stored.
    assert server.post_webhook(message("old")).status == 200
    assert server.get_json("/stats")["total_messages"] == 0
    assert server.post_webhook(message("new")).status == 200
    assert [row["message_id"] for row in server.all_messages()] == ["new"]

    def said_purged():
        return any('"retention: purged"' in json.dumps(record) for record in server.records())

    # Said once the purge ends: after the pause that follows its last batch.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not said_purged():
        time.sleep(0.1)
    assert said_purged()


def test_export_while_serving_then_import_into_another_host(start_server, tmp_path, backend):
    # The path from one database to another (SQLite to PostgreSQL, say): export from a serving
    # host, import into an empty database, and a server on it answers alike.
    source = start_server(workers=2)
    for i in range(120):
        body = message(f"x{i:03d}", text=f"word{i % 7} café", from_=f"+9190000000{i % 5}")
        assert source.post_webhook(body).status == 200
    env = {**os.environ, **source.environment()}
    exported = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "export"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.splitlines()
    assert len(lines) == 120 and json.loads(lines[0])["message_id"] == "x000"

    dump = tmp_path / "all.ndjson"
    dump.write_text(exported.stdout, encoding="utf-8")
    target_url = f"sqlite:///{tmp_path}/target.db"
    imported = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "import", str(dump)],
        cwd=ROOT,
        env={**env, "DATABASE_URL": target_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    assert "imported 120 new messages" in imported.stdout
    target = start_server(workers=2, database_url=target_url)
    for path in ("/stats", "/messages?q=word3", "/messages?from=%2B91900000002&limit=100"):
        assert target.get_json(path) == source.get_json(path), path
    assert target.all_messages() == source.all_messages()


def test_a_seed_into_a_serving_database_loses_no_delivery_beside_it(start_server, db_url):
    # The bulk loader takes the write lock one chunk at a time (a chunk attached from its staged
    # file): deliveries go on between chunks, each acknowledged one stored and numbered once.
    server = start_server(workers=2)
    count = 120_000  # four chunks: 5,000, then 50,000 at a time
    seed = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "seed", "--count", str(count)],
        cwd=ROOT,
        env={**os.environ, **server.environment()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    delivered = []
    while seed.poll() is None or not delivered:
        body = message(f"live-{len(delivered):05d}", text=f"live word{len(delivered)}")
        assert server.post_webhook(body).status == 200
        delivered.append(body["message_id"])
    out, err = seed.communicate(timeout=180)
    assert seed.returncode == 0, err
    assert len(delivered) >= 20  # the load and the deliveries overlapped
    assert f"seeded {count} new messages" in out, out
    assert server.get_json("/stats")["total_messages"] == count + len(delivered)
    items = _feed(server)
    assert [item["seq"] for item in items] == sorted({item["seq"] for item in items})
    assert len({item["message_id"] for item in items}) == len(items) == count + len(delivered)
    assert {item["message_id"] for item in items} >= set(delivered)
    last = delivered[-1]
    found = server.get_json(f"/messages?q=word{len(delivered) - 1}")["data"]
    assert last in [item["message_id"] for item in found]


def _feed(server):
    """Every feed item, from the start, a page of 1,000 at a time."""
    items, after = [], 0
    while True:
        page = server.get_json(f"/feed?after={after}&limit=1000")
        if not page["data"]:
            return items
        items.extend(page["data"])
        after = page["next_after"]
