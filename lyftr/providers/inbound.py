"""What the inbound endpoints share: the raw body read within a size limit, strict JSON, and the
record of each refused delivery (``reject``)."""

import hashlib
import logging

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from lyftr import metrics, store
from lyftr.api import strict_json
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


def parse_json(body, *, max_depth=None):
    """The JSON document of ``body``: UTF-8, strict (``api.strict_json``: no NaN or Infinity, no
    duplicate keys, at most ``max_depth`` levels); ValueError if it is not one (RecursionError
    for nesting deeper than the parser goes)."""
    return strict_json.loads(body.decode("utf-8"), max_depth=max_depth)
