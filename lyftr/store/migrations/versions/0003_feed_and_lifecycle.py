"""The feed and the data's lifecycle: each message's feed position, arrival order, purged IDs.

- ``messages.seq``: a message's position in the feed, given after it is committed (see
  ``storage.sequence``), unique, never reused; NULL until then (every existing row, at first).
  Its index also finds the rows still waiting for one (NULLs are indexed on both backends).
- Arrival order (``created_at``) is indexed: the feed numbers rows in it, retention deletes by it.
- ``purged_ids``: the IDs of purged messages, kept for a while so that a provider retrying one is
  still answered as a duplicate.
- Where seq comes from: a PostgreSQL sequence; on SQLite (one writer at a time) a counter row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

KEY = sa.String().with_variant(sa.String(collation="C"), "postgresql")


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column("messages", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.create_index("ix_messages_seq", "messages", ["seq"], unique=True)
    op.create_index("ix_messages_created_at", "messages", ["created_at", "message_id"])
    op.create_table(
        "purged_ids",
        sa.Column("message_id", KEY, primary_key=True),
        sa.Column("purged_at", sa.String(), nullable=False),
    )
    op.create_index("ix_purged_ids_purged_at", "purged_ids", ["purged_at"])
    if postgres:
        op.execute("CREATE SEQUENCE messages_seq AS bigint")
    else:
        op.create_table(
            "counters",
            sa.Column("name", sa.String(), primary_key=True),
            sa.Column("value", sa.BigInteger(), nullable=False),
        )
        op.execute("INSERT INTO counters (name, value) VALUES ('seq', 0)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE messages_seq")
    else:
        op.drop_table("counters")
    op.drop_index("ix_purged_ids_purged_at", table_name="purged_ids")
    op.drop_table("purged_ids")
    op.drop_index("ix_messages_created_at", table_name="messages")
    op.drop_index("ix_messages_seq", table_name="messages")
    op.drop_column("messages", "seq")
