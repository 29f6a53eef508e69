"""Optional read protection: with ``API_TOKEN`` set, message data and metrics need a bearer token.

A view declares it with ``@token_required`` (``/metrics`` through the exporter's decorator hook,
see ``metrics``). The webhook has its own authentication (the signature) and the health probes
stay open for orchestrators. Without ``API_TOKEN`` everything is open, as the contract describes.
"""

import functools
import hmac

from flask import current_app, request

from lyftr.api import errors


def token_required(view):
    """Answer 401 unless the request carries ``Authorization: Bearer <API_TOKEN>`` (when set)."""

    @functools.wraps(view)
    def wrapped_view(*args, **kwargs):
        token = current_app.config["API_TOKEN"]
        if token and not _bearer_matches(token):
            response = errors.error_response(401, "missing or invalid bearer token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="lyftr"'
            return response
        return view(*args, **kwargs)

    return wrapped_view


def _bearer_matches(token):
    scheme, _, provided = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        provided.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    )
