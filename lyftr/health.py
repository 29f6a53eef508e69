"""Liveness and readiness probes."""

import logging

from flask import Blueprint, current_app

from . import storage

bp = Blueprint("health", __name__, url_prefix="/health")
logger = logging.getLogger(__name__)


@bp.get("/live")
def live():
    return {"status": "ok"}


@bp.get("/ready")
def ready():
    """Ready when the webhook secret is set and the database can be read and written."""
    checks = readiness_checks()
    if checks["database"] != "ok":
        logger.warning("readiness: database %s", checks["database"])
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
    problem = storage.database_problem()
    checks["database"] = f"unavailable: {problem}" if problem else "ok"
    return checks
