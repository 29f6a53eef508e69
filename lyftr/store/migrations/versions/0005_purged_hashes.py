"""Purged IDs remembered as 8-byte hashes, for as long as configured (by default for ever).

``purged_hashes`` replaces ``purged_ids``: one BIGINT per purged message (``store.sql.id_hash``:
the first 8 bytes of the SHA-256 of its message_id) instead of the ID itself, so remembering every
purged ID for ever costs ~16 bytes a message plus its index entry, and a captured delivery
replayed long after its message was purged is still a duplicate. The IDs remembered so far are
hashed into it. A downgrade cannot turn hashes back into IDs: it leaves ``purged_ids`` empty.

``console_revocations``: the console's logged-out sessions (their nonces), shared by every worker
and host, each until its session would have expired anyway (12 hours after its login).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

KEY = sa.String().with_variant(sa.String(collation="C"), "postgresql")
# On SQLite an INTEGER PRIMARY KEY is the rowid itself: the hash is the row's key, no index beside.
HASH = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
COPY_BATCH = 10_000


def _id_hash(message_id):
    # store.sql.id_hash, written out: a migration stays what it was when the code moves on.
    digest = hashlib.sha256(message_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def upgrade():
    hashes = op.create_table(
        "purged_hashes",
        sa.Column("hash", HASH, primary_key=True, autoincrement=False),
        sa.Column("purged_at", sa.String(), nullable=False),
    )
    op.create_index("ix_purged_hashes_purged_at", "purged_hashes", ["purged_at"])
    connection = op.get_bind()
    remembered = connection.execute(sa.text("SELECT message_id, purged_at FROM purged_ids"))
    while batch := remembered.fetchmany(COPY_BATCH):
        rows = {_id_hash(message_id): purged_at for message_id, purged_at in batch}
        op.bulk_insert(hashes, [{"hash": h, "purged_at": at} for h, at in rows.items()])
    op.drop_index("ix_purged_ids_purged_at", table_name="purged_ids")
    op.drop_table("purged_ids")
    op.create_table(
        "console_revocations",
        sa.Column("nonce", KEY, primary_key=True),
        sa.Column("expires_at", sa.String(), nullable=False),
    )
    op.create_index("ix_console_revocations_expires_at", "console_revocations", ["expires_at"])


def downgrade():
    op.drop_index("ix_console_revocations_expires_at", table_name="console_revocations")
    op.drop_table("console_revocations")
    op.create_table(
        "purged_ids",
        sa.Column("message_id", KEY, primary_key=True),
        sa.Column("purged_at", sa.String(), nullable=False),
    )
    op.create_index("ix_purged_ids_purged_at", "purged_ids", ["purged_at"])
    op.drop_index("ix_purged_hashes_purged_at", table_name="purged_hashes")
    op.drop_table("purged_hashes")
