"""Fixtures: an app on a temporary SQLite database, its test client and a signed-request helper."""

import json

import pytest

from lyftr import create_app
from lyftr.signing import sign

SECRET = "test-secret"


@pytest.fixture
def app(tmp_path):
    return create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": f"sqlite:///{tmp_path}/app.db"})


@pytest.fixture
def client(app):
    return app.test_client()


def sample_message(**overrides):
    message = {
        "message_id": "m1",
        "from": "+919876543210",
        "to": "+14155550100",
        "ts": "2025-01-15T10:00:00Z",
        "text": "Hello",
    }
    message.update(overrides)
    return message


class Sender:
    """Posts to /webhook the way the provider does: raw bytes, signed with the secret."""

    def __init__(self, client, secret=SECRET):
        self.client = client
        self.secret = secret

    def raw(self, body, signature=None, **headers):
        if isinstance(body, str):
            body = body.encode("utf-8")
        if signature is None:
            signature = sign(self.secret, body)
        return self.client.post("/webhook", data=body, headers={"X-Signature": signature, **headers})

    def __call__(self, message=None, **overrides):
        body = json.dumps(message if message is not None else sample_message(**overrides))
        return self.raw(body)


@pytest.fixture
def send(client):
    return Sender(client)


@pytest.fixture
def make_app(tmp_path):
    """Build another app with settings of the test's choosing (default: the ``app`` fixture's)."""

    def make(**overrides):
        config = {"WEBHOOK_SECRET": SECRET, "DATABASE_URL": f"sqlite:///{tmp_path}/app.db"}
        config.update(overrides)
        return create_app(config)

    return make


def stored_total(client):
    """How many messages the service holds, asked both ways the contract offers."""
    listed = client.get("/messages").get_json()["total"]
    counted = client.get("/stats").get_json()["total_messages"]
    assert listed == counted
    return listed


def assert_nothing_stored(client):
    assert stored_total(client) == 0
    assert client.get("/stats").get_json()["senders_count"] == 0


def metric(client, name, **labels):
    """The value of one sample scraped from /metrics (0.0 when the series does not exist yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0
