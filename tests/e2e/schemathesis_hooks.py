"""schemathesis hooks for tests/e2e/test_schemathesis.py.

Deliveries are signed like the senders': loaded by the schemathesis CLI through
``SCHEMATHESIS_HOOKS=schemathesis_hooks``, with the server's secrets in the environment
(``LYFTR_SCHEMATHESIS_*``, below). Each body is serialized here, once, to the exact bytes that are
sent (``data=``, so schemathesis does not serialize it again), and the signature is computed over
those bytes:

- ``POST /webhook``: X-Signature, the HMAC of the body; or (one signed delivery in three) a
  Standard Webhooks signature made by the ``standardwebhooks`` reference library, without
  X-Signature.
- ``POST /webhooks/whatsapp``: X-Hub-Signature-256, ``sha256=`` + the HMAC with the app secret.
- ``POST /webhooks/twilio``: X-Twilio-Signature made by the ``twilio`` package's
  RequestValidator, over PUBLIC_BASE_URL + the path and the form fields as the server parses them.
- ``GET /webhooks/whatsapp``: the right ``hub.mode`` and ``hub.verify_token``.
- ``GET /feed``: a valid ``wait`` over 1 s becomes 1 s (a long poll of an idle feed lasts its wait).

About one request in five keeps what schemathesis generated (a random signature or token, or none
at all in a negative case), so the service answers 401 or 403: the refusal is exercised too. The
others are signed even when the generated case left the header out, so that invalid bodies get
past the signature and reach validation.
"""

import json
import os
import time
import urllib.parse
import zlib
from datetime import UTC, datetime

import schemathesis
from schemathesis.core import NotSet
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from lyftr.providers.signing import sign

SECRET_VARIABLE = "LYFTR_SCHEMATHESIS_SECRET"
STANDARD_WEBHOOKS_SECRET_VARIABLE = "LYFTR_SCHEMATHESIS_STANDARD_WEBHOOKS_SECRET"
WHATSAPP_APP_SECRET_VARIABLE = "LYFTR_SCHEMATHESIS_WHATSAPP_APP_SECRET"
WHATSAPP_VERIFY_TOKEN_VARIABLE = "LYFTR_SCHEMATHESIS_WHATSAPP_VERIFY_TOKEN"
TWILIO_AUTH_TOKEN_VARIABLE = "LYFTR_SCHEMATHESIS_TWILIO_AUTH_TOKEN"
PUBLIC_BASE_URL_VARIABLE = "LYFTR_SCHEMATHESIS_PUBLIC_BASE_URL"
UNSIGNED_ONE_IN = 5
STANDARD_WEBHOOKS_ONE_IN = 3
STANDARD_WEBHOOKS_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def raw_body(body):
    """The bytes sent for a generated body: its JSON text in UTF-8, or bytes as they are."""
    if isinstance(body, NotSet):
        return None
    if isinstance(body, bytes):
        return body
    return json.dumps(body).encode("utf-8")


def case_hash(value, raw):
    """Deterministic in the generated case, so a failing case replays the same way."""
    return zlib.crc32(str(value).encode("utf-8", "replace") + (raw or b""))


def keeps_generated_signature(value, raw):
    """About one case in five. (The coverage phase sends one constant signature with many bodies:
    both count.)"""
    return case_hash(value, raw) % UNSIGNED_ONE_IN == 0


def form_pairs(body):
    """A generated form (a dict) as the (name, value) pairs sent; None if it is not a form of
    strings that can be encoded (then it is sent as schemathesis made it, unsigned)."""
    if not isinstance(body, dict):
        return None
    pairs = []
    for name, value in body.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None:
                continue
            pairs.append((str(name), item if isinstance(item, str) else json.dumps(item)))
    try:
        urllib.parse.urlencode(pairs)
    except UnicodeEncodeError:  # a lone surrogate: not sendable as UTF-8
        return None
    return pairs


def _headers(case):
    return case.headers if case.headers is not None else {}


def sign_webhook(case, kwargs):
    raw = raw_body(case.body)
    if raw is not None:
        kwargs["data"] = raw
    headers = _headers(case)
    generated = (headers.get("X-Signature"), *(headers.get(h) for h in STANDARD_WEBHOOKS_HEADERS))
    if keeps_generated_signature(generated, raw):
        return
    body = raw or b""
    standard = case_hash(generated, raw) // UNSIGNED_ONE_IN % STANDARD_WEBHOOKS_ONE_IN == 0
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        standard = False  # the reference library signs text
    if standard:
        message_id = f"msg_{case_hash(generated, raw):08x}"
        sent_at = int(time.time())
        webhook = Webhook(os.environ[STANDARD_WEBHOOKS_SECRET_VARIABLE])
        signature = webhook.sign(message_id, datetime.fromtimestamp(sent_at, UTC), text)
        headers.pop("X-Signature", None)
        headers.update(
            {
                "webhook-id": message_id,
                "webhook-timestamp": str(sent_at),
                "webhook-signature": signature,
            }
        )
    else:
        for name in STANDARD_WEBHOOKS_HEADERS:
            headers.pop(name, None)
        headers["X-Signature"] = sign(os.environ[SECRET_VARIABLE], body)
    case.headers = headers


def sign_whatsapp_notification(case, kwargs):
    raw = raw_body(case.body)
    if raw is not None:
        kwargs["data"] = raw
    headers = _headers(case)
    generated = headers.get("X-Hub-Signature-256")
    if keeps_generated_signature(generated, raw):
        return
    secret = os.environ[WHATSAPP_APP_SECRET_VARIABLE]
    headers["X-Hub-Signature-256"] = "sha256=" + sign(secret, raw or b"")
    case.headers = headers


def verify_whatsapp_subscription(case):
    query = dict(case.query or {})
    if keeps_generated_signature(query, None):
        return
    query["hub.mode"] = "subscribe"
    query["hub.verify_token"] = os.environ[WHATSAPP_VERIFY_TOKEN_VARIABLE]
    case.query = query


def sign_twilio_message(case, kwargs):
    headers = _headers(case)
    generated = headers.get("X-Twilio-Signature")
    pairs = form_pairs(case.body)
    # The URL signed is PUBLIC_BASE_URL + path + query: a generated query string would be encoded by
    # the HTTP client, not here, so such a case goes as generated.
    if pairs is None or case.query:
        return
    encoded = urllib.parse.urlencode(pairs)
    kwargs["data"] = encoded.encode("utf-8")
    if keeps_generated_signature(generated, kwargs["data"]):
        return
    # The fields as the server reads them back (werkzeug parses a form with parse_qsl, keeping
    # blank values).
    params = MultiDict(urllib.parse.parse_qsl(encoded, keep_blank_values=True))
    url = os.environ[PUBLIC_BASE_URL_VARIABLE] + case.operation.path
    validator = RequestValidator(os.environ[TWILIO_AUTH_TOKEN_VARIABLE])
    headers["X-Twilio-Signature"] = validator.compute_signature(url, params)
    case.headers = headers


def shorten_the_wait(case):
    """A long poll waits up to its ``wait`` (30 s at most) on an empty feed: keep the run short."""
    query = dict(case.query or {})
    wait = str(query.get("wait", "0"))
    if wait.isascii() and wait.isdigit() and int(wait) > 1:
        query["wait"] = "1"
        case.query = query


# Gunicorn refuses a request line over limit_request_line (4094 bytes, gunicorn.conf.py) with its
# own 414 before the app sees it: a bound of the server, documented in docs/operations.md, not
# an answer of the API's. Generated query strings that long (a fuzzed /feed has reached 4.7 KB)
# are left out; the margin covers the method, the path and percent-encoding differences.
REQUEST_LINE_ROOM = 3500


@schemathesis.hook
def filter_query(context, query):
    if not isinstance(query, dict):
        return True
    try:
        encoded = urllib.parse.urlencode(query, doseq=True)
    except (TypeError, ValueError):  # an odd generated value: measure it by its text, encoded
        encoded = urllib.parse.quote(str(query))
    return len(encoded) <= REQUEST_LINE_ROOM


@schemathesis.hook
def before_call(context, case, kwargs):
    operation = (case.operation.method.upper(), case.operation.path)
    if operation == ("POST", "/webhook"):
        sign_webhook(case, kwargs)
    elif operation == ("POST", "/webhooks/whatsapp"):
        sign_whatsapp_notification(case, kwargs)
    elif operation == ("GET", "/webhooks/whatsapp"):
        verify_whatsapp_subscription(case)
    elif operation == ("POST", "/webhooks/twilio"):
        sign_twilio_message(case, kwargs)
    elif operation == ("GET", "/feed"):
        shorten_the_wait(case)
