"""lyftr: a webhook ingestion service that stores each signed message exactly once."""


def create_app(test_config=None):
    """Build the app from the environment; ``test_config`` overrides individual settings.

    Only wiring: no connection is made and no log handler is set up here. The entry point
    (``wsgi.py``) sets up logging; the database is migrated by ``flask db upgrade`` or, if still
    pending, before the first storage call (``lyftr.store.schema``).
    """
    # Imported here, not at the top: Gunicorn's master imports lyftr.logs for its log formatter
    # and should not load the app before the workers' gevent patching.
    from flask import Flask

    from lyftr import api, config, console, ops, providers, store
    from lyftr.api.limits import BoundedBodies

    app = Flask(__name__)
    app.config.update(config.from_env())
    if test_config:
        app.config.update(test_config)
    config.check_secrets(app.config)  # a set but empty key is a forgery hole: refused here
    database_uri = config.sqlalchemy_uri(app.config["DATABASE_URL"])
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_uri,
        SQLALCHEMY_ENGINE_OPTIONS=config.engine_options(database_uri, app.config),
        MAX_CONTENT_LENGTH=config.MAX_BODY_BYTES,
    )
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Only the client address: the scheme and host stay the connection's (Twilio's signed
        # URL comes from PUBLIC_BASE_URL, never from a header a client can set).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXIES"])
    app.json.sort_keys = False
    # '//x' is a 404 like any unknown URL, not a redirect with an HTML body.
    app.url_map.merge_slashes = False

    store.backend_for(database_uri)  # an unsupported database: a clear error, not a driver's
    console.init_app(app)
    store.init_app(app)
    api.init_app(app)
    providers.init_app(app)
    ops.init_app(app)
    app.wsgi_app = BoundedBodies(
        app.wsgi_app,
        timeout_s=app.config["BODY_TIMEOUT_S"],
        readers=app.config["BODY_READERS"],
        large_readers=app.config["LARGE_BODY_READERS"],
        large_over=config.MAX_BODY_BYTES,
        slot_wait_s=app.config["BODY_SLOT_WAIT_S"],
        url_map=app.url_map,
        probe_port=app.config["PROBE_PORT"],
    )

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
