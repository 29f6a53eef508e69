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
    checks = {}
    checks["webhook_secret"] = "ok" if current_app.config["WEBHOOK_SECRET"] else "missing: WEBHOOK_SECRET is not set"
    try:
        storage.check_database()
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason goes to the body and the log
        storage.forget_schema()
        reason = getattr(exc, "orig", None) or exc
        checks["database"] = f"unavailable: {reason}"
        logger.warning("readiness: database unavailable: %s", reason)
    failed = sorted(name for name, state in checks.items() if state != "ok")
    if failed:
        detail = "not ready: " + ", ".join(failed)
        return {"status": "unavailable", "detail": detail, "checks": checks}, 503
    return {"status": "ready", "checks": checks}
