"""GET /stats: totals, the top senders and the time span, from counts kept at insert time."""

from flask import Blueprint

from . import storage
from .auth import token_required

bp = Blueprint("stats", __name__)


@bp.get("/stats")
@token_required
def show_stats():
    stats = storage.stats()
    return {
        "total_messages": stats.total,
        "senders_count": stats.senders,
        "messages_per_sender": [
            {"from": sender, "count": count} for sender, count in stats.top_senders
        ],
        "first_message_ts": stats.first_ts,
        "last_message_ts": stats.last_ts,
    }
