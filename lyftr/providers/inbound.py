"""What the inbound endpoints share: the raw body read within a size limit, strict JSON, and the
record of each refused delivery (``reject``)."""

import hashlib
import json
import logging
import math

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from lyftr import metrics, store
from lyftr.api.request_log import annotate
from lyftr.timestamps import now_iso

logger = logging.getLogger(__name__)


def reject(provider, reason, body, *, authentic=False, url=None):
    """Keep a refused delivery for GET /rejections: when, why, from where, the body's sha256 and
    size; the body itself only when ``authentic`` (an unsigned flood cannot fill the disk: only
    the newest REJECTIONS_KEEP are kept). ``body`` None: too large to read. Never fails the
    request: a database that cannot take it is logged."""
    if not isinstance(reason, str):  # a 422's detail: where and what, one entry per problem
        reason = "; ".join(
            f"{'.'.join(str(part) for part in entry['loc'])}: {entry['msg']}" for entry in reason
        )
    rejection = {
        "at": now_iso(),
        "provider": provider,
        "reason": reason,
        "client": request.remote_addr,
        "url": url,
        "body_sha256": hashlib.sha256(body).hexdigest() if body is not None else None,
        "body_size": len(body) if body is not None else (request.content_length or 0),
        # PostgreSQL text cannot hold NUL: what cannot be stored is shown replaced.
        "body": body.decode("utf-8", "replace").replace("\x00", "\ufffd")
        if authentic and body is not None
        else None,
    }
    try:
        store.record_rejection(rejection)
    except Exception:
        logger.warning("rejection not recorded", extra={"provider": provider}, exc_info=True)


def outcome(provider, result, **fields):
    """Count a provider endpoint's request by its result, and put both on its log line."""
    metrics.count_provider(provider, result)
    annotate(provider=provider, result=result, **fields)


def read_body(limit=None):
    """The raw body, at most ``limit`` bytes (default: the app's MAX_CONTENT_LENGTH); over it: 413.

    werkzeug refuses a too long Content-Length itself. When the server terminates the input
    (``wsgi.input_terminated``, as Gunicorn does; the case of chunked bodies) it stops reading at
    the limit without a word: a byte left past the limit means the body was too large.
    """
    if limit is not None:
        request.max_content_length = limit
    body = request.get_data(cache=False)
    environ = request.environ
    terminated = "wsgi.input_terminated" in environ
    if terminated and len(body) >= request.max_content_length and environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return body


def _not_json(constant):
    # json.loads reads NaN, Infinity and -Infinity, which RFC 8259 JSON does not have.
    raise ValueError(f"{constant} is not valid JSON")


def _finite_float(literal):
    # 1e999 would become inf, which cannot be echoed back in a 422 as JSON.
    value = float(literal)
    if math.isinf(value):
        raise ValueError(f"{literal} is out of range")
    return value


def parse_json(body):
    """The JSON document of ``body`` (RFC 8259: UTF-8, no NaN or Infinity); ValueError if it is not
    one (RecursionError for nesting too deep)."""
    return json.loads(body.decode("utf-8"), parse_constant=_not_json, parse_float=_finite_float)
