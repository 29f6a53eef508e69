"""What an operator sees: each command's stdout is its data only (logs, migrations and progress go
to stderr), and a mistake is one line saying what to do, a non-zero exit status, no traceback.

The commands run as operators run them, ``lyftr ...`` in a subprocess, where the logging set up by
the entry point is real."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SECRET, sample_message


def lyftr(*args, database_url, cwd=None, stdin=None):
    env = {**os.environ, "DATABASE_URL": database_url, "WEBHOOK_SECRET": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "lyftr", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(result, *phrases):
    """A mistake explained: one line on stderr, nothing on stdout, exit status not 0."""
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in lines[0]


def test_export_of_a_database_one_migration_behind_is_records_only(database_url, tmp_path):
    path = tmp_path / "in.ndjson"
    path.write_text(json.dumps(sample_message(message_id="m1")) + "\n", encoding="utf-8")
    assert lyftr("import", str(path), database_url=database_url).returncode == 0
    downgraded = lyftr("db", "downgrade", database_url=database_url)
    assert downgraded.returncode == 0, downgraded.stderr

    exported = lyftr("export", database_url=database_url)
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line)["message_id"] for line in exported.stdout.splitlines()] == ["m1"]
    assert "schema migrated" in exported.stderr  # the migration is told, on stderr


def test_export_of_a_missing_sqlite_database_creates_nothing(tmp_path):
    result = lyftr("export", database_url=f"sqlite:///{tmp_path}/typo.db")
    one_line_error(result, "there is no database at", "DATABASE_URL")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("postgresql://nobody@127.0.0.1:1/lyftr", "unreachable"),
        ("mysql://db/lyftr", "mysql is not supported"),
        ("not a url", "DATABASE_URL"),
    ],
)
def test_a_wrong_database_url_is_one_line(url, phrase):
    one_line_error(lyftr("export", database_url=url), phrase)


def test_a_wrong_database_url_is_one_line_under_flask_too():
    env = {**os.environ, "DATABASE_URL": "mysql://db/lyftr"}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "export"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    one_line_error(result, "mysql is not supported")


def test_backup_into_a_missing_folder_or_over_a_file_is_one_line(tmp_path):
    url = f"sqlite:///{tmp_path}/app.db"
    assert lyftr("seed", "--count", "5", database_url=url).returncode == 0
    one_line_error(
        lyftr("backup", str(tmp_path / "backups" / "x.db"), database_url=url),
        "mkdir -p",
    )
    one_line_error(lyftr("backup", str(tmp_path / "app.db"), database_url=url), "exists")


def test_seed_from_another_directory_and_its_stdout(tmp_path):
    url = f"sqlite:///{tmp_path}/app.db"
    result = lyftr("seed", "--count", "3", database_url=url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("seeded 3 new messages (0 skipped")
    assert len(result.stdout.splitlines()) == 1
    assert "schema migrated" in result.stderr


def test_import_counts_in_words(app, tmp_path):
    path = tmp_path / "in.ndjson"
    path.write_text(json.dumps(sample_message(message_id="g1")) + "\n{bad\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["import", str(path)])
    assert result.exit_code == 1
    assert "imported 1 new message (0 skipped: already stored or purged; 1 bad line)" in (
        result.stdout
    )
    assert "line 2:" in result.stderr and "line 2:" not in result.stdout


@pytest.mark.parametrize(
    ("before", "cutoff"),
    [
        ("2100-01-01", "2100-01-01T00:00:00.000000Z"),
        ("2100-01-01T00:00:00", "2100-01-01T00:00:00.000000Z"),
        ("2100-01-01T00:00:00+05:30", "2099-12-31T18:30:00.000000Z"),
    ],
)
def test_purge_takes_what_since_takes(app, send, before, cutoff):
    assert send(message_id="m1").status_code == 200
    result = app.test_cli_runner().invoke(args=["purge", "--before", before])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"purged 1 message received before {cutoff}\n"


def test_seed_after_a_purge_does_not_call_the_purged_stored(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed", "--count", "4"]).exit_code == 0
    assert runner.invoke(args=["purge", "--before", "2100-01-01"]).exit_code == 0
    again = runner.invoke(args=["seed", "--count", "4"])
    assert "seeded 0 new messages (4 skipped: already stored or purged)" in again.stdout


@pytest.mark.parametrize(
    ("url", "phrase"),
    [("localhost:8000", "unknown url type"), ("http://[::1", "--url is the server's base URL")],
)
def test_send_to_a_malformed_url_is_one_line(app, url, phrase):
    result = app.test_cli_runner().invoke(args=["send", "--url", url])
    assert result.exit_code == 1
    assert phrase in result.stderr and len(result.stderr.splitlines()) == 1
    assert isinstance(result.exception, SystemExit)


def test_purge_of_a_missing_database_creates_nothing(tmp_path):
    result = lyftr("purge", "--before", "2020-01-01", database_url=f"sqlite:///{tmp_path}/x.db")
    one_line_error(result, "there is no database")
    assert os.listdir(tmp_path) == []


def test_a_progress_bar_only_on_a_terminal_and_only_on_stderr(tmp_path):
    import pty

    controller, terminal = pty.openpty()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/app.db", "COLUMNS": "100"}
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "lyftr", "seed", "--count", "3000"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
        ) as process:
            os.close(terminal)
            drawn = b""
            while True:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # the process closed the terminal
                    break
                if not chunk:
                    break
                drawn += chunk
            stdout = process.stdout.read()
    finally:
        os.close(controller)
    assert process.returncode == 0
    assert b"seeding" in drawn and b"3000/3000" in drawn
    assert stdout.startswith("seeded 3000 new messages") and "seeding" not in stdout
    # Without a terminal: no bar at all.
    piped = lyftr("seed", "--count", "10", "--seed", "1", database_url=env["DATABASE_URL"])
    assert "seeding" not in piped.stderr
