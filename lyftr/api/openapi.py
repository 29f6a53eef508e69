"""GET /openapi.json: the OpenAPI 3 document of every route, from the operation each view declares.

A view declares its operation next to itself with ``@operation({...})`` (under its route
decorator); the document is built from the app's URL map, so a route and its documentation cannot
drift apart in two files. Request bodies and query strings are the marshmallow schemas the views
load (``api.schemas``, through apispec's marshmallow plugin); responses are
``api.response_schemas``; the providers' payloads are JSON Schema components their views declare
(``providers.payload_schemas``). Every response an operation can give is listed, errors included:
the end-to-end tier runs schemathesis against it (tests/e2e/test_schemathesis.py), which fails on
any status, content type or body not documented.
"""

import copy
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app

from lyftr.api.response_schemas import json_response

OPENAPI_VERSION = "3.0.3"
# werkzeug's "<path:message_id>" is OpenAPI's "{message_id}".
_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")

bp = Blueprint("openapi", __name__)


def operation(spec, components=None):
    """Declare a view's OpenAPI operation (and JSON Schema ``components`` it refers to)."""

    def declare(view):
        view.openapi_operation = spec
        view.openapi_components = components or {}
        return view

    return declare


def _schema_name(schema):
    """Component name of a schema class or instance: the class name without 'Schema'."""
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__
    return name[: -len("Schema")] if name.endswith("Schema") and name != "Schema" else name


def documented_routes(app):
    """``(path, method, view)`` of every route whose view declares an operation, in the order the
    routes were registered."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if getattr(view, "openapi_operation", None) is None:
            continue
        path = _RULE_ARGUMENT.sub(r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield path, method.lower(), view


def build_spec(app):
    """The OpenAPI document of ``app`` as a dict (a new one each call)."""
    spec = APISpec(
        title="lyftr",
        version="1.0.0",
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
        info={
            "description": "Ingests messages from signed webhooks (its own contract's, "
            "WhatsApp Cloud API's and Twilio's) exactly once, and lets operators read them back.",
        },
    )
    spec.components.security_scheme(
        "bearerAuth",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "Needed for /messages, /messages/{message_id}, /feed, /stats and "
            "/metrics only when API_TOKEN is set.",
        },
    )
    paths, components = {}, {}
    for path, method, view in documented_routes(app):
        # apispec resolves schema classes to references in place: keep the declarations as written.
        paths.setdefault(path, {})[method] = copy.deepcopy(view.openapi_operation)
        components.update(view.openapi_components)
    for name, schema in components.items():
        spec.components.schema(name, copy.deepcopy(schema))
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    for operations in document["paths"].values():
        for operation_ in operations.values():
            for parameter in operation_.get("parameters", []):
                _absent_is_not_null(parameter["schema"])
    return document


def _absent_is_not_null(schema):
    """A query parameter whose load_default is None is optional: it cannot be sent as null."""
    if "default" in schema and schema["default"] is None:
        del schema["default"]
        schema.pop("nullable", None)


DOCUMENT_OPERATION = {
    "operationId": "openapi",
    "summary": "This document.",
    "tags": ["operations"],
    "responses": {
        "200": json_response({"type": "object"}, "The OpenAPI document of the service."),
    },
}


@bp.get("/openapi.json")
@operation(DOCUMENT_OPERATION)
def document():
    cached = current_app.extensions.get("lyftr.openapi")
    if cached is None:
        cached = current_app.extensions["lyftr.openapi"] = build_spec(current_app)
    return cached
