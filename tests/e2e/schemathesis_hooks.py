"""schemathesis hooks for tests/e2e/test_schemathesis.py: webhook deliveries signed like the provider's.

Loaded by the schemathesis CLI through ``SCHEMATHESIS_HOOKS=schemathesis_hooks``; the secret comes from
``LYFTR_SCHEMATHESIS_SECRET``. The body is serialized here, once, to the exact bytes that are sent
(``data=``, so schemathesis does not serialize it again), and X-Signature is the HMAC of those bytes.

About one delivery in five keeps the X-Signature schemathesis generated (a random value, or none at
all in a negative case), so the service answers 401: the refusal is exercised too. The others are
signed even when the generated case left the header out, so that invalid bodies get past the
signature and reach validation.
"""

import json
import os
import zlib

import schemathesis
from schemathesis.core import NotSet

from lyftr.signing import sign

SECRET_VARIABLE = "LYFTR_SCHEMATHESIS_SECRET"
UNSIGNED_ONE_IN = 5


def raw_body(body):
    """The bytes sent for a generated body: its JSON text in UTF-8, or bytes as they are."""
    if isinstance(body, NotSet):
        return None
    if isinstance(body, bytes):
        return body
    return json.dumps(body).encode("utf-8")


def keeps_generated_signature(value, raw):
    """Deterministic in the generated case, so a failing case replays the same way. (The coverage
    phase sends one constant X-Signature with many bodies: both count.)"""
    return zlib.crc32(str(value).encode("utf-8", "replace") + (raw or b"")) % UNSIGNED_ONE_IN == 0


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.method.upper() != "POST" or case.operation.path != "/webhook":
        return
    raw = raw_body(case.body)
    if raw is not None:
        kwargs["data"] = raw
    headers = case.headers if case.headers is not None else {}
    generated = headers.get("X-Signature")
    if keeps_generated_signature(generated, raw):
        return
    headers["X-Signature"] = sign(os.environ[SECRET_VARIABLE], raw or b"")
    case.headers = headers
