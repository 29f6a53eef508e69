"""GET /openapi.json: the OpenAPI 3 document of every endpoint, built from the marshmallow schemas.

Request and response bodies come from ``lyftr.schemas`` through apispec's marshmallow plugin, so the
document describes the schemas the code loads and the shapes it answers with. Every response an
operation can give is listed, errors included: the end-to-end tier runs schemathesis against it
(tests/e2e/test_schemathesis.py), which fails on any status, content type or body not documented here.
"""

import copy

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app

from . import schemas
from .config import MAX_BODY_BYTES
from .errors import RETRY_AFTER_SECONDS

OPENAPI_VERSION = "3.0.3"
JSON = "application/json"
SIGNATURE_PATTERN = r"^(sha256=)?[0-9a-fA-F]{64}$"

bp = Blueprint("openapi", __name__)

# Optional bearer token: required only when the service runs with API_TOKEN set.
OPTIONAL_BEARER = [{}, {"bearerAuth": []}]

_REQUEST_ID_HEADER = {
    "description": "The request's ID (an incoming X-Request-ID that looks like one is echoed back); "
    "it is on the request's log line.",
    "schema": {"type": "string"},
}


def _json(schema, description, headers=None):
    response = {"description": description, "content": {JSON: {"schema": schema}}}
    response["headers"] = {"X-Request-ID": _REQUEST_ID_HEADER, **(headers or {})}
    return response


def _unavailable(description):
    return _json(schemas.ErrorSchema, description, headers={"Retry-After": {
        "description": f"Seconds to wait before retrying (always {RETRY_AFTER_SECONDS}).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }})


_VALIDATION_ERROR = _json(schemas.ValidationErrorSchema, "Invalid input: one entry per problem.")
_INTERNAL_ERROR = _json(
    schemas.InternalErrorSchema, "Unexpected error; request_id finds its log line (no stack trace)."
)
_DATABASE_UNAVAILABLE = _unavailable("Database unavailable (locked or unreachable); retry shortly.")
_UNAUTHORIZED = _json(
    schemas.ErrorSchema,
    "Only when the service runs with API_TOKEN set: the bearer token is missing or wrong.",
    headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
)

_WEBHOOK = {
    "post": {
        "operationId": "receiveWebhook",
        "summary": "Deliver one message; stored exactly once, keyed by message_id.",
        "description": (
            "Checks, in order: body size (413), X-Signature (401; nothing is parsed or stored), "
            "then the body (422; nothing is stored). A valid message is inserted once: a first "
            "delivery and any redelivery of the same message_id (any content) both answer 200, "
            "and the first write wins. Unknown fields are ignored."
        ),
        "tags": ["webhook"],
        "parameters": [{
            "in": "header",
            "name": "X-Signature",
            "required": True,
            "description": "hex(HMAC_SHA256(key=WEBHOOK_SECRET, msg=raw request body bytes)); "
            "a 'sha256=' prefix is accepted.",
            "schema": {"type": "string", "pattern": SIGNATURE_PATTERN},
        }],
        "requestBody": {
            "required": True,
            "description": f"At most {MAX_BODY_BYTES} bytes. Signed as sent: the raw bytes.",
            "content": {JSON: {"schema": schemas.WebhookMessageSchema}},
        },
        "responses": {
            "200": _json(schemas.StatusOkSchema, "Stored, or a duplicate of a stored message_id."),
            "401": _json(schemas.ErrorSchema, "X-Signature missing or wrong: 'invalid signature'."),
            "413": _json(schemas.ErrorSchema, f"Body larger than {MAX_BODY_BYTES} bytes."),
            "422": _VALIDATION_ERROR,
            "500": _INTERNAL_ERROR,
            "503": _unavailable(
                "Database unavailable, or WEBHOOK_SECRET not configured (then everything is "
                "refused and nothing is stored); retry shortly."
            ),
        },
    }
}

_MESSAGES = {
    "get": {
        "operationId": "listMessages",
        "summary": "Stored messages, by ts ascending then message_id, with filters and paging.",
        "tags": ["messages"],
        "security": OPTIONAL_BEARER,
        "parameters": [{"in": "query", "schema": schemas.MessagesQuerySchema}],
        "responses": {
            "200": _json(schemas.MessagesPageSchema, "One page; total ignores limit and offset."),
            "401": _UNAUTHORIZED,
            "422": _json(schemas.ValidationErrorSchema, "Invalid query parameter; loc is ['query', name]."),
            "500": _INTERNAL_ERROR,
            "503": _DATABASE_UNAVAILABLE,
        },
    }
}

_STATS = {
    "get": {
        "operationId": "getStats",
        "summary": "Totals, the top 10 senders and the time span of stored messages.",
        "tags": ["messages"],
        "security": OPTIONAL_BEARER,
        "responses": {
            "200": _json(schemas.StatsSchema, "Statistics; the ts values are null when nothing is stored."),
            "401": _UNAUTHORIZED,
            "500": _INTERNAL_ERROR,
            "503": _DATABASE_UNAVAILABLE,
        },
    }
}

_LIVE = {
    "get": {
        "operationId": "live",
        "summary": "Liveness: 200 whenever the process serves HTTP.",
        "tags": ["health"],
        "responses": {"200": _json(schemas.LiveSchema, "Alive.")},
    }
}

_READY = {
    "get": {
        "operationId": "ready",
        "summary": "Readiness: the database is reachable with its schema, and WEBHOOK_SECRET is set.",
        "tags": ["health"],
        "responses": {
            "200": _json(schemas.ReadySchema, "Ready."),
            "503": _json(schemas.NotReadySchema, "Not ready; checks says which check failed."),
        },
    }
}

_METRICS = {
    "get": {
        "operationId": "metrics",
        "summary": "Prometheus metrics, summed over every Gunicorn worker.",
        "description": (
            "http_requests_total{method, path, status}, webhook_requests_total{result}, "
            "request_latency_ms histogram."
        ),
        "tags": ["operations"],
        "security": OPTIONAL_BEARER,
        "responses": {
            "200": {
                "description": "Prometheus text exposition format.",
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    # Prometheus content negotiation: asked for with Accept.
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                },
                "headers": {"X-Request-ID": _REQUEST_ID_HEADER},
            },
            "401": _UNAUTHORIZED,
        },
    }
}

_OPENAPI = {
    "get": {
        "operationId": "openapi",
        "summary": "This document.",
        "tags": ["operations"],
        "responses": {
            "200": _json({"type": "object"}, "The OpenAPI document of the service."),
        },
    }
}

PATHS = {
    "/webhook": _WEBHOOK,
    "/messages": _MESSAGES,
    "/stats": _STATS,
    "/health/live": _LIVE,
    "/health/ready": _READY,
    "/metrics": _METRICS,
    "/openapi.json": _OPENAPI,
}


def _schema_name(schema):
    """Component name of a schema class or instance: the class name without 'Schema'."""
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__
    return name[: -len("Schema")] if name.endswith("Schema") and name != "Schema" else name


def build_spec():
    """The OpenAPI document as a dict (a new one each call)."""
    spec = APISpec(
        title="lyftr",
        version="1.0.0",
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
        info={
            "description": "Ingests WhatsApp-like messages from a provider's signed webhook exactly "
            "once, and lets operators read them back.",
        },
    )
    spec.components.security_scheme(
        "bearerAuth",
        {"type": "http", "scheme": "bearer",
         "description": "Needed for /messages, /stats and /metrics only when API_TOKEN is set."},
    )
    for path, operations in PATHS.items():
        # apispec resolves schema classes to references in place: keep PATHS as written.
        spec.path(path=path, operations=copy.deepcopy(operations))
    document = spec.to_dict()
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                _absent_is_not_null(parameter["schema"])
    return document


def _absent_is_not_null(schema):
    """A query parameter whose load_default is None is simply optional: it cannot be sent as null."""
    if "default" in schema and schema["default"] is None:
        del schema["default"]
        schema.pop("nullable", None)


@bp.get("/openapi.json")
def document():
    cached = current_app.extensions.get("lyftr.openapi")
    if cached is None:
        cached = current_app.extensions["lyftr.openapi"] = build_spec()
    return cached
