"""GET /stats: totals, the top senders and the time span, from counts kept at insert time."""

from flask import Blueprint

from lyftr import store
from lyftr.api.auth import token_required
from lyftr.api.openapi import operation
from lyftr.api.response_schemas import (
    DATABASE_UNAVAILABLE,
    INTERNAL_ERROR,
    OPTIONAL_BEARER,
    UNAUTHORIZED,
    StatsSchema,
    json_response,
)

bp = Blueprint("stats", __name__)


STATS_OPERATION = {
    "operationId": "getStats",
    "summary": "Totals, the top 10 senders and the time span of stored messages.",
    "tags": ["messages"],
    "security": OPTIONAL_BEARER,
    "responses": {
        "200": json_response(
            StatsSchema, "Statistics; the ts values are null when nothing is stored."
        ),
        "401": UNAUTHORIZED,
        "500": INTERNAL_ERROR,
        "503": DATABASE_UNAVAILABLE,
    },
}


@bp.get("/stats")
@operation(STATS_OPERATION)
@token_required
def show_stats():
    stats = store.stats()
    return {
        "total_messages": stats.total,
        "senders_count": stats.senders,
        "messages_per_sender": [
            {"from": sender, "count": count} for sender, count in stats.top_senders
        ],
        "first_message_ts": stats.first_ts,
        "last_message_ts": stats.last_ts,
    }
