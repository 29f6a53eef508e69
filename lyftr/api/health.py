"""Liveness and readiness probes."""

import logging

from flask import Blueprint, current_app

from lyftr import store
from lyftr.api.openapi import operation
from lyftr.api.response_schemas import LiveSchema, NotReadySchema, ReadySchema, json_response

bp = Blueprint("health", __name__, url_prefix="/health")
logger = logging.getLogger(__name__)


LIVE_OPERATION = {
    "operationId": "live",
    "summary": "Liveness: 200 whenever the process serves HTTP.",
    "tags": ["health"],
    "responses": {"200": json_response(LiveSchema, "Alive.")},
}


@bp.get("/live")
@operation(LIVE_OPERATION)
def live():
    return {"status": "ok"}


READY_OPERATION = {
    "operationId": "ready",
    "summary": "Readiness: the database can be read and written, and WEBHOOK_SECRET is set.",
    "tags": ["health"],
    "responses": {
        "200": json_response(ReadySchema, "Ready."),
        "503": json_response(NotReadySchema, "Not ready; checks says which check failed."),
    },
}


@bp.get("/ready")
@operation(READY_OPERATION)
def ready():
    """Ready when the webhook secret is set and the database can be read and written."""
    checks = readiness_checks()
    failed = sorted(name for name, state in checks.items() if state != "ok")
    if failed:
        detail = "not ready: " + ", ".join(failed)
        return {"status": "unavailable", "detail": detail, "checks": checks}, 503
    return {"status": "ready", "checks": checks}


def readiness_checks():
    """Each readiness check: "ok", or what is wrong (also shown by the console's overview)."""
    checks = {}
    if current_app.config["WEBHOOK_SECRET"]:
        checks["webhook_secret"] = "ok"
    else:
        checks["webhook_secret"] = "missing: WEBHOOK_SECRET is not set"
    problem = store.database_problem()
    if problem is None:
        checks["database"] = "ok"
        return checks
    cause, error = problem
    # Only the cause is shown (readiness is public); the driver's error, which may name the
    # database's host, user or file, goes to the log.
    checks["database"] = f"unavailable: {cause}"
    logger.warning("readiness: database %s", cause, extra={"error": error} if error else None)
    return checks
