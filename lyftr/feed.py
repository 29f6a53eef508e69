"""GET /feed: every stored message once, in the order messages were committed (seq order).

A consumer starts at ``after=0`` and passes back each answer's ``next_after``: it sees every message
once, never skipping one and never seeing one twice, whatever commits concurrently. With ``wait``,
a request with nothing to give waits for a commit (polling, without holding a connection or, under
gevent, a worker) and answers within FEED_POLL_S of it, or empty when the wait is over.
"""

import time

from flask import Blueprint

from . import schemas, storage
from .auth import token_required
from .errors import load_query
from .messages import record_item

bp = Blueprint("feed", __name__)
FEED_POLL_S = 0.1

_query_schema = schemas.FeedQuerySchema()


@bp.get("/feed")
@token_required
def read_feed():
    query = load_query(_query_schema)

    deadline = time.monotonic() + query["wait"]
    while True:
        records = storage.feed(query["after"], query["limit"])
        if records or time.monotonic() >= deadline:
            break
        time.sleep(min(FEED_POLL_S, max(deadline - time.monotonic(), 0)))
    return {
        "data": [record_item(record) for record in records],
        "next_after": records[-1].seq if records else query["after"],
    }
