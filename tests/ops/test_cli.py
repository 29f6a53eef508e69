"""Operator commands: sign, send, seed's help, and what `flask db` says."""

import hashlib
import hmac
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import SECRET
from werkzeug.serving import make_server

from lyftr.__main__ import command_group


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def hmac_hex(secret, data):
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "data",
    [b'{"message_id":"m1"}', b'{"message_id": "m1"}\n', b"\xff\x00 not utf-8 \r\n", b""],
    ids=["compact", "trailing-newline", "binary", "empty"],
)
def test_sign_file(runner, tmp_path, data):
    path = tmp_path / "body.json"
    path.write_bytes(data)
    result = runner.invoke(args=["sign", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output == hmac_hex(SECRET, data) + "\n"


def test_sign_stdin(runner):
    data = b'{"message_id": "m1"}'
    result = runner.invoke(args=["sign", "-"], input=data)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == hmac_hex(SECRET, data)


def test_sign_matches_what_the_server_accepts(runner, client, tmp_path):
    path = tmp_path / "body.json"
    path.write_bytes(b'{"message_id":"cli","from":"+1","to":"+2","ts":"2025-01-15T10:00:00Z"}')
    signature = runner.invoke(args=["sign", str(path)]).output.strip()
    response = client.post("/webhook", data=path.read_bytes(), headers={"X-Signature": signature})
    assert response.status_code == 200


def test_sign_without_secret_fails(make_app, tmp_path):
    path = tmp_path / "body.json"
    path.write_bytes(b"{}")
    result = make_app(WEBHOOK_SECRET="").test_cli_runner().invoke(args=["sign", str(path)])
    assert result.exit_code != 0
    assert "WEBHOOK_SECRET" in result.output


def test_sign_missing_file_fails(runner, tmp_path):
    result = runner.invoke(args=["sign", str(tmp_path / "absent.json")])
    assert result.exit_code != 0
    assert "absent.json" in result.output


def test_init_db_is_gone(runner):
    # `flask db upgrade` applies the schema; there is no second way.
    result = runner.invoke(args=["init-db"])
    assert result.exit_code != 0
    assert "No such command" in result.output


@pytest.mark.parametrize("command", ["sign", "send"])
def test_signing_commands_say_they_need_the_secret(runner, command):
    result = runner.invoke(args=[command, "--help"])
    assert result.exit_code == 0, result.output
    assert "WEBHOOK_SECRET" in result.output
    assert "testsecret" in result.output


def test_seed_help_names_the_count_option(runner):
    result = runner.invoke(args=["seed", "--help"])
    assert result.exit_code == 0, result.output
    assert "seed [OPTIONS]\n" in result.output  # no positional argument
    assert "Bulk-load --count synthetic messages" in result.output
    assert " COUNT " not in result.output


def test_seed_without_bench_directory_fails_clearly(runner, monkeypatch):
    # As in the container image, which ships without bench/.
    monkeypatch.setitem(sys.modules, "bench.synthetic", None)
    result = runner.invoke(args=["seed", "--count", "1"])
    assert result.exit_code == 1
    assert "bench/synthetic.py" in result.output
    assert "Traceback" not in result.output


def test_db_help_names_the_migrations_directory(runner):
    for args in (["db", "--help"], ["db", "upgrade", "--help"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
        # click wraps the help text: compare it with its lines joined.
        assert "default: lyftr/store/migrations" in " ".join(result.output.split())
        assert 'default is "migrations"' not in result.output


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_send_unreachable_fails_cleanly(runner):
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(args=["send", "--url", url])
    assert result.exit_code != 0
    assert f"cannot reach {url}" in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def server(app):
    """The app served over real HTTP on a free local port, for ``send``."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_send_delivers_signed_message(runner, server, client):
    result = runner.invoke(
        args=[
            "send",
            "--url",
            server,
            "--message-id",
            "cli-1",
            "--ts",
            "2025-01-15T10:00:00Z",
            "--text",
            "hi",
        ]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("200 ")
    assert client.get("/messages").get_json()["data"] == [
        {
            "message_id": "cli-1",
            "from": "+919876543210",
            "to": "+14155550100",
            "ts": "2025-01-15T10:00:00Z",
            "text": "hi",
        }
    ]


def test_send_reports_rejection(make_app, app, server):
    # The CLI signs with another secret than the server's: the 401 is shown and the exit is 1.
    other = make_app(WEBHOOK_SECRET="other-secret", DATABASE_URL="sqlite:///:memory:")
    result = other.test_cli_runner().invoke(args=["send", "--url", server])
    assert result.exit_code == 1
    assert result.output.startswith("401 ")
    assert "invalid signature" in result.output


LYFTR_COMMANDS = ("backup", "db", "export", "import", "purge", "seed", "send", "serve", "sign")


def test_lyftr_lists_its_commands_only(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/app.db")
    result = CliRunner().invoke(command_group(), ["--help"], prog_name="lyftr")
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:")[1].split()
    names = [word for word in listed if word.isidentifier() and word.islower()]
    assert set(LYFTR_COMMANDS) <= set(names)
    for flask_own in ("run", "shell", "routes"):
        assert flask_own not in names
    for line in result.output.split("Commands:")[1].strip().splitlines():
        assert not line.rstrip().endswith("..."), line  # a whole one-line help each
    assert "--app" not in result.output


def test_lyftr_is_installed_with_the_package(tmp_path):
    script = Path(sys.executable).parent / "lyftr"
    if not script.exists():
        pytest.skip("lyftr is not installed in this environment (make test installs it)")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/app.db"}
    result = subprocess.run(
        [script, "sign", "-"],
        input=b"{}",
        env={**env, "WEBHOOK_SECRET": "k"},
        capture_output=True,
        check=True,
    )
    assert result.stdout.decode().strip() == hmac_hex("k", b"{}")
