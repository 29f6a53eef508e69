"""Configuration: read from the environment here and nowhere else."""

import os

from sqlalchemy.engine import make_url

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
        # Signs the console's session cookie; required with API_TOKEN (see lyftr/console).
        "SECRET_KEY": env.get("SECRET_KEY", ""),
        # Senders other than the contract's (lyftr.providers): each is off until its secret is set.
        "STANDARD_WEBHOOKS_SECRET": env.get("STANDARD_WEBHOOKS_SECRET", ""),
        "WHATSAPP_VERIFY_TOKEN": env.get("WHATSAPP_VERIFY_TOKEN", ""),
        "WHATSAPP_APP_SECRET": env.get("WHATSAPP_APP_SECRET", ""),
        "WHATSAPP_APP_SECRET_PREVIOUS": env.get("WHATSAPP_APP_SECRET_PREVIOUS", ""),
        "TWILIO_AUTH_TOKEN": env.get("TWILIO_AUTH_TOKEN", ""),
        # The URL the public reaches this service at (Twilio signs the URL it called).
        "PUBLIC_BASE_URL": env.get("PUBLIC_BASE_URL", "").rstrip("/"),
        "DATABASE_URL": env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        "LOG_LEVEL": level if level in LOG_LEVELS else "INFO",
        "DB_BUSY_TIMEOUT_MS": _int(env.get("DB_BUSY_TIMEOUT_MS"), 5000),
        # Messages that arrived more than this many days ago are deleted (unset: kept forever).
        "RETENTION_DAYS": _positive_float(env.get("RETENTION_DAYS")),
        "RETENTION_INTERVAL_S": _int(env.get("RETENTION_INTERVAL_S"), 60),
        # A purged message_id is answered as a duplicate for this long (providers retry for 7).
        "PURGED_IDS_KEEP_DAYS": _positive_float(env.get("PURGED_IDS_KEEP_DAYS")) or 8,
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


def sqlalchemy_uri(database_url):
    """Turn ``DATABASE_URL`` into the URI SQLAlchemy gets.

    A relative SQLite path is resolved against the working directory, as an operator reads it;
    Flask-SQLAlchemy would otherwise put it under the instance folder.
    """
    url = make_url(database_url)
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
    if make_url(uri).get_backend_name() == "postgresql":
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
    url = make_url(uri)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return url.database
    return None
