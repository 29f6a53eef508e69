"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app`` (and ``flask --app wsgi ...``)."""

from lyftr import create_app, logs
from lyftr.ops.terminal import settings_explained

# Under `flask --app wsgi ...` a refused setting is one line; under Gunicorn, its error report.
with settings_explained():
    app = create_app()
logs.configure(app.config["LOG_LEVEL"])
