"""One JSON log line per request, written from before/after request hooks.

Views add their own fields with ``annotate`` (the webhook's message_id, dup, result). Message text,
secrets and signatures are never put in a line.
"""

import logging
import re
import uuid
from time import perf_counter

from flask import current_app, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from lyftr import metrics

logger = logging.getLogger("lyftr.request")

# An incoming X-Request-ID is reused when it looks like an ID, so a caller can trace its call.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Results an alert watches for, logged at WARNING (a 5xx and a bad signature are ERRORs).
WARNING_RESULTS = frozenset({"login_failed", "login_throttled"})


def annotate(**fields):
    """Add ``fields`` to this request's log line."""
    g.setdefault("log_fields", {}).update(fields)


def _route():
    """The matched route's pattern; for a 405 the route the URL exists under; else None."""
    if request.url_rule is not None:
        return request.url_rule.rule
    error = request.routing_exception
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        adapter = current_app.url_map.bind_to_environ(request.environ)
        try:
            rule, _ = adapter.match(method=error.valid_methods[0], return_rule=True)
        except HTTPException:
            return None
        return rule.rule
    return None


def start_request():
    g.started = perf_counter()
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    g.log_fields = {}


def finish_request(response):
    latency_ms = (perf_counter() - g.get("started", perf_counter())) * 1000
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers["X-Request-ID"] = request_id
    metrics.observe(request.method, _route(), response.status_code, latency_ms)

    fields = g.get("log_fields", {})
    error = g.get("error")
    if response.status_code >= 500 or fields.get("result") == "invalid_signature":
        level = logging.ERROR
    elif fields.get("result") in WARNING_RESULTS:
        level = logging.WARNING
    else:
        level = logging.INFO
    extra = {
        "request_id": request_id,
        "method": request.method,
        "path": request.path,
        # The peer, or with TRUSTED_PROXIES the address the proxies forwarded (werkzeug ProxyFix).
        "client": request.remote_addr,
        "status": response.status_code,
        "latency_ms": round(latency_ms, 3),
        **fields,
    }
    if error is not None:
        extra["error"] = type(error).__name__
    # A traceback only for the unexpected; a database outage is described by its 503 and error.
    exc_info = error if response.status_code == 500 and error is not None else None
    logger.log(level, "request", extra=extra, exc_info=exc_info)
    return response


def init_app(app):
    app.before_request(start_request)
    app.after_request(finish_request)
