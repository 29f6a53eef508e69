"""GET /openapi.json: it documents every route and every response, and it is a valid OpenAPI 3 document."""

import re

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import OpenAPIV30SpecValidator

from conftest import SECRET, sample_message

UNDOCUMENTED_ROUTES = {"static"}  # Flask's own; the app serves no static files
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
    """``node`` with every ``$ref`` into the document replaced by what it points to (no cycles here)."""
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
    """The response's status, media type and body are the ones the document gives for the operation."""
    operation = document["paths"][path][method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], f"{method} {path}: status {status} is not documented"
    documented = _resolve(operation["responses"][status], document)
    media_type = response.mimetype
    assert media_type in documented["content"], f"{method} {path} {status}: {media_type} not documented"
    schema = documented["content"][media_type]["schema"]
    body = response.get_json() if media_type == "application/json" else response.get_data(as_text=True)
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
        if rule.endpoint in UNDOCUMENTED_ROUTES:
            continue
        methods = {m.lower() for m in rule.methods - IMPLICIT_METHODS}
        routes.setdefault(_openapi_path(rule.rule), set()).update(methods)
    documented = {
        path: {key for key in item if key in {"get", "put", "post", "delete", "patch", "head", "options"}}
        for path, item in document["paths"].items()
    }
    assert routes == documented
    assert {"/webhook", "/messages", "/stats", "/health/live", "/health/ready", "/metrics",
            "/openapi.json"} <= set(routes)


def test_operations_have_ids_and_document_their_errors(document):
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    webhook = document["paths"]["/webhook"]["post"]
    assert set(webhook["responses"]) == {"200", "401", "413", "422", "500", "503"}
    assert "Retry-After" in webhook["responses"]["503"]["headers"]
    signature = [p for p in webhook["parameters"] if p["in"] == "header"]
    assert [(p["name"], p["required"]) for p in signature] == [("X-Signature", True)]
    messages = document["paths"]["/messages"]["get"]
    assert set(messages["responses"]) >= {"200", "401", "422"}
    params = {p["name"]: p for p in messages["parameters"]}
    assert set(params) == {"limit", "offset", "from", "since", "q", "cursor"}
    assert params["limit"]["schema"] == {"type": "integer", "default": 50, "minimum": 1, "maximum": 100}
    assert params["offset"]["schema"]["minimum"] == 0
    assert not any(p["required"] for p in params.values())
    # The bearer token is optional: documented as "no security or bearer".
    assert {} in messages["security"] and {"bearerAuth": []} in messages["security"]
    assert set(document["paths"]["/health/ready"]["get"]["responses"]) == {"200", "503"}
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_request_schema_matches_what_the_webhook_accepts(document):
    schema = _resolve(
        document["paths"]["/webhook"]["post"]["requestBody"]["content"]["application/json"]["schema"],
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

    from lyftr import storage

    def locked(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(storage, "insert_message", locked)
    unavailable = send()
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"]
    assert_documented(document, "POST", "/webhook", unavailable)
    monkeypatch.setattr(storage, "insert_message", broken)
    failed = send()
    assert failed.status_code == 500
    assert_documented(document, "POST", "/webhook", failed)
    monkeypatch.setattr(storage, "stats", locked)
    assert_documented(document, "GET", "/stats", client.get("/stats"))
    monkeypatch.setattr(storage, "list_messages", broken)
    assert_documented(document, "GET", "/messages", client.get("/messages"))


def test_document_is_built_once_per_app(client):
    assert client.get("/openapi.json").get_json() == client.get("/openapi.json").get_json()
    assert SECRET not in client.get("/openapi.json").get_data(as_text=True)


def test_a_cursor_spelling_a_lone_surrogate_is_refused_not_an_error(client, send, document):
    # Found while fuzzing: JSON escapes can spell a lone surrogate, which SQLite cannot bind (was a 500).
    import base64

    send()
    for position in ('["\\ud800", "m1"]', '["2025-01-15T10:00:00.", "\\udfff"]'):
        cursor = base64.urlsafe_b64encode(position.encode("ascii")).decode("ascii").rstrip("=")
        response = client.get(f"/messages?cursor={cursor}")
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["detail"][0]["loc"] == ["query", "cursor"]
        assert_documented(document, "GET", "/messages", response)
