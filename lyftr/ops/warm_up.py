"""A server's worker made ready before it serves its first request.

The first storage call of a process checks the schema (Alembic, under the write lock) and the
first render of each console page compiles its template: 20-50 ms that the first request to each
worker would otherwise wait, after every start or restart. The first large read of a process also
pays for memory it has never used, and its first search reads the search index's structure: one
feed page of the largest size and one search, made here, took 2-3 ms off a worker's first feed
page of 1,000 and about as much off its first search (docs/performance.md). Gunicorn calls
``warm_up`` in each worker once the app is loaded (``post_worker_init`` in gunicorn.conf.py).
"""

import logging

from lyftr import store
from lyftr.api.feed import page
from lyftr.api.schemas import FEED_LIMIT_MAX

logger = logging.getLogger(__name__)
# Searched once at start: its trigrams ("zqx", "qxj") are in next to no text, so the search reads
# the index's structure and next to none of its entries, however large the table.
UNLIKELY_WORD = "zqxj"


def warm_up(app):
    """Check the schema, make the largest reads once, and compile the console's templates. A
    database that cannot be reached now is logged, not raised: the worker serves anyway and its
    first storage call tries again."""
    with app.app_context():
        try:
            store.prepare()
        except Exception as exc:  # noqa: BLE001 - the first request retries and reports it
            logger.warning(
                "worker started without the database", extra={"cause": store.failure_cause(exc)}
            )
        else:
            _read_once(app)
        for name in app.jinja_env.list_templates(filter_func=lambda n: n.startswith("console/")):
            app.jinja_env.get_template(name)


def _read_once(app):
    try:
        app.json.dumps(page(store.feed(0, FEED_LIMIT_MAX), 0))
        store.list_messages(limit=1, offset=0, q=UNLIKELY_WORD)
    except Exception as exc:  # noqa: BLE001 - only a head start: the requests will say what fails
        logger.info("worker warm-up read failed", extra={"cause": store.failure_cause(exc)})
