"""The console's rejections page (/ui/rejections): refused deliveries, newest first."""

import json

from helpers import SECRET

from lyftr.providers.signing import sign


def post_unsigned(client, body=b'{"message_id": "x"}'):
    return client.post("/webhook", data=body, headers={"X-Signature": "0" * 64})


def test_a_refused_delivery_is_listed_with_its_reason(client, send):
    assert post_unsigned(client).status_code == 401
    body = json.dumps({"message_id": "bad", "from": "123"}).encode()
    assert (
        client.post("/webhook", data=body, headers={"X-Signature": sign(SECRET, body)}).status_code
        == 422
    )
    page = client.get("/ui/rejections")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "invalid signature" in text and "webhook" in text
    reasons = text[text.index("<tbody>") :].split("<tr>")[1:]
    assert len(reasons) == 2
    assert "from" in reasons[0] and "invalid signature" in reasons[1]  # newest (the 422) first
    assert "/ui/rejections" in client.get("/ui/overview").get_data(as_text=True)


def test_the_provider_filter_and_bad_values(client):
    assert post_unsigned(client).status_code == 401
    assert "invalid signature" not in client.get("/ui/rejections?provider=twilio").get_data(
        as_text=True
    )
    assert client.get("/ui/rejections?provider=nope").status_code == 400
    assert client.get("/ui/rejections?before=" + "9" * 5000).status_code == 400
    empty = client.get("/ui/rejections?provider=whatsapp").get_data(as_text=True)
    assert "No delivery has been refused from whatsapp" in empty
