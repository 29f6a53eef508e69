"""A server's worker made ready before it serves its first request.

The first storage call of a process checks the schema (Alembic, under the write lock) and the
first render of each console page compiles its template: 20-50 ms that the first request to each
worker would otherwise wait, after every start or restart. Gunicorn calls ``warm_up`` in each
worker once the app is loaded (``post_worker_init`` in gunicorn.conf.py).
"""

import logging

from lyftr import store

logger = logging.getLogger(__name__)


def warm_up(app):
    """Check the schema and compile the console's templates. A database that cannot be reached
    now is logged, not raised: the worker serves anyway and its first storage call tries again."""
    with app.app_context():
        try:
            store.prepare()
        except Exception as exc:  # noqa: BLE001 - the first request retries and reports it
            logger.warning(
                "worker started without the database", extra={"cause": store.failure_cause(exc)}
            )
        for name in app.jinja_env.list_templates(filter_func=lambda n: n.startswith("console/")):
            app.jinja_env.get_template(name)
