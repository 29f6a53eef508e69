"""The bench's database: a SQLite file, or a schema of its own in a PostgreSQL database.

``open_database`` picks the class from the URL; each says what the server gets as its
DATABASE_URL, makes and drops what the bench made, reads back the stored message_ids of a round
and measures the database's size.
"""

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT


def sqlite_file(database_url):
    """The file behind a ``sqlite:///`` URL (relative paths from the repository root)."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        raise SystemExit(f"--database-url must be a SQLite URL ({prefix}...): {database_url}")
    path = database_url[len(prefix) :].split("?", 1)[0]
    return Path(path) if path.startswith("/") else ROOT / path


def open_database(database_url):
    """The bench's handle on the database of ``database_url``: SQLite or PostgreSQL."""
    scheme = database_url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        return PostgresDatabase(database_url)
    if scheme == "sqlite":
        return SqliteDatabase(database_url)
    raise SystemExit(
        "--database-url must be a SQLite (sqlite:///...) or PostgreSQL "
        f"(postgresql+psycopg://...) URL: {database_url}"
    )


class SqliteDatabase:
    """A SQLite file: the server gets the URL as given; the bench reads the file directly."""

    backend = "sqlite"
    created = False  # nothing of the bench's own in a database server to drop or keep

    def __init__(self, database_url):
        self.url = database_url
        self.path = sqlite_file(database_url)

    def __str__(self):
        return str(self.path)

    def create(self):
        """Nothing to do: the server creates the file."""

    def drop(self):
        """Nothing to do: a temporary file goes with the bench's directory, a given one stays."""

    def versions(self):
        return {"sqlite": sqlite3.sqlite_version}

    def stored_ids(self, prefix):
        uri = f"file:{self.path}?mode=ro"
        with sqlite3.connect(uri, uri=True) as connection:
            rows = connection.execute(
                "SELECT message_id FROM messages WHERE message_id >= ? AND message_id < ?",
                (prefix + "-", prefix + "."),
            ).fetchall()
        connection.close()
        return {row[0] for row in rows}

    def size(self):
        sizes = {}
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{self.path}{suffix}")
            sizes[suffix or "db"] = path.stat().st_size if path.exists() else 0
        return {
            "total_mb": round(sum(sizes.values()) / 1e6, 1),
            "db_mb": round(sizes["db"] / 1e6, 1),
            "wal_mb": round(sizes["-wal"] / 1e6, 1),
            "shm_mb": round(sizes["-shm"] / 1e6, 1),
        }


class PostgresDatabase:
    """A new schema of the bench's own in the PostgreSQL database of ``database_url``.

    The server and ``flask seed`` get the URL with ``options=-csearch_path=<schema>,public`` (and
    ``application_name=<schema>``, so that any connection left open can be ended before the drop);
    the bench's own queries (psycopg, imported here only) name the schema explicitly.
    """

    backend = "postgresql"

    def __init__(self, database_url):
        from sqlalchemy.engine import make_url

        url = make_url(database_url)
        self.name = "lyftr_bench_" + datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
        options = url.query.get("options")
        if isinstance(options, tuple):
            options = " ".join(options)
        search_path = f"-csearch_path={self.name},public"
        self.url = url.update_query_dict(
            {
                "options": f"{options} {search_path}" if options else search_path,
                "application_name": self.name,
            }
        ).render_as_string(hide_password=False)
        self.shown = url.render_as_string(hide_password=True)
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.created = False

    def __str__(self):
        return f"{self.shown}, schema {self.name}"

    def connect(self):
        import psycopg

        return psycopg.connect(self.conninfo, autocommit=True)

    def _schema(self):
        from psycopg import sql

        return sql.Identifier(self.name)

    def create(self):
        from psycopg import sql

        with self.connect() as connection:
            # pg_trgm in public, before the migrations run: made inside the bench schema (the
            # first on the search_path) it would go when the schema is dropped.
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
            connection.execute(sql.SQL("CREATE SCHEMA {}").format(self._schema()))
        self.created = True

    def drop(self):
        """Drop the schema this bench made (only that one), ending its connections first."""
        if not self.created:
            return
        from psycopg import sql

        with self.connect() as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (self.name,),
            )
            connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(self._schema()))
        self.created = False

    def versions(self):
        import psycopg

        with self.connect() as connection:
            version = connection.execute("SELECT current_setting('server_version')").fetchone()[0]
        return {"postgresql": version, "psycopg": psycopg.__version__}

    def stored_ids(self, prefix):
        from psycopg import sql

        query = sql.SQL(
            "SELECT message_id FROM {}.messages WHERE message_id >= %s AND message_id < %s"
        )
        with self.connect() as connection:
            rows = connection.execute(
                query.format(self._schema()), (prefix + "-", prefix + ".")
            ).fetchall()
        return {row[0] for row in rows}

    def size(self):
        """pg_total_relation_size (heap, TOAST, indexes) summed over the schema's tables."""
        with self.connect() as connection:
            tables, total, heap, indexes = connection.execute(
                "SELECT count(*), coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint,"
                " coalesce(sum(pg_table_size(c.oid)), 0)::bigint,"
                " coalesce(sum(pg_indexes_size(c.oid)), 0)::bigint"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relkind IN ('r', 'm')",
                (self.name,),
            ).fetchone()
        return {
            "total_mb": round(total / 1e6, 1),
            "tables_mb": round(heap / 1e6, 1),
            "indexes_mb": round(indexes / 1e6, 1),
            "tables": tables,
            "schema": self.name,
        }
