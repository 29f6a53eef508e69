"""Baseline: messages, sender counts and the search index, on SQLite and PostgreSQL.

Databases made by lyftr 1.0 (which created its schema without Alembic) already hold the SQLite
tables: only what is missing is created, so they upgrade in place with their data.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# PostgreSQL compares text by the database's locale unless told otherwise; keys must sort by code
# point, as SQLite does, for the same order and the same cursors on both backends.
KEY = sa.String().with_variant(sa.String(collation="C"), "postgresql")

# SQLite's substring index: FTS5 trigrams over the case-folded text (rowid = messages.rowid).
SQLITE_SEARCH_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts "
    "USING fts5(text_folded, tokenize='trigram case_sensitive 1')"
)
# SQLite: PRAGMA user_version 1 = texts with a NUL are indexed in full (lyftr 1.0 cut them at it).
# As lyftr.folding.indexed_text writes them, copied rather than imported: a migration must keep
# doing what it did when it was written.
NUL_STANDIN = "\uffff"


def upgrade():
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    if "messages" not in existing:
        columns = [
            sa.Column("message_id", KEY, primary_key=True),
            sa.Column("from_msisdn", KEY, nullable=False),
            sa.Column("to_msisdn", sa.String(), nullable=False),
            sa.Column("ts", sa.String(), nullable=False),
            sa.Column("ts_key", KEY, nullable=False),
            sa.Column("text", sa.Text(), nullable=True),
            sa.Column("created_at", sa.String(), nullable=False),
        ]
        if postgres:
            # The case-folded text the trigram index serves (SQLite keeps it in messages_fts), and
            # whether ``text`` holds the JSON string of a text with NUL (PostgreSQL can't store it).
            columns += [
                sa.Column("text_folded", sa.Text(), nullable=True),
                sa.Column("text_escaped", sa.Boolean(), nullable=False, server_default=sa.false()),
            ]
        op.create_table("messages", *columns)
        op.create_index("ix_messages_ts_key", "messages", ["ts_key", "message_id"])
        op.create_index(
            "ix_messages_from_ts_key", "messages", ["from_msisdn", "ts_key", "message_id"]
        )
        if postgres:
            op.create_index(
                "ix_messages_text_folded_trgm",
                "messages",
                ["text_folded"],
                postgresql_using="gin",
                postgresql_ops={"text_folded": "gin_trgm_ops"},
            )

    if "sender_counts" not in existing:
        op.create_table(
            "sender_counts",
            sa.Column("from_msisdn", KEY, primary_key=True),
            sa.Column("count", sa.Integer(), nullable=False),
        )
        op.create_index(
            "ix_sender_counts_rank", "sender_counts", [sa.text("count DESC"), "from_msisdn"]
        )

    if not postgres:
        op.execute(SQLITE_SEARCH_DDL)
        _reindex_texts_with_nul(bind)


def _reindex_texts_with_nul(bind):
    if bind.exec_driver_sql("PRAGMA user_version").scalar() >= 1:
        return
    rows = bind.exec_driver_sql(
        "SELECT rowid, text FROM messages WHERE instr(text, char(0)) > 0"
    ).all()
    for rowid, value in rows:
        bind.exec_driver_sql("DELETE FROM messages_fts WHERE rowid = ?", (rowid,))
        bind.exec_driver_sql(
            "INSERT INTO messages_fts (rowid, text_folded) VALUES (?, ?)",
            (rowid, value.casefold().replace("\x00", NUL_STANDIN)),
        )
    bind.exec_driver_sql("PRAGMA user_version = 1")


def downgrade():
    op.drop_table("sender_counts")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS messages_fts")
    op.drop_table("messages")
