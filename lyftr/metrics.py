"""The Prometheus metrics of the contract, defined once per process (``api.exporter`` serves them).

Under Gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set before any worker starts (gunicorn.conf.py):
each worker writes its samples there and a scrape of any worker sums all of them.
"""

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    multiprocess,
)

WEBHOOK_RESULTS = (
    "created",
    "duplicate",
    "invalid_signature",
    "validation_error",
    "payload_too_large",
    "not_configured",
    "unavailable",
    "error",
)
LATENCY_BUCKETS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
UNMATCHED_PATH = "<unmatched>"
# Any other method is counted as OTHER, so made-up methods cannot create new series either.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))

# The *_created timestamp series are noise for these dashboards (and absent in multiprocess mode).
disable_created_metrics()

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, route and status.",
    ["method", "path", "status"],
)
WEBHOOK_REQUESTS = Counter("webhook_requests_total", "POST /webhook outcomes.", ["result"])
REQUEST_LATENCY = Histogram(
    "request_latency_ms", "Request latency in milliseconds.", buckets=LATENCY_BUCKETS_MS
)
for _result in WEBHOOK_RESULTS:
    WEBHOOK_REQUESTS.labels(_result)

PROVIDERS = ("webhook", "whatsapp", "twilio")
# A provider's request is accepted as a whole (its messages are counted in MESSAGES_STORED); the
# failures are /webhook's; verified and forbidden are WhatsApp's subscription handshake.
# quarantined: accepted, but some of its messages could not be read (see GET /rejections); status:
# only delivery statuses.
PROVIDER_RESULTS = (
    "accepted",
    "quarantined",
    "status",
    "verified",
    "forbidden",
    *WEBHOOK_RESULTS[2:],
)
PROVIDER_REQUESTS = Counter(
    "provider_requests_total",
    "Requests to the providers' endpoints (/webhooks/<provider>) by outcome.",
    ["provider", "result"],
)
MESSAGES_STORED = Counter(
    "messages_stored_total",
    "Messages stored (new rows), by the provider that sent them.",
    ["provider"],
)
WHATSAPP_UPDATES = Counter(
    "whatsapp_updates_total",
    "Updates in WhatsApp notifications by kind: message, status (receipts) or other fields.",
    ["kind"],
)
CONSOLE_LOGIN_RESULTS = ("logged_in", "login_failed", "login_throttled")
CONSOLE_LOGINS = Counter(
    "console_logins_total",
    "Console (/ui) login attempts by outcome; login_throttled: refused unchecked while delayed.",
    ["result"],
)
for _result in CONSOLE_LOGIN_RESULTS:
    CONSOLE_LOGINS.labels(_result)
for _provider in PROVIDERS:
    MESSAGES_STORED.labels(_provider)
for _result in PROVIDER_RESULTS:
    PROVIDER_REQUESTS.labels("whatsapp", _result)
    if _result not in ("verified", "forbidden"):  # the subscription handshake is WhatsApp's
        PROVIDER_REQUESTS.labels("twilio", _result)
for _kind in ("message", "status", "other"):
    WHATSAPP_UPDATES.labels(_kind)


def observe(method, route, status, latency_ms):
    method = method if method in METHODS else "OTHER"
    HTTP_REQUESTS.labels(method, route or UNMATCHED_PATH, str(status)).inc()
    REQUEST_LATENCY.observe(latency_ms)


def count_webhook(result):
    WEBHOOK_REQUESTS.labels(result).inc()


def count_provider(provider, result):
    PROVIDER_REQUESTS.labels(provider, result).inc()


def count_stored(provider, n=1):
    if n:
        MESSAGES_STORED.labels(provider).inc(n)


def count_whatsapp_updates(kind, n):
    if n:
        WHATSAPP_UPDATES.labels(kind).inc(n)


def count_console_login(result):
    CONSOLE_LOGINS.labels(result).inc()


def current_values(sample_name):
    """``{labels: value}`` of one sample name as /metrics would show it now: under Gunicorn, the
    sum over every worker (PROMETHEUS_MULTIPROC_DIR, read as the exporter reads it)."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == sample_name
    }
