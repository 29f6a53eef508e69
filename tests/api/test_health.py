"""GET /health/live and /health/ready."""

import os

import pytest
from helpers import stored_total


def test_live(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.is_json


def test_ready_when_configured(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.get_json()
    assert body["checks"] == {"webhook_secret": "ok", "database": "ok"}


def test_ready_creates_missing_directory(make_app, tmp_path):
    client = make_app(DATABASE_URL=f"sqlite:///{tmp_path}/a/b/c/app.db").test_client()
    assert client.get("/health/ready").status_code == 200
    assert (tmp_path / "a" / "b" / "c" / "app.db").is_file()


@pytest.fixture
def blocked(make_app, tmp_path):
    """An app whose database directory cannot be created: a regular file is in the way."""
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    app = make_app(DATABASE_URL=f"sqlite:///{blocker}/app.db")
    return app, blocker


def test_not_ready_when_database_cannot_be_opened(blocked):
    app, _ = blocked
    client = app.test_client()
    assert client.get("/health/live").status_code == 200
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert "database" in body["detail"]
    assert body["checks"]["database"] != "ok"
    assert body["checks"]["webhook_secret"] == "ok"


def test_ready_without_restart_once_database_can_be_opened(blocked, send):
    app, blocker = blocked
    client = app.test_client()
    assert client.get("/health/ready").status_code == 503
    assert client.get("/health/ready").status_code == 503  # stays down while blocked
    os.remove(blocker)
    response = client.get("/health/ready")
    assert response.status_code == 200, response.get_json()
    assert (blocker / "app.db").is_file()
    # and the same app now serves the whole API on the new database
    send.client = client
    assert send().status_code == 200
    assert stored_total(client) == 1


def test_not_ready_reports_both_failures(make_app, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    client = make_app(WEBHOOK_SECRET="", DATABASE_URL=f"sqlite:///{blocker}/app.db").test_client()
    response = client.get("/health/ready")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["webhook_secret"] != "ok"
    assert checks["database"] != "ok"


def test_readiness_shows_the_cause_only_and_logs_the_error(make_app, caplog):
    caplog.set_level("WARNING", logger="lyftr.api.health")
    url = "postgresql+psycopg://lyftr_user@127.0.0.1:1/private_db"
    client = make_app(DATABASE_URL=url, DB_CONNECT_TIMEOUT_S=1).test_client()
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert response.get_json()["checks"]["database"] == "unavailable: unreachable"
    for private in ("127.0.0.1", "private_db", "lyftr_user", "psycopg", "port"):
        assert private not in body, private
    (record,) = [r for r in caplog.records if r.name == "lyftr.api.health"]
    assert "unreachable" in record.getMessage() and "127.0.0.1" in record.error
