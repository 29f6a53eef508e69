"""Crafted input to the console's pages is a page that says what is wrong, never a 500; a stored
payload deep or large is shown bounded."""

import base64
import json

from helpers import stored_row

from lyftr import store
from lyftr.api.schemas import Q_MAX


def test_a_crafted_cursor_is_refused_not_a_500(client, send):
    send()
    cursor = base64.urlsafe_b64encode(b"[" * 1500).decode()
    response = client.get("/ui", query_string={"cursor": cursor})
    assert response.status_code == 400
    assert "not valid" in response.get_data(as_text=True)
    # A conversation pages by number: a crafted one is no 500 either.
    for page in ("9" * 5000, "-1", "[" * 1500):
        response = client.get("/ui/senders/%2B919876543210", query_string={"page": page})
        assert response.status_code < 500, page


def test_the_search_is_limited_to_256_characters(client, send):
    send()
    assert client.get("/ui", query_string={"q": "a" * Q_MAX}).status_code == 200
    response = client.get("/ui", query_string={"q": "a" * (Q_MAX + 1)})
    assert response.status_code == 422
    assert f"limited to {Q_MAX} characters" in response.get_data(as_text=True)


def test_a_deep_or_large_payload_is_shown_bounded(app, client):
    deep = "[" * 961 + "]" * 961
    large = json.dumps({"blob": "x" * 1_000_000})
    with app.app_context():
        store.insert_batch(
            [
                stored_row("deep", provider="whatsapp", raw=deep),
                stored_row("large", provider="whatsapp", raw=large),
            ]
        )
    for message_id in ("deep", "large"):
        page = client.get(f"/ui/messages/{message_id}")
        assert page.status_code == 200, message_id
        assert len(page.get_data()) < 100_000, message_id
    assert "more characters" in client.get("/ui/messages/large").get_data(as_text=True)
