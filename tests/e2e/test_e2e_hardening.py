"""Hardening that lives in the real server: warnings at start on a public bind (once per server,
not per worker), empty secrets refused before a worker starts, private file modes."""

import os
import stat
import subprocess

import pytest

from .server import REPO_ROOT, Server, gunicorn_executable, message

pytestmark = pytest.mark.e2e


def warnings_of(server):
    return [r for r in server.records() if r.get("logger") == "lyftr.startup"]


def test_weak_secrets_on_a_public_bind_are_warned_about_once(tmp_path, db_url):
    server = Server(
        tmp_path,
        name="public",
        secret="testsecret",
        database_url=db_url,
        workers=2,
        env={"API_TOKEN": "tiny-t0ken"},
        bind_host="0.0.0.0",
    )
    try:
        server.start()
        # Still ready and storing: the contract's WEBHOOK_SECRET rules stand.
        assert server.get("/health/ready").status == 200
        assert server.post_webhook(message()).status == 200
    finally:
        server.stop()
    warnings = warnings_of(server)
    assert [w["level"] for w in warnings] == ["WARNING", "WARNING"]
    assert {w["msg"].split()[0] for w in warnings} == {"WEBHOOK_SECRET", "API_TOKEN"}
    assert all("0.0.0.0:" in w["msg"] for w in warnings)
    assert "testsecret" not in server.output() and "tiny-t0ken" not in server.output()


def test_open_reads_on_a_public_bind_are_warned_about(tmp_path, db_url):
    server = Server(
        tmp_path,
        name="open",
        secret="s" * 32,
        database_url=db_url,
        workers=1,
        bind_host="0.0.0.0",
    )
    try:
        server.start()
    finally:
        server.stop()
    (warning,) = warnings_of(server)
    assert warning["msg"].startswith("API_TOKEN is not set")


def test_nothing_is_warned_about_on_loopback(start_server):
    server = start_server(env={"API_TOKEN": "tiny-t0ken"}, workers=1)
    server.stop()
    assert warnings_of(server) == []


def test_an_empty_secret_is_refused_before_any_worker_starts(tmp_path, db_url):
    server = Server(
        tmp_path,
        name="empty",
        secret="s" * 32,
        database_url=db_url,
        env={"STANDARD_WEBHOOKS_SECRET": "whsec_"},
    )
    env = server.environment()
    command = [gunicorn_executable(), "-c", "gunicorn.conf.py", "-b", "127.0.0.1:0", "wsgi:app"]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, timeout=60)
    assert done.returncode != 0
    output = (done.stdout + done.stderr).decode()
    assert "STANDARD_WEBHOOKS_SECRET" in output and "Traceback" not in output
    assert "Booting worker" not in output


@pytest.mark.sqlite_only
def test_a_served_database_and_its_wal_are_private(start_server, db_url):
    server = start_server(workers=2)
    assert server.post_webhook(message()).status == 200
    path = db_url.removeprefix("sqlite:///")
    files = [path + suffix for suffix in ("", "-wal", "-shm")]
    modes = {f: stat.S_IMODE(os.stat(f).st_mode) for f in files if os.path.exists(f)}
    assert path in modes and path + "-wal" in modes
    assert set(modes.values()) == {0o600}, modes
