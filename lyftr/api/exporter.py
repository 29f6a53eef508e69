"""GET /metrics: the metrics of ``lyftr.metrics`` in Prometheus' text format, behind the token.

Under Gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set before any worker starts (gunicorn.conf.py):
each worker writes its samples there and a scrape of any worker sums all of them.
"""

import re
from functools import wraps

from prometheus_flask_exporter import PrometheusMetrics

from lyftr.api.auth import token_required
from lyftr.api.openapi import operation
from lyftr.api.response_schemas import OPTIONAL_BEARER, REQUEST_ID_HEADER, UNAUTHORIZED

# prometheus_client writes whole-number bounds as le="100.0"; the contract (and Go clients) say
# le="100". Both parse to the same float; this keeps exact-text checks working.
_WHOLE_BOUND = re.compile(r'le="([0-9]+)\.0"')


def _contract_format(view):
    @wraps(view)
    def formatted(*args, **kwargs):
        body, status, headers = view(*args, **kwargs)
        return _WHOLE_BOUND.sub(r'le="\1"', body), status, headers

    return formatted


METRICS_OPERATION = {
    "operationId": "metrics",
    "summary": "Prometheus metrics, summed over every Gunicorn worker.",
    "description": (
        "http_requests_total{method, path, status}, webhook_requests_total{result}, "
        "provider_requests_total{provider, result}, messages_stored_total{provider}, "
        "whatsapp_updates_total{kind}, request_latency_ms histogram."
    ),
    "tags": ["operations"],
    "security": OPTIONAL_BEARER,
    "responses": {
        "200": {
            "description": "Prometheus text exposition format.",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                # Prometheus content negotiation: asked for with Accept.
                "application/openmetrics-text": {"schema": {"type": "string"}},
            },
            "headers": {"X-Request-ID": REQUEST_ID_HEADER},
        },
        "401": UNAUTHORIZED,
    },
}


def _metrics_view(view):
    return operation(METRICS_OPERATION)(token_required(_contract_format(view)))


prometheus = PrometheusMetrics.for_app_factory(
    export_defaults=False, metrics_decorator=_metrics_view
)


def init_app(app):
    prometheus.init_app(app)
