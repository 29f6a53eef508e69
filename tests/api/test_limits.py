"""What one request may hold in a worker: a body read within BODY_TIMEOUT_S (408), a turn among
BODY_READERS / LARGE_BODY_READERS bodies (503 with Retry-After), a place among FEED_WAITERS.
Under the test client; the same limits against real slow sockets: tests/e2e/test_e2e_hostile.py."""

import io
import json
import time

from helpers import SECRET, assert_nothing_stored, sample_message, stored_total

from lyftr.providers.signing import sign


class TrickleStream(io.BytesIO):
    """A request body whose every read takes ``pause`` seconds: a client sending slowly."""

    def __init__(self, data, pause):
        super().__init__(data)
        self.pause = pause

    def read(self, size=-1):
        time.sleep(self.pause)
        return super().read(min(size, 16) if size and size > 0 else 16)


def _signed(body):
    return {"X-Signature": sign(SECRET, body), "Content-Type": "application/json"}


def test_a_body_not_received_in_time_is_408_and_stores_nothing(make_app):
    client = make_app(BODY_TIMEOUT_S=0.01).test_client()
    body = json.dumps(sample_message()).encode()
    response = client.post(
        "/webhook",
        input_stream=TrickleStream(body, pause=0.05),
        content_length=len(body),
        headers=_signed(body),
    )
    assert response.status_code == 408
    assert response.get_json() == {"detail": "request body not received within 0.01 s"}
    assert_nothing_stored(client)


def test_a_body_received_in_time_is_stored(make_app):
    client = make_app(BODY_TIMEOUT_S=10).test_client()
    body = json.dumps(sample_message()).encode()
    response = client.post(
        "/webhook",
        input_stream=TrickleStream(body, pause=0),
        content_length=len(body),
        headers=_signed(body),
    )
    assert response.status_code == 200
    assert stored_total(client) == 1


def test_no_free_turn_to_read_a_body_is_503_with_retry_after(make_app):
    app = make_app(BODY_READERS=2, BODY_SLOT_WAIT_S=0.01)
    client = app.test_client()
    limits = app.wsgi_app
    body = json.dumps(sample_message()).encode()
    for _ in range(2):  # other requests are reading their bodies
        assert limits.readers.acquire(blocking=False)
    response = client.post("/webhook", data=body, headers=_signed(body))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json() == {
        "detail": "too many request bodies being read at once; retry shortly"
    }
    # Requests without a body need no turn.
    assert client.get("/health/live").status_code == 200
    limits.readers.release()
    assert client.post("/webhook", data=body, headers=_signed(body)).status_code == 200
    assert stored_total(client) == 1
    # The body was read whole: its turn was given back (one taken here, none leaked).
    assert limits.readers.acquire(blocking=False)
    assert not limits.readers.acquire(blocking=False)


def test_large_bodies_take_a_turn_of_their_own(make_app):
    app = make_app(LARGE_BODY_READERS=1, BODY_SLOT_WAIT_S=0.01, WHATSAPP_APP_SECRET="s" * 32)
    client = app.test_client()
    assert app.wsgi_app.large_readers.acquire(blocking=False)  # one large body being read
    large = b'{"object": "whatsapp_business_account", "entry": []}' + b" " * 100_000
    response = client.post("/webhooks/whatsapp", data=large, headers={"X-Hub-Signature-256": "x"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    # A small body is not held back by large ones.
    body = json.dumps(sample_message()).encode()
    assert client.post("/webhook", data=body, headers=_signed(body)).status_code == 200
    app.wsgi_app.large_readers.release()
    response = client.post("/webhooks/whatsapp", data=large, headers={"X-Hub-Signature-256": "x"})
    assert response.status_code == 401


def test_long_polls_beyond_feed_waiters_are_answered_at_once(make_app):
    app = make_app(FEED_WAITERS=1)
    client = app.test_client()
    with app.extensions["lyftr.feed_waiters"].slot() as waiting:  # another request is waiting
        assert waiting
        response = client.get("/feed?after=0&wait=30")
    assert response.status_code == 200
    assert response.get_json() == {"data": [], "next_after": 0}
    assert response.headers["Retry-After"] == "1"
    # A free place: the request waits as usual (a short wait, answered empty, no Retry-After).
    response = client.get("/feed?after=0&wait=1")
    assert response.get_json() == {"data": [], "next_after": 0}
    assert "Retry-After" not in response.headers


def test_the_probe_listener_serves_health_only(make_app):
    """PROBE_BIND's port (SERVER_PORT, as Gunicorn sets it from the listener) answers /health/*."""
    client = make_app(PROBE_PORT="8001").test_client()
    probe = {"SERVER_PORT": "8001"}
    assert client.get("/health/live", environ_overrides=probe).status_code == 200
    body = json.dumps(sample_message()).encode()
    for response in (
        client.get("/messages", environ_overrides=probe),
        client.post("/webhook", data=body, headers=_signed(body), environ_overrides=probe),
    ):
        assert response.status_code == 404
        assert response.get_json() == {"detail": "this port serves /health/* only"}
    assert_nothing_stored(client)
    assert client.get("/messages", environ_overrides={"SERVER_PORT": "8000"}).status_code == 200
