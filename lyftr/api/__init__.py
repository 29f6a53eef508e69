"""The HTTP API: the read endpoints, and what every endpoint shares (errors, auth, the request log).

Each endpoint is a blueprint in its own module; ``openapi`` documents every route registered on the
app, from the operation each view declares next to itself (``openapi.operation``).
"""

from lyftr.api import (
    errors,
    events,
    exporter,
    feed,
    health,
    messages,
    openapi,
    request_log,
    stats,
)
from lyftr.api.limits import Waiters

BLUEPRINTS = (messages.bp, feed.bp, events.bp, stats.bp, health.bp, openapi.bp)


def init_app(app):
    errors.init_app(app)
    request_log.init_app(app)
    exporter.init_app(app)
    app.extensions["lyftr.feed_waiters"] = Waiters(app.config["FEED_WAITERS"])
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
