"""Every error answer is JSON: unknown URLs, wrong methods, crashes and an unreachable database."""

import os

import pytest
from helpers import sample_message, stored_total


def test_unknown_url_is_json_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.is_json
    assert isinstance(response.get_json()["detail"], str)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/webhook", {"POST"}),
        ("PUT", "/webhook", {"POST"}),
        ("POST", "/messages", {"GET", "HEAD", "OPTIONS"}),
        ("DELETE", "/stats", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_wrong_method_is_json_405(client, method, path, allowed):
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.is_json
    assert isinstance(response.get_json()["detail"], str)
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


@pytest.fixture
def crashing(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom: sensitive internals")

    return app.test_client()


def test_unexpected_error_is_json_500(crashing):
    response = crashing.get("/boom")
    assert response.status_code == 500
    assert response.is_json
    body = response.get_json()
    assert body == {"detail": "internal error", "request_id": response.headers["X-Request-ID"]}
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert "kaboom" not in text
    assert "RuntimeError" not in text


def test_500_reuses_incoming_request_id(crashing):
    response = crashing.get("/boom", headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert response.get_json()["request_id"] == "trace-500"


@pytest.fixture
def blocked(make_app, tmp_path):
    """An app whose database cannot be opened: a regular file is where its directory should be."""
    blocker = tmp_path / "afile"
    blocker.write_text("")
    app = make_app(DATABASE_URL=f"sqlite:///{blocker}/app.db")
    return app.test_client(), blocker


@pytest.mark.parametrize("path", ["/webhook", "/messages", "/stats"])
def test_database_unavailable_is_json_503(blocked, send, path):
    client, _ = blocked
    if path == "/webhook":
        send.client = client
        response = send()
    else:
        response = client.get(path)
    assert response.status_code == 503
    assert response.is_json
    assert isinstance(response.get_json()["detail"], str)
    assert "Traceback" not in response.get_data(as_text=True)


def test_database_recovers_without_restart(blocked, send):
    client, blocker = blocked
    send.client = client
    assert send().status_code == 503
    os.remove(blocker)
    assert send().status_code == 200
    assert stored_total(client) == 1
    assert client.get("/messages").get_json()["data"] == [sample_message()]


def test_double_slash_is_a_json_404_not_a_redirect(client):
    response = client.get("/health//live")
    assert response.status_code == 404
    assert response.is_json
