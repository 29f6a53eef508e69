"""The data's way in and out: ``flask export`` and ``flask import`` (a round trip gives the same
answers), ``flask backup`` (a consistent SQLite copy; PostgreSQL says to use pg_dump)."""

import json
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest
from helpers import SECRET, sample_message, stored_row, stored_total

from lyftr import create_app, store


def test_export_and_import_round_trip(app, make_app, client, send, tmp_path):
    # Two senders, a provider message with a user ID as sender, a text with NUL, a null text.
    assert send(message_id="a", text="héllo wörld").status_code == 200
    assert send(message_id="b", text="nul\x00inside", **{"from": "+222"}).status_code == 200
    assert send(message_id="c", text=None).status_code == 200
    with app.app_context():
        raw = json.dumps({"id": "wa1", "type": "image"})
        row = stored_row("wa1", from_msisdn="US.1234", provider="whatsapp", type="image", raw=raw)
        assert store.insert_batch([row]) == 1
    exported = app.test_cli_runner().invoke(args=["export"])
    assert exported.exit_code == 0, exported.output
    lines = exported.output.splitlines()
    assert [json.loads(line)["message_id"] for line in lines] == ["a", "b", "c", "wa1"]

    path = tmp_path / "messages.ndjson"
    path.write_text(exported.output, encoding="utf-8")
    target = make_app(DATABASE_URL=f"sqlite:///{tmp_path}/copy.db")
    imported = target.test_cli_runner().invoke(args=["import", str(path)])
    assert imported.exit_code == 0, imported.output
    assert "imported 4 new messages" in imported.output
    again = target.test_cli_runner().invoke(args=["import", str(path)])
    assert (
        "imported 0 new messages (4 skipped: already stored or purged; 0 bad lines)" in again.output
    )

    copy = target.test_client()
    for query in ("", "?q=wörld", "?q=nul", "?from=%2B222", "?limit=2"):
        assert (
            copy.get(f"/messages{query}").get_json() == client.get(f"/messages{query}").get_json()
        )
    assert copy.get("/stats").get_json() == client.get("/stats").get_json()
    original, restored = (
        client.get("/messages/wa1").get_json(),
        copy.get("/messages/wa1").get_json(),
    )
    assert restored == original | {"seq": restored["seq"]}


def test_import_reports_bad_lines_and_stores_the_good(app, client, tmp_path):
    good = json.dumps(sample_message(message_id="g1"))
    lines = [good, "{not json", json.dumps(sample_message(message_id="g2", ts="yesterday")), ""]
    lines.append(json.dumps(sample_message(message_id="g3")))
    path = tmp_path / "in.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["import", str(path)])
    assert result.exit_code == 1
    assert (
        "line 2:" in result.output and "line 3:" in result.output and "line 5" not in result.output
    )
    assert (
        "imported 2 new messages (0 skipped: already stored or purged; 2 bad lines)"
        in result.output
    )
    assert stored_total(client) == 2


def test_backup_is_a_consistent_copy(app, send, tmp_path, backend):
    assert send(message_id="m1").status_code == 200
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "copy.db")])
    if backend == "postgres":
        assert result.exit_code != 0
        assert "pg_dump" in result.output
        return
    assert result.exit_code == 0, result.output
    restored = create_app(
        {"WEBHOOK_SECRET": SECRET, "DATABASE_URL": f"sqlite:///{tmp_path}/copy.db"}
    )
    listed = restored.test_client().get("/messages").get_json()
    assert [m["message_id"] for m in listed["data"]] == ["m1"]


def test_import_skips_purged_messages(app, client, send, tmp_path):
    # A purged message imported again stays purged, as a provider's retry of it would.
    for message_id in ("gone-1", "gone-2"):
        assert send(message_id=message_id).status_code == 200
    with app.app_context():
        assert store.purge("2999-01-01T00:00:00Z") == 2
    lines = [json.dumps(sample_message(message_id=i)) for i in ("gone-1", "new-1", "gone-2")]
    path = tmp_path / "in.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["import", str(path)])
    assert result.exit_code == 0, result.output
    assert "imported 1 new message (2 skipped: already stored or purged" in result.output
    listed = client.get("/messages").get_json()
    assert [m["message_id"] for m in listed["data"]] == ["new-1"] and listed["total"] == 1


def backup(app, path):
    return app.test_cli_runner().invoke(args=["backup", str(path)])


@pytest.mark.sqlite_only
def test_a_backup_is_a_new_file_for_its_owner_only(app, send, tmp_path, backend):
    assert send(message_id="m1").status_code == 200
    result = backup(app, tmp_path / "copy.db")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(tmp_path / "copy.db").st_mode) == 0o600


@pytest.mark.sqlite_only
@pytest.mark.parametrize("kind", ["empty-file", "file", "dangling-link", "link-to-file"])
def test_a_backup_never_overwrites_or_follows_a_link(app, send, tmp_path, backend, kind):
    send(message_id="m1")
    path, elsewhere = tmp_path / "copy.db", tmp_path / "elsewhere.db"
    if kind == "empty-file":
        path.touch(mode=0o666)
    elif kind == "file":
        path.write_bytes(b"keep me")
    elif kind == "dangling-link":
        path.symlink_to(elsewhere)
    else:
        elsewhere.write_bytes(b"keep me")
        path.symlink_to(elsewhere)
    result = backup(app, path)
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith("Error: ") and "exists" in line and "Traceback" not in result.output
    assert not (kind == "dangling-link" and elsewhere.exists())
    if kind in ("file", "link-to-file"):
        assert (elsewhere if kind == "link-to-file" else path).read_bytes() == b"keep me"


@pytest.mark.sqlite_only
def test_a_backup_to_a_file_uri_is_refused(app, send, tmp_path, backend, monkeypatch):
    send(message_id="m1")
    monkeypatch.chdir(tmp_path)
    result = backup(app, "file:copy.db?mode=rwc")
    assert result.exit_code == 1 and "file:" in result.output
    assert len(result.output.splitlines()) == 1
    assert not [p.name for p in tmp_path.iterdir() if "copy" in p.name]


def test_import_survives_hostile_lines_and_keeps_the_batch(app, client, tmp_path):
    future = datetime.now(UTC) + timedelta(days=365)
    lines = [
        json.dumps(sample_message(message_id="g1")).encode(),
        b"[" * 980 + b"]" * 980,  # a RecursionError in json.loads
        b'{"raw": ' + b"[" * 70 + b"]" * 70 + b', "message_id": "deep"}',
        b"\xff\xfe not utf-8",
        b'{"message_id": "dup", "message_id": "dup2"}',
        json.dumps(
            {
                **sample_message(message_id="future"),
                "received_at": future.isoformat().replace("+00:00", "Z"),
            }
        ).encode(),
        json.dumps(sample_message(message_id="g2")).encode(),
    ]
    path = tmp_path / "in.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = app.test_cli_runner().invoke(args=["import", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    for number in range(2, 7):
        assert f"line {number}:" in result.output, number
    assert "in the future" in result.output
    assert (
        "imported 2 new messages (0 skipped: already stored or purged; 5 bad lines)"
        in result.output
    )
    assert stored_total(client) == 2
