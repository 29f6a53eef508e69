"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app`` (and ``flask --app wsgi ...``)."""

import os

from lyftr import create_app, logs
from lyftr.ops.terminal import settings_explained

# Everything the service and its commands create (the database, its WAL, backups, the metrics
# files) is for its own user only: messages are private. Set before anything is opened; Gunicorn
# imports this module in each worker, `flask --app wsgi` before running a command.
os.umask(0o077)

# Under `flask --app wsgi ...` a refused setting is one line; under Gunicorn, its error report.
with settings_explained():
    app = create_app()
logs.configure(app.config["LOG_LEVEL"])
