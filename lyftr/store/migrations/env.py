"""Alembic environment: migrations run in a locked transaction, never beside another process's.

The app passes its own connection (``config.attributes["connection"]``, see ``schema.upgrade``);
``flask db upgrade`` passes none, and one is taken here the same way. Logging is left to the app.
"""

from alembic import context
from flask import current_app

from lyftr import store
from lyftr.extensions import db
from lyftr.store import models  # noqa: F401  (models fill db.metadata, for autogenerate)


def include_object(obj, name, type_, reflected, compare_to):
    """Autogenerate compares the models with the database, but leaves alone what only the
    migrations make for one backend (SQLite's FTS5 tables, PostgreSQL's search columns)."""
    return not (reflected and compare_to is None)


def run_migrations(connection):
    context.configure(
        connection=connection,
        target_metadata=db.metadata,
        include_object=include_object,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline():
    context.configure(
        url=current_app.config["SQLALCHEMY_DATABASE_URI"],
        target_metadata=db.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif context.config.attributes.get("connection") is not None:
    run_migrations(context.config.attributes["connection"])
else:
    with store.backend().migration_transaction() as connection:
        run_migrations(connection)
