"""Webhook signatures: the contract's (and Meta's) hex HMAC-SHA256 of the raw body, Standard
Webhooks' and Twilio's. Every comparison is constant-time."""

import base64
import hashlib
import hmac
import time
import urllib.parse

from lyftr.config import standard_webhooks_key


def sign(secret, body):
    """Hex HMAC-SHA256 of ``body`` (bytes) under ``secret`` (str)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _normalise(header):
    """The hex digest from an ``X-Signature`` value: bare or ``sha256=``-prefixed, any case."""
    if header is None:
        return None
    value = header.strip()
    if value[:7].lower() == "sha256=":
        value = value[7:]
    if len(value) != 64 or not value.isascii():
        return None
    return value.lower().encode("ascii")


def verify(secrets, body, header):
    """Return the name of the secret whose signature ``header`` carries, or None.

    ``secrets`` maps a name ("current", "previous") to a secret; empty secrets never match.
    Every configured secret is compared, in constant time, so timing does not tell which matched.
    """
    provided = _normalise(header)
    matched = None
    for name, secret in secrets.items():
        if not secret:
            continue
        expected = sign(secret, body).encode("ascii")
        if hmac.compare_digest(expected, provided or b"") and matched is None:
            matched = name
    return matched


# --- Standard Webhooks (standardwebhooks.com): HMAC-SHA256 over "{id}.{timestamp}.{body}" ---------

STANDARD_WEBHOOKS_TOLERANCE_S = 5 * 60


def standard_webhooks_fresh(timestamp, now=None):
    """Whether a webhook-timestamp (Unix seconds) is within the tolerance of now."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    now = time.time() if now is None else now
    return abs(now - int(timestamp)) <= STANDARD_WEBHOOKS_TOLERANCE_S


def standard_webhooks_sign(secret, message_id, timestamp, body):
    """``v1,<base64 HMAC-SHA256>`` of a delivery, as the Standard Webhooks libraries sign it."""
    key = standard_webhooks_key(secret)
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_standard_webhooks(secret, body, message_id, timestamp, signatures, now=None):
    """Whether ``signatures`` (the webhook-signature header: space-separated ``v1,<base64>``)
    holds a signature of this delivery under ``secret``, sent within the tolerance of now."""
    if not (secret and message_id and timestamp and signatures):
        return False
    # Unix seconds in ASCII digits ("²" is a digit to str.isdigit, and int() refuses it).
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    if not standard_webhooks_fresh(timestamp, now):
        return False  # a replay, or a clock far off: refused either way
    if standard_webhooks_key(secret) is None:
        return False
    expected = standard_webhooks_sign(secret, message_id, timestamp, body).encode()
    matched = False
    for candidate in signatures.split():
        if hmac.compare_digest(expected, candidate.encode("utf-8", "surrogateescape")):
            matched = True
    return matched


# --- Twilio: base64 HMAC-SHA1 over the URL called and the POST parameters ------------------------


def twilio_signature(auth_token, url, params):
    """Twilio's X-Twilio-Signature of a POST to ``url`` with form ``params`` (a MultiDict): the
    URL, then each parameter name (sorted) followed by each of its values (sorted)."""
    signed = url
    for name in sorted(set(params.keys())):
        for value in sorted(set(params.getlist(name))):
            signed += name + value
    digest = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_twilio(auth_token, url, params, header):
    """Whether ``header`` is Twilio's signature of the POST. Twilio signs the URL with the default
    port written out or not (its own validator takes both), so both forms are compared."""
    if not (auth_token and header):
        return False
    provided = header.strip().encode("utf-8", "surrogateescape")
    matched = False
    for candidate in _with_and_without_default_port(url):
        expected = twilio_signature(auth_token, candidate, params).encode("ascii")
        if hmac.compare_digest(expected, provided):
            matched = True
    return matched


_DEFAULT_PORTS = {"https": 443, "http": 80}


def _with_and_without_default_port(url):
    parts = urllib.parse.urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or parts.port not in (None, default):
        return [url]
    host = parts.hostname if ":" not in (parts.hostname or "") else f"[{parts.hostname}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    without = parts._replace(netloc=f"{prefix}{host}").geturl()
    with_port = parts._replace(netloc=f"{prefix}{host}:{default}").geturl()
    return list(dict.fromkeys((url, without, with_port)))
