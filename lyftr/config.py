"""Configuration: read from the environment here and nowhere else."""

import base64
import binascii
import logging
import os

DEFAULT_DATABASE_URL = "sqlite:///./data/app.db"

# text is at most 4096 characters; as JSON escapes of astral characters (12 bytes each) a maximal
# valid body is about 50 KiB, so 64 KiB accepts every valid message and little else.
MAX_BODY_BYTES = 64 * 1024
# A WhatsApp notification batches up to 1,000 updates, each up to a few KiB.
MAX_PROVIDER_BODY_BYTES = 4 * 1024 * 1024

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def from_env(environ=None):
    """Return the app's settings from the environment (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    level = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    return {
        "WEBHOOK_SECRET": env.get("WEBHOOK_SECRET", ""),
        "WEBHOOK_SECRET_PREVIOUS": env.get("WEBHOOK_SECRET_PREVIOUS", ""),
        "API_TOKEN": env.get("API_TOKEN", ""),
        # Signs the console's session cookie; unset, it is derived from API_TOKEN (lyftr/console).
        "SECRET_KEY": env.get("SECRET_KEY", ""),
        # Senders other than the contract's (lyftr.providers): each is off until its secret is set.
        "STANDARD_WEBHOOKS_SECRET": env.get("STANDARD_WEBHOOKS_SECRET", ""),
        "WHATSAPP_VERIFY_TOKEN": env.get("WHATSAPP_VERIFY_TOKEN", ""),
        "WHATSAPP_APP_SECRET": env.get("WHATSAPP_APP_SECRET", ""),
        "WHATSAPP_APP_SECRET_PREVIOUS": env.get("WHATSAPP_APP_SECRET_PREVIOUS", ""),
        "TWILIO_AUTH_TOKEN": env.get("TWILIO_AUTH_TOKEN", ""),
        # Accepted too while set: the token before a rotation (Twilio's secondary auth token).
        "TWILIO_AUTH_TOKEN_PREVIOUS": env.get("TWILIO_AUTH_TOKEN_PREVIOUS", ""),
        # Refused deliveries kept for GET /rejections: the newest this many.
        "REJECTIONS_KEEP": _int(env.get("REJECTIONS_KEEP"), 10_000),
        # The URL the public reaches this service at (Twilio signs the URL it called).
        "PUBLIC_BASE_URL": env.get("PUBLIC_BASE_URL", "").rstrip("/"),
        # Proxies in front of this service whose X-Forwarded-For is believed (0: none, the
        # client is the connection's peer); with 1, the address the nearest proxy saw.
        "TRUSTED_PROXIES": max(0, _int(env.get("TRUSTED_PROXIES"), 0)),
        "DATABASE_URL": env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        "LOG_LEVEL": level if level in LOG_LEVELS else "INFO",
        "DB_BUSY_TIMEOUT_MS": _int(env.get("DB_BUSY_TIMEOUT_MS"), 5000),
        # Messages that arrived more than this many days ago are deleted (unset: kept forever).
        "RETENTION_DAYS": _positive_float(env.get("RETENTION_DAYS")),
        "RETENTION_INTERVAL_S": _int(env.get("RETENTION_INTERVAL_S"), 60),
        # A purged message_id is answered as a duplicate for this long (unset: for ever, 16 bytes
        # a purged message; providers retry for 7 days, a captured request can be replayed later).
        "PURGED_IDS_KEEP_DAYS": _positive_float(env.get("PURGED_IDS_KEEP_DAYS")),
        # PostgreSQL only: connections kept per worker process, and extra ones allowed under load.
        "DB_POOL_SIZE": _int(env.get("DB_POOL_SIZE"), 5),
        "DB_MAX_OVERFLOW": _int(env.get("DB_MAX_OVERFLOW"), 10),
        "DB_CONNECT_TIMEOUT_S": _int(env.get("DB_CONNECT_TIMEOUT_S"), 3),
        # Limits under hostile traffic (docs/operations.md); each per worker process.
        # A read statement still running after this long is stopped: 503 "query took too long".
        "QUERY_BUDGET_MS": _positive_int(env.get("QUERY_BUDGET_MS"), 5000),
        # SQLite: the heavy reads run on this many threads off the gevent hub (0: on the hub).
        "QUERY_THREADS": _int(env.get("QUERY_THREADS"), 1),
        # A request body not read whole within this long: 408.
        "BODY_TIMEOUT_S": _positive_float(env.get("BODY_TIMEOUT_S")) or 10.0,
        # Bodies read at once, and (over MAX_BODY_BYTES) large ones; the rest wait up to
        # BODY_SLOT_WAIT_S for a turn, then 503.
        "BODY_READERS": _positive_int(env.get("BODY_READERS"), 64),
        "LARGE_BODY_READERS": _positive_int(env.get("LARGE_BODY_READERS"), 4),
        "BODY_SLOT_WAIT_S": _positive_float(env.get("BODY_SLOT_WAIT_S")) or 0.5,
        # The port of Gunicorn's health-probe listener (gunicorn.conf.py), which serves /health/*
        # only; None when there is none.
        "PROBE_PORT": _bind_port(env.get("PROBE_BIND")),
        # /feed?wait= requests waiting at once; the rest are answered at once, empty.
        "FEED_WAITERS": _positive_int(env.get("FEED_WAITERS"), 20),
    }


# Every setting that is a key or a password: never logged, and checked at start (check_secrets).
SECRETS = (
    "WEBHOOK_SECRET",
    "WEBHOOK_SECRET_PREVIOUS",
    "API_TOKEN",
    "SECRET_KEY",
    "STANDARD_WEBHOOKS_SECRET",
    "WHATSAPP_VERIFY_TOKEN",
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_APP_SECRET_PREVIOUS",
    "TWILIO_AUTH_TOKEN",
)
# A key shorter than this can be guessed offline from one signed delivery; Standard Webhooks'
# own secrets are 24 to 64 bytes (its specification), so 24 is its floor.
STRONG_SECRET_BYTES = 32
STRONG_STANDARD_WEBHOOKS_BYTES = 24
# The development secret of the README and the evaluation: public knowledge.
KNOWN_SECRETS = frozenset({"testsecret"})

logger = logging.getLogger("lyftr.startup")


def standard_webhooks_key(secret):
    """The key bytes of a ``whsec_<base64>`` secret (bare base64 is taken too), None if it is not
    base64. Padding is optional, as the reference libraries read such secrets."""
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _key_bytes(name, value):
    if isinstance(value, bytes):  # SECRET_KEY may be given as bytes (Flask takes either)
        return value.strip()
    if name == "STANDARD_WEBHOOKS_SECRET":
        return standard_webhooks_key(value)
    return value.strip().encode("utf-8", "surrogateescape")


def check_secrets(settings):
    """Refuse (ValueError naming the variable) a secret that is set but holds no key: anyone could
    sign with an empty key. Unset secrets are fine: their endpoint stays off."""
    for name in SECRETS:
        value = settings.get(name) or ""
        if not value:
            continue
        key = _key_bytes(name, value)
        if key is None:
            raise ValueError(f"{name} is not valid: 'whsec_' followed by base64 is expected.")
        if not key:
            raise ValueError(
                f"{name} is set but empty after decoding: anyone could sign with an empty key. "
                f"Set a long random value, or unset {name}."
            )


def is_loopback(bind):
    """Whether a Gunicorn bind address (``host:port``, ``[::1]:port``, ``unix:path``) is only
    reachable from this host."""
    if bind.startswith(("unix:", "fd://")):
        return True
    host = bind.rpartition(":")[0] if ":" in bind else bind
    host = host.strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def start_warnings(settings, binds):
    """What is risky about ``settings`` served on ``binds`` (each a warning sentence): weak or
    well-known secrets, and reads open to anyone, on an address other hosts can reach."""
    public = [bind for bind in binds if not is_loopback(bind)]
    if not public:
        return []
    where = ", ".join(public)
    warnings = []
    for name in SECRETS:
        value = settings.get(name) or ""
        key = _key_bytes(name, value) if value else None
        if not key:
            continue
        floor = (
            STRONG_STANDARD_WEBHOOKS_BYTES
            if name == "STANDARD_WEBHOOKS_SECRET"
            else STRONG_SECRET_BYTES
        )
        if value in KNOWN_SECRETS:
            risk = "is a well-known development value"
        elif len(key) < floor:
            risk = f"is shorter than {floor} bytes"
        else:
            continue
        warnings.append(
            f"{name} {risk}, on a public bind ({where}): anyone who guesses it can forge "
            "what it protects. Set a long random value (docs/operations.md, Hardening)."
        )
    if not settings.get("API_TOKEN"):
        warnings.append(
            f"API_TOKEN is not set, on a public bind ({where}): every stored message can be "
            "read by anyone who reaches this address (/messages, /feed, /ui). Set API_TOKEN."
        )
    return warnings


def check_at_start(binds, environ=None):
    """At a server's start (Gunicorn's master): log why the settings are refused (False), or each
    warning about them (True: the server may start)."""
    settings = from_env(environ)
    try:
        check_secrets(settings)
    except ValueError as exc:
        logger.error("refusing to start: %s", exc)
        return False
    for warning in start_warnings(settings, binds):
        logger.warning(warning)
    return True


def _int(value, default):
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def _bind_port(bind):
    """The port of a Gunicorn bind address ``HOST:PORT`` (as a string), or None."""
    if not bind or ":" not in bind:
        return None
    port = bind.rsplit(":", 1)[1]
    return port if port.isdigit() else None


def _positive_int(value, default):
    number = _int(value, default)
    return number if number > 0 else default


def _positive_float(value):
    try:
        number = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is not None and number > 0 else None


def _make_url(value):
    # Imported when used: Gunicorn's master reads this module (warn_at_start) and should not load
    # SQLAlchemy before its workers' gevent patching.
    from sqlalchemy.engine import make_url

    return make_url(value)


def sqlalchemy_uri(database_url):
    """Turn ``DATABASE_URL`` into the URI SQLAlchemy gets.

    A relative SQLite path is resolved against the working directory, as an operator reads it;
    Flask-SQLAlchemy would otherwise put it under the instance folder.
    """
    url = _make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=os.path.abspath(url.database))
    # postgresql:// (and Heroku-style postgres://) mean the driver that is installed: psycopg 3.
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def engine_options(uri, settings):
    """SQLAlchemy engine options for the database at ``uri`` (from ``sqlalchemy_uri``)."""
    # Errors and logs never carry statement parameters: they hold message text.
    options = {"hide_parameters": True}
    if _make_url(uri).get_backend_name() == "postgresql":
        options.update(
            pool_size=settings["DB_POOL_SIZE"],
            max_overflow=settings["DB_MAX_OVERFLOW"],
            # A connection the server dropped (restart, failover) is replaced before it is used.
            pool_pre_ping=True,
            # Waiting longer for a free connection than for the database itself helps nobody.
            pool_timeout=settings["DB_CONNECT_TIMEOUT_S"],
            connect_args={"connect_timeout": settings["DB_CONNECT_TIMEOUT_S"]},
        )
    return options


def sqlite_path(uri):
    """The file behind a SQLite URI, or None for any other database."""
    url = _make_url(uri)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return url.database
    return None
