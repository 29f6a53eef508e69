"""What the inbound endpoints share: the raw body read within a size limit, and strict JSON."""

import json
import math

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from lyftr import metrics
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
