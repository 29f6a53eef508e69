"""The Prometheus metrics of the contract, defined once per process, and the /metrics endpoint.

Under Gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set before any worker starts (gunicorn.conf.py): each
worker writes its samples there and a scrape of any worker sums all of them.
"""

import re
from functools import wraps

from prometheus_client import Counter, Histogram, disable_created_metrics
from prometheus_flask_exporter import PrometheusMetrics

WEBHOOK_RESULTS = (
    "created", "duplicate", "invalid_signature", "validation_error", "payload_too_large",
    "not_configured", "unavailable", "error",
)
LATENCY_BUCKETS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
UNMATCHED_PATH = "<unmatched>"
# Any other method is counted as OTHER, so made-up methods cannot create new series either.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))

# The *_created timestamp series are noise for these dashboards (and absent in multiprocess mode).
disable_created_metrics()

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by method, route and status.", ["method", "path", "status"]
)
WEBHOOK_REQUESTS = Counter("webhook_requests_total", "POST /webhook outcomes.", ["result"])
REQUEST_LATENCY = Histogram(
    "request_latency_ms", "Request latency in milliseconds.", buckets=LATENCY_BUCKETS_MS
)
for _result in WEBHOOK_RESULTS:
    WEBHOOK_REQUESTS.labels(_result)

# prometheus_client writes whole-number bounds as le="100.0"; the contract (and Go clients) say
# le="100". Both parse to the same float; this keeps exact-text checks working.
_WHOLE_BOUND = re.compile(r'le="([0-9]+)\.0"')


def _contract_format(view):
    @wraps(view)
    def formatted(*args, **kwargs):
        body, status, headers = view(*args, **kwargs)
        return _WHOLE_BOUND.sub(r'le="\1"', body), status, headers

    return formatted


prometheus = PrometheusMetrics.for_app_factory(
    export_defaults=False, metrics_decorator=_contract_format
)


def observe(method, route, status, latency_ms):
    method = method if method in METHODS else "OTHER"
    HTTP_REQUESTS.labels(method, route or UNMATCHED_PATH, str(status)).inc()
    REQUEST_LATENCY.observe(latency_ms)


def count_webhook(result):
    WEBHOOK_REQUESTS.labels(result).inc()


def init_app(app):
    prometheus.init_app(app)
