"""GET /stats: totals, the top senders and the time span, from counts kept at insert time."""

from flask import Blueprint

from . import storage

bp = Blueprint("stats", __name__)


@bp.get("/stats")
def show_stats():
    return storage.stats()
