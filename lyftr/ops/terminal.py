"""What an operator's command shows: its data on stdout, everything else on stderr.

An operator's mistake (a database that is not there, a folder that is missing, a file that exists)
is one line saying what to do and a non-zero exit status, never a traceback (``explained``). A
progress bar is drawn on stderr, and only when stderr is a terminal (``progress``).
"""

import contextlib
import functools
import os
import sys

import click
from flask import current_app
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError

from lyftr import config
from lyftr.extensions import db
from lyftr.store import database_errors


def _database_name():
    """The database the command uses, as the operator can recognise it (no password)."""
    return make_url(current_app.config["SQLALCHEMY_DATABASE_URI"]).render_as_string(
        hide_password=True
    )


def explained(command):
    """Turn a database that cannot be used into one line saying why and what to check."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DatabaseError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise click.ClickException(
                f"cannot use the database {_database_name()} "
                f"({database_errors.cause(exc)}: {reason}): check DATABASE_URL and that the "
                "database is up"
            ) from exc
        except OSError as exc:  # SQLite's folder could not be made, or the file opened
            raise click.ClickException(
                f"cannot use the database {_database_name()} ({exc}): check DATABASE_URL"
            ) from exc

    return run


@contextlib.contextmanager
def settings_explained():
    """Around building the app for a command: a setting the factory refuses (DATABASE_URL,
    API_TOKEN without SECRET_KEY) is one line. Outside a command (Gunicorn) the error is left as
    it is, for the server's own report."""
    try:
        yield
    except (ValueError, ArgumentError) as exc:
        if click.get_current_context(silent=True) is None:
            raise
        message = str(exc) if isinstance(exc, ValueError) else f"DATABASE_URL: {exc}"
        raise click.ClickException(message) from exc


def require_database():
    """A command that only reads (or removes) data must not create an empty database where a
    mistyped DATABASE_URL points: say there is none instead."""
    path = config.sqlite_path(current_app.config["SQLALCHEMY_DATABASE_URI"])
    if path is not None:
        if not os.path.isfile(path):
            raise click.ClickException(
                f"there is no database at {path}: check DATABASE_URL "
                "(this command does not create one)"
            )
        return
    with db.engine.connect() as connection:
        has_messages = inspect(connection).has_table("messages")
    if not has_messages:
        raise click.ClickException(
            f"the database {_database_name()} has no lyftr tables: check DATABASE_URL, or create "
            "them with `lyftr db upgrade`"
        )


def progress(length, label):
    """A progress bar of ``length`` steps on stderr when it is a terminal, else one that draws
    nothing (a log, a pipe, a test): use as ``with progress(n, "...") as bar: bar.update(k)``."""
    stream = sys.stderr
    if not stream.isatty():
        return contextlib.nullcontext(_Silent())
    return click.progressbar(length=length, label=label, file=stream, show_pos=True)


class _Silent:
    def update(self, n_steps, current_item=None):
        pass


def plural(count, singular, plural_form=None):
    """``1 bad line``, ``2 bad lines``."""
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"
