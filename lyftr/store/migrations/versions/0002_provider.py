"""Where each message came from: its provider, its type and the provider's payload as received.

Rows stored before this revision came through /webhook: provider 'webhook', type 'text', no raw
payload (the contract's message is all there is). Adding columns with constant defaults changes no
existing row on either backend (no table rewrite at any size).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "messages",
        sa.Column("provider", sa.String(), nullable=False, server_default="webhook"),
    )
    op.add_column("messages", sa.Column("type", sa.String(), nullable=False, server_default="text"))
    op.add_column("messages", sa.Column("raw", sa.Text(), nullable=True))


def downgrade():
    for column in ("raw", "type", "provider"):
        op.drop_column("messages", column)
