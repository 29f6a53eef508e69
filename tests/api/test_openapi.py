"""GET /openapi.json.

It documents every route and every response, and it is a valid OpenAPI 3 document.
"""

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from helpers import SECRET, sample_message
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import OpenAPIV30SpecValidator
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import RequestValidator

from lyftr.api.response_schemas import EXAMPLE_MESSAGE_SID, EXAMPLE_WAMID

# Flask's static files (the console's stylesheet) and the console's HTML pages (lyftr.console).
# "root": / redirects a person to the console (/ui), which is not part of the API either.
UNDOCUMENTED_ROUTES = {"static", "root"}
UNDOCUMENTED_BLUEPRINTS = ("console.",)
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}  # added by Flask/werkzeug to every route


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _openapi_path(rule):
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _resolve(node, document):
    """``node`` with every ``$ref`` into the document replaced by what it points to.

    (No cycles here.)
    """
    if isinstance(node, dict):
        if "$ref" in node:
            target = document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve(target, document)
        return {key: _resolve(value, document) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(item, document) for item in node]
    return node


def assert_documented(document, method, path, response):
    """The response's status, media type and body are the ones the document gives.

    For the operation ``method`` ``path``.
    """
    operation = document["paths"][path][method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], f"{method} {path}: status {status} is not documented"
    documented = _resolve(operation["responses"][status], document)
    media_type = response.mimetype
    assert media_type in documented["content"], (
        f"{method} {path} {status}: {media_type} not documented"
    )
    schema = documented["content"][media_type]["schema"]
    body = (
        response.get_json() if media_type == "application/json" else response.get_data(as_text=True)
    )
    errors = sorted(OAS30Validator(schema).iter_errors(body), key=str)
    assert not errors, f"{method} {path} {status}: {[e.message for e in errors]}"
    for header, spec in documented.get("headers", {}).items():
        if spec.get("required"):
            assert header in response.headers


def test_document_is_valid_openapi_3(document):
    assert document["openapi"].startswith("3.0.")
    OpenAPIV30SpecValidator(document).validate()


def test_every_route_is_documented_with_its_methods(app, document):
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED_ROUTES or rule.endpoint.startswith(
            UNDOCUMENTED_BLUEPRINTS
        ):
            continue
        methods = {m.lower() for m in rule.methods - IMPLICIT_METHODS}
        routes.setdefault(_openapi_path(rule.rule), set()).update(methods)
    documented = {
        path: {
            key
            for key in item
            if key in {"get", "put", "post", "delete", "patch", "head", "options"}
        }
        for path, item in document["paths"].items()
    }
    assert routes == documented
    assert {
        "/webhook",
        "/webhooks/whatsapp",
        "/webhooks/twilio",
        "/messages",
        "/messages/{message_id}",
        "/stats",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
    } <= set(routes)


def test_operations_have_ids_and_document_their_errors(document):
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    webhook = document["paths"]["/webhook"]["post"]
    assert set(webhook["responses"]) == {"200", "401", "408", "413", "422", "500", "503"}
    assert "Retry-After" in webhook["responses"]["503"]["headers"]
    # X-Signature, or a Standard Webhooks signature: neither alone is required.
    signature = [p for p in webhook["parameters"] if p["in"] == "header"]
    assert [(p["name"], p["required"]) for p in signature] == [
        ("X-Signature", False),
        ("webhook-id", False),
        ("webhook-timestamp", False),
        ("webhook-signature", False),
        ("svix-id", False),
        ("svix-timestamp", False),
        ("svix-signature", False),
    ]
    messages = document["paths"]["/messages"]["get"]
    assert set(messages["responses"]) >= {"200", "401", "422"}
    params = {p["name"]: p for p in messages["parameters"]}
    assert set(params) == {"limit", "offset", "from", "since", "q", "cursor"}
    assert params["limit"]["schema"] == {
        "type": "integer",
        "default": 50,
        "minimum": 1,
        "maximum": 100,
    }
    assert params["offset"]["schema"]["minimum"] == 0
    assert not any(p["required"] for p in params.values())
    # The bearer token is optional: documented as "no security or bearer".
    assert {} in messages["security"] and {"bearerAuth": []} in messages["security"]
    assert set(document["paths"]["/health/ready"]["get"]["responses"]) == {"200", "503"}
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_request_schema_matches_what_the_webhook_accepts(document):
    schema = _resolve(
        document["paths"]["/webhook"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ],
        document,
    )
    validator = OAS30Validator(schema)
    assert validator.is_valid(sample_message())
    assert validator.is_valid(sample_message(text=None, extra="ignored"))
    assert validator.is_valid(sample_message(ts="2025-01-15T10:00:00.123456Z"))
    for invalid in (
        sample_message(**{"from": "919876543210"}),
        sample_message(to="+1234567890123456"),
        sample_message(ts="2025-01-15T10:00:00+00:00"),
        sample_message(message_id=""),
        sample_message(text="x" * 4097),
        sample_message(message_id=1),
    ):
        assert not validator.is_valid(invalid), invalid
    missing_ts = sample_message()
    del missing_ts["ts"]
    assert not validator.is_valid(missing_ts)


def test_webhook_responses_match_the_document(client, send, document):
    assert_documented(document, "POST", "/webhook", send())
    assert_documented(document, "POST", "/webhook", send())  # duplicate
    assert_documented(document, "POST", "/webhook", send.raw(b"{}", signature="0" * 64))
    assert_documented(document, "POST", "/webhook", send(sample_message(**{"from": "x", "ts": 5})))
    assert_documented(document, "POST", "/webhook", send.raw(b"[1, 2"))
    assert_documented(document, "POST", "/webhook", send.raw(b"x" * (64 * 1024 + 1)))


def test_read_responses_match_the_document(client, send, document):
    assert_documented(document, "GET", "/stats", client.get("/stats"))  # empty: null timestamps
    assert_documented(document, "GET", "/messages", client.get("/messages"))
    send()
    send(sample_message(message_id="m2", text=None))
    assert_documented(document, "GET", "/messages", client.get("/messages?limit=1"))
    assert_documented(document, "GET", "/messages", client.get("/messages?limit=0&since=x"))
    assert_documented(document, "GET", "/stats", client.get("/stats"))
    assert_documented(document, "GET", "/metrics", client.get("/metrics"))
    assert_documented(document, "GET", "/health/live", client.get("/health/live"))
    assert_documented(document, "GET", "/health/ready", client.get("/health/ready"))
    assert_documented(document, "GET", "/openapi.json", client.get("/openapi.json"))


def test_not_configured_responses_match_the_document(make_app, document):
    client = make_app(WEBHOOK_SECRET="", API_TOKEN="t0ken").test_client()
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert_documented(document, "GET", "/health/ready", ready)
    refused = client.post("/webhook", data=b"{}", headers={"X-Signature": "0" * 64})
    assert refused.status_code == 503
    assert_documented(document, "POST", "/webhook", refused)
    for path in ("/messages", "/stats", "/metrics"):
        unauthorized = client.get(path)
        assert unauthorized.status_code == 401
        assert_documented(document, "GET", path, unauthorized)
    # The document itself is never behind the token.
    assert client.get("/openapi.json").status_code == 200


def test_database_errors_match_the_document(client, send, document, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from lyftr import store

    def locked(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(store, "insert_message", locked)
    unavailable = send()
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"]
    assert_documented(document, "POST", "/webhook", unavailable)
    monkeypatch.setattr(store, "insert_message", broken)
    failed = send()
    assert failed.status_code == 500
    assert_documented(document, "POST", "/webhook", failed)
    monkeypatch.setattr(store, "stats", locked)
    assert_documented(document, "GET", "/stats", client.get("/stats"))
    monkeypatch.setattr(store, "list_messages", broken)
    assert_documented(document, "GET", "/messages", client.get("/messages"))


def test_document_is_built_once_per_app(client):
    assert client.get("/openapi.json").get_json() == client.get("/openapi.json").get_json()
    assert SECRET not in client.get("/openapi.json").get_data(as_text=True)


def test_a_cursor_spelling_a_lone_surrogate_is_refused_not_an_error(client, send, document):
    # Found while fuzzing: JSON escapes can spell a lone surrogate, which SQLite cannot bind (was a
    # 500).
    import base64

    send()
    for position in ('["\\ud800", "m1"]', '["2025-01-15T10:00:00.", "\\udfff"]'):
        cursor = base64.urlsafe_b64encode(position.encode("ascii")).decode("ascii").rstrip("=")
        response = client.get(f"/messages?cursor={cursor}")
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["detail"][0]["loc"] == ["query", "cursor"]
        assert_documented(document, "GET", "/messages", response)


# --- the providers' endpoints and the message record --------------------------------------------
# Requests are signed with the providers' own code where there is one (twilio's RequestValidator,
# the standardwebhooks reference library); Meta's signature is a plain HMAC-SHA256 of the body.

VERIFY_TOKEN = "verify-token"
APP_SECRET = "whatsapp-app-secret"
TWILIO_TOKEN = "twilio-auth-token"
PUBLIC_BASE_URL = "https://lyftr.example.com"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32byt").decode()
PROVIDER_CONFIG = {
    "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
    "WHATSAPP_APP_SECRET": APP_SECRET,
    "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    "STANDARD_WEBHOOKS_SECRET": STANDARD_SECRET,
}
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@pytest.fixture
def providers(make_app):
    """A test client of an app with every provider configured."""
    return make_app(**PROVIDER_CONFIG).test_client()


def whatsapp_message(message_id, kind="text", **fields):
    """A message object as Meta's webhook reference shapes it."""
    message = {"from": "16505551234", "id": message_id, "timestamp": "1749416383", "type": kind}
    content = {
        "text": {"body": "Does it come in another color?"},
        "image": {"caption": "the red one", "mime_type": "image/jpeg", "sha256": "x", "id": "1"},
        "reaction": {"message_id": "wamid.earlier", "emoji": "\U0001f44d"},
        "interactive": {"type": "button_reply", "button_reply": {"id": "b1", "title": "Yes"}},
        "location": {"latitude": 37.48, "longitude": -122.14, "name": "Main St"},
    }
    if kind in content:
        message[kind] = content[kind]
    message.update(fields)
    return message


def whatsapp_notification(messages=(), statuses=(), field="messages"):
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
    }
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": field, "value": value}]}],
    }


def post_whatsapp(client, payload, secret=APP_SECRET, signature=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
    if signature is None:
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    if signature is not False:
        headers["X-Hub-Signature-256"] = signature
    return client.post("/webhooks/whatsapp", data=body, headers=headers)


def twilio_form(sid="SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", **fields):
    form = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": "+14155550123",
        "To": "+14155550100",
        "Body": "Hello from Twilio",
        "NumMedia": "0",
    }
    form.update(fields)
    return {name: value for name, value in form.items() if value is not None}


def post_twilio(client, form, token=TWILIO_TOKEN, signature=None):
    if signature is None:
        url = PUBLIC_BASE_URL + "/webhooks/twilio"
        signature = RequestValidator(token).compute_signature(url, form)
    headers = {} if signature is False else {"X-Twilio-Signature": signature}
    return client.post("/webhooks/twilio", data=form, headers=headers)


def post_standard_webhook(client, message, *, sent_at=None, secret=STANDARD_SECRET):
    body = json.dumps(message)
    sent_at = sent_at or datetime.now(UTC)
    headers = {
        "webhook-id": "msg_" + message["message_id"],
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_" + message["message_id"], sent_at, body),
        "Content-Type": "application/json",
    }
    return client.post("/webhook", data=body.encode("utf-8"), headers=headers)


def _component(document, name):
    return _resolve(document["components"]["schemas"][name], document)


def test_whatsapp_handshake_matches_the_document(providers, make_app, document):
    ok = providers.get(
        "/webhooks/whatsapp",
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "1158201444"
    assert ok.mimetype == "text/plain"
    assert_documented(document, "GET", "/webhooks/whatsapp", ok)
    for query in (
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {},
    ):
        refused = providers.get("/webhooks/whatsapp", query_string=query)
        assert refused.status_code == 403, query
        assert_documented(document, "GET", "/webhooks/whatsapp", refused)
    unconfigured = make_app().test_client()
    response = unconfigured.get(
        "/webhooks/whatsapp",
        query_string={"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"},
    )
    assert response.status_code == 503
    assert_documented(document, "GET", "/webhooks/whatsapp", response)


def test_whatsapp_notifications_match_the_document(providers, make_app, document):
    schema = OAS30Validator(_component(document, "WhatsAppNotification"))
    sent = [
        whatsapp_notification([whatsapp_message(EXAMPLE_WAMID)]),
        whatsapp_notification(
            [
                whatsapp_message("wamid.image", "image"),
                whatsapp_message("wamid.reaction", "reaction"),
                whatsapp_message("wamid.interactive", "interactive"),
                whatsapp_message("wamid.location", "location"),
            ]
        ),
        # A user known only by a business-scoped user ID: no 'from'.
        whatsapp_notification(
            [
                {
                    **whatsapp_message("wamid.bsuid"),
                    "from": None,
                    "from_user_id": "US.13491208655302741918",
                }
            ]
        ),
        whatsapp_notification(
            statuses=[
                {
                    "id": "wamid.out",
                    "status": "delivered",
                    "timestamp": "1749416383",
                    "recipient_id": "16505551234",
                }
            ]
        ),
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "1", "changes": [{"field": "account_update", "value": {"event": "X"}}]}
            ],
        },
    ]
    sent[2]["entry"][0]["changes"][0]["value"]["messages"][0].pop("from")
    for payload in sent:
        assert schema.is_valid(payload), payload
        response = post_whatsapp(providers, payload)
        assert response.status_code == 200, response.get_json()
        assert_documented(document, "POST", "/webhooks/whatsapp", response)
    redelivered = post_whatsapp(providers, sent[0])
    assert redelivered.status_code == 200
    assert_documented(document, "POST", "/webhooks/whatsapp", redelivered)

    for payload in ({"entry": []}, {"object": "x", "entry": {}}, []):
        assert not schema.is_valid(payload), payload
    refusals = [
        (401, post_whatsapp(providers, sent[0], signature=False)),
        (401, post_whatsapp(providers, sent[0], secret="another secret")),
        (422, post_whatsapp(providers, b"{not json")),
        (422, post_whatsapp(providers, {"object": 1, "entry": []})),
        (422, post_whatsapp(providers, {"object": "whatsapp_business_account"})),
        (413, post_whatsapp(providers, b" " * (4 * 1024 * 1024 + 1))),
        (503, post_whatsapp(make_app().test_client(), sent[0])),
    ]
    for status, response in refusals:
        assert response.status_code == status, (status, response.get_json())
        assert_documented(document, "POST", "/webhooks/whatsapp", response)


def test_twilio_responses_match_the_document(providers, make_app, document):
    schema = OAS30Validator(_component(document, "TwilioMessage"))
    form = twilio_form(EXAMPLE_MESSAGE_SID)
    assert schema.is_valid(form)
    stored = post_twilio(providers, form)
    assert stored.status_code == 200, stored.get_data(as_text=True)
    assert stored.mimetype == "text/xml" and stored.get_data(as_text=True) == TWIML
    assert_documented(document, "POST", "/webhooks/twilio", stored)
    duplicate = post_twilio(providers, form)
    assert duplicate.status_code == 200
    assert_documented(document, "POST", "/webhooks/twilio", duplicate)
    whatsapp = twilio_form("SMbbbb", From="whatsapp:+14155550123", To="whatsapp:+14155550100")
    assert schema.is_valid(whatsapp)
    assert_documented(document, "POST", "/webhooks/twilio", post_twilio(providers, whatsapp))

    assert not schema.is_valid(twilio_form(MessageSid=None))
    refusals = [
        (401, post_twilio(providers, form, signature=False)),
        (401, post_twilio(providers, form, token="another token")),
        (
            401,
            post_twilio(
                providers,
                {**form, "Body": "changed after signing"},
                signature=RequestValidator(TWILIO_TOKEN).compute_signature(
                    PUBLIC_BASE_URL + "/webhooks/twilio", form
                ),
            ),
        ),
        (422, post_twilio(providers, twilio_form(MessageSid=None))),
        (422, post_twilio(providers, twilio_form(From=""))),
        (413, post_twilio(providers, twilio_form(Body="x" * (64 * 1024)))),
        (503, post_twilio(make_app().test_client(), form)),
    ]
    for status, response in refusals:
        assert response.status_code == status, (status, response.get_data(as_text=True))
        assert_documented(document, "POST", "/webhooks/twilio", response)


def test_standard_webhooks_deliveries_match_the_document(providers, client, document):
    stored = post_standard_webhook(providers, sample_message(message_id="sw-1"))
    assert stored.status_code == 200, stored.get_json()
    assert_documented(document, "POST", "/webhook", stored)
    replayed = post_standard_webhook(
        providers,
        sample_message(message_id="sw-2"),
        sent_at=datetime.now(UTC) - timedelta(minutes=6),
    )
    assert replayed.status_code == 401
    assert_documented(document, "POST", "/webhook", replayed)
    # Without STANDARD_WEBHOOKS_SECRET such a delivery is not signed at all.
    unconfigured = post_standard_webhook(client, sample_message(message_id="sw-3"))
    assert unconfigured.status_code == 401
    assert_documented(document, "POST", "/webhook", unconfigured)


def test_message_records_match_the_document(providers, send, make_app, document):
    send(sample_message(message_id="contract/with/slashes"))
    post_whatsapp(providers, whatsapp_notification([whatsapp_message(EXAMPLE_WAMID, "image")]))
    post_twilio(providers, twilio_form(EXAMPLE_MESSAGE_SID, NumMedia="1", MediaUrl0="https://x"))
    providers_seen = {}
    for message_id in ("contract/with/slashes", EXAMPLE_WAMID, EXAMPLE_MESSAGE_SID):
        response = providers.get(f"/messages/{message_id}")
        assert response.status_code == 200, response.get_json()
        assert_documented(document, "GET", "/messages/{message_id}", response)
        record = response.get_json()
        providers_seen[record["provider"]] = record
    assert set(providers_seen) == {"webhook", "whatsapp", "twilio"}
    assert providers_seen["webhook"]["raw"] is None
    assert providers_seen["whatsapp"]["raw"]["message"]["image"]["caption"] == "the red one"
    assert providers_seen["twilio"]["raw"]["MediaUrl0"] == "https://x"

    missing = providers.get("/messages/no-such-message")
    assert missing.status_code == 404
    assert_documented(document, "GET", "/messages/{message_id}", missing)
    guarded = make_app(API_TOKEN="t0ken").test_client()
    unauthorized = guarded.get(f"/messages/{EXAMPLE_WAMID}")
    assert unauthorized.status_code == 401
    assert_documented(document, "GET", "/messages/{message_id}", unauthorized)
    authorized = guarded.get(
        f"/messages/{EXAMPLE_WAMID}", headers={"Authorization": "Bearer t0ken"}
    )
    assert authorized.status_code == 200
    assert_documented(document, "GET", "/messages/{message_id}", authorized)


def test_provider_database_errors_match_the_document(providers, document, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from lyftr import store

    def locked(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    for failure, status in ((locked, 503), (broken, 500)):
        monkeypatch.setattr(store, "insert_batch", failure)
        monkeypatch.setattr(store, "insert_message", failure)
        monkeypatch.setattr(store, "get_message", failure)
        notification = whatsapp_notification([whatsapp_message(f"wamid.{status}")])
        for method, path, response in (
            ("POST", "/webhooks/whatsapp", post_whatsapp(providers, notification)),
            ("POST", "/webhooks/twilio", post_twilio(providers, twilio_form(f"SM{status}"))),
            ("GET", "/messages/{message_id}", providers.get("/messages/m1")),
        ):
            assert response.status_code == status, (path, response.get_json())
            assert_documented(document, method, path, response)
            if status == 503:
                assert response.headers["Retry-After"]
