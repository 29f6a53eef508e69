"""Optional read protection: with ``API_TOKEN`` set, message data and metrics need a bearer token.

The webhook has its own authentication (the signature) and the health probes stay open for
orchestrators. Without ``API_TOKEN`` everything is open, as the contract describes.
"""

import hmac

from flask import current_app, request

from .errors import error_response

PROTECTED_ENDPOINTS = frozenset({"messages.list_messages", "stats.show_stats", "prometheus_metrics"})


def require_token():
    token = current_app.config["API_TOKEN"]
    if not token or request.endpoint not in PROTECTED_ENDPOINTS:
        return None
    scheme, _, provided = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(
        provided.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    ):
        return None
    response = error_response(401, "missing or invalid bearer token")
    response.headers["WWW-Authenticate"] = 'Bearer realm="lyftr"'
    return response


def init_app(app):
    app.before_request(require_token)
