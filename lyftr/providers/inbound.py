"""What the inbound endpoints share: the raw body read within a size limit, and strict JSON."""

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from lyftr import metrics
from lyftr.api import strict_json
from lyftr.api.request_log import annotate


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
