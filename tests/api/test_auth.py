"""API_TOKEN: optional bearer-token protection of /messages, /stats and /metrics."""

import pytest
from helpers import SECRET

TOKEN = "read-token-123"
PROTECTED = ["/messages", "/stats", "/metrics"]
OPEN = ["/health/live", "/health/ready"]


@pytest.fixture
def guarded(make_app):
    return make_app(API_TOKEN=TOKEN).test_client()


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"bearer{TOKEN}"],
)
def test_protected_paths_refuse_without_the_token(guarded, path, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = guarded.get(path, headers=headers)
    assert response.status_code == 401
    assert response.json == {"detail": "missing or invalid bearer token"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_protected_paths_answer_with_the_token(guarded, path, scheme):
    response = guarded.get(path, headers={"Authorization": f"{scheme} {TOKEN}"})
    assert response.status_code == 200


@pytest.mark.parametrize("path", OPEN)
def test_health_stays_open(guarded, path):
    assert guarded.get(path).status_code == 200


def test_webhook_is_not_behind_the_token(guarded):
    from helpers import Sender

    assert Sender(guarded, SECRET)().status_code == 200


@pytest.mark.parametrize("path", PROTECTED)
def test_without_api_token_everything_is_open(client, path):
    assert client.get(path).status_code == 200


def test_responses_carry_nosniff_and_no_store(client):
    for path in PROTECTED + OPEN:
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
