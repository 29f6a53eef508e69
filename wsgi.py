"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app`` (and ``flask --app wsgi ...``)."""

import os

from lyftr import create_app, logs

# Everything the service and its commands create (the database, its WAL, backups, the metrics
# files) is for its own user only: messages are private. Set before anything is opened; Gunicorn
# imports this module in each worker, `flask --app wsgi` before running a command.
os.umask(0o077)

app = create_app()
logs.configure(app.config["LOG_LEVEL"])
