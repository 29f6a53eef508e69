"""HMAC-SHA256 signatures over the raw request body."""

import hashlib
import hmac


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
