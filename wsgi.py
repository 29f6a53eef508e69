"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app`` (and ``flask --app wsgi ...``)."""

from lyftr import create_app, logs

app = create_app()
logs.configure(app.config["LOG_LEVEL"])
