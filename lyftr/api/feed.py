"""GET /feed: every stored message once, in the order messages were committed (seq order).

A consumer starts at ``after=0`` and passes back each answer's ``next_after``: it sees every message
once, never skipping one and never seeing one twice, whatever commits concurrently. With ``wait``,
a request with nothing to give waits for a commit (without holding a connection or, under gevent, a
worker) and answers soon after it, or empty when the wait is over: on PostgreSQL it is woken by
the commit's NOTIFY, from any host; on SQLite it looks again every 100 ms (store.commit_signal).
"""

import time

from flask import Blueprint, current_app

from lyftr import store
from lyftr.api import schemas
from lyftr.api.auth import token_required
from lyftr.api.errors import load_query
from lyftr.api.limits import RETRY_AFTER_S
from lyftr.api.messages import record_item
from lyftr.api.openapi import operation
from lyftr.api.request_log import annotate
from lyftr.api.response_schemas import (
    DATABASE_UNAVAILABLE,
    INTERNAL_ERROR,
    OPTIONAL_BEARER,
    UNAUTHORIZED,
    FeedPageSchema,
    ValidationErrorSchema,
    json_response,
)

bp = Blueprint("feed", __name__)

_query_schema = schemas.FeedQuerySchema()


READ_OPERATION = {
    "operationId": "readFeed",
    "summary": "Every stored message once, in commit order, for a consumer.",
    "description": (
        "Start at after=0 and pass back each answer's next_after: every stored message is "
        "handed out once, none skipped, none twice, whatever commits concurrently. With "
        "wait > 0 and nothing after `after`, the request waits for a commit (answering "
        "within about 100 ms of it, sooner on PostgreSQL) or answers empty when the wait is over. "
        "A worker keeps at most FEED_WAITERS requests waiting: beyond them a request with "
        "nothing to give is answered at once, empty, with Retry-After. Purged messages no longer "
        "appear; seq values are never reused."
    ),
    "tags": ["messages"],
    "security": OPTIONAL_BEARER,
    "parameters": [{"in": "query", "schema": schemas.FeedQuerySchema}],
    "responses": {
        "200": json_response(
            FeedPageSchema,
            "Up to limit records after `after`, in seq order.",
            headers={
                "Retry-After": {
                    "description": "Only on an empty answer given at once because FEED_WAITERS "
                    "requests of this worker are already waiting: seconds before polling again.",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                }
            },
        ),
        "401": UNAUTHORIZED,
        "422": json_response(
            ValidationErrorSchema, "Invalid query parameter; loc is ['query', name]."
        ),
        "500": INTERNAL_ERROR,
        "503": DATABASE_UNAVAILABLE,
    },
}


@bp.get("/feed")
@operation(READ_OPERATION)
@token_required
def read_feed():
    query = load_query(_query_schema)
    records = store.feed(query["after"], query["limit"])
    if not records and query["wait"] > 0:
        with current_app.extensions["lyftr.feed_waiters"].slot() as waiting:
            if not waiting:
                # Every waiter slot of this worker is taken: a connection held for the whole wait
                # is what an attacker wants, so this one is answered now.
                annotate(wait="refused")
                return page([], query["after"]), 200, {"Retry-After": str(RETRY_AFTER_S)}
            records = _wait_for_records(query)
    return page(records, query["after"])


def _wait_for_records(query):
    deadline = time.monotonic() + query["wait"]
    while True:
        seen = store.commits_seen()
        records = store.feed(query["after"], query["limit"])
        if records or time.monotonic() >= deadline:
            return records
        store.wait_for_commit(seen, deadline - time.monotonic())


def page(records, after):
    """The body of a feed page: ``records`` shaped, and where the next page starts."""
    return {
        "data": [record_item(record) for record in records],
        "next_after": records[-1].seq if records else after,
    }
