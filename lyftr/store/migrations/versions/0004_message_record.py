"""The normalized message record: channel, sender name, media, location, reply, reactions, edits;
delivery statuses, refused deliveries, and edits/revokes/reactions waiting for their message.

New columns on ``messages`` (JSON documents as text, like ``raw``): ``channel``, ``sender_name``,
``media`` (a list), ``location``, ``reply_to``, ``reactions`` (a list), ``edited_at``,
``revoked_at``. Rows from /webhook need nothing but the constant default (channel 'webhook'): no
table rewrite. Rows from WhatsApp and Twilio get the fields their ``raw`` allows, read by the same
functions the endpoints use (``providers.whatsapp_record``, ``providers.twilio_record``), a page
at a time. Their ``text`` and search entries are left as they were stored: rewriting them would
rebuild the search index inside the migration; new rows get the fuller text.

New tables: ``statuses`` (delivery status events, once per provider, message and status),
``rejections`` (refused deliveries, the newest REJECTIONS_KEEP) and ``pending_actions`` (an edit,
revoke or reaction that arrived before its message).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NEW_COLUMNS = (
    ("sender_name", sa.Text()),
    ("media", sa.Text()),
    ("location", sa.Text()),
    ("reply_to", sa.String()),
    ("reactions", sa.Text()),
    ("edited_at", sa.String()),
    ("revoked_at", sa.String()),
)
BACKFILL_PAGE = 1000
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.add_column(
        "messages", sa.Column("channel", sa.String(), nullable=False, server_default="webhook")
    )
    for name, type_ in NEW_COLUMNS:
        op.add_column("messages", sa.Column(name, type_, nullable=True))
    _backfill(op.get_bind())
    op.create_table(
        "statuses",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("ts", sa.String(), nullable=False),
        sa.Column("ts_key", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=True),
        sa.Column("errors", sa.Text(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("received_at", sa.String(), nullable=False),
    )
    op.create_index(
        "ix_statuses_once", "statuses", ["provider", "message_id", "status"], unique=True
    )
    op.create_index("ix_statuses_message_id", "statuses", ["message_id", "id"])
    op.create_table(
        "rejections",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("client", sa.String(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("body_sha256", sa.String(), nullable=True),
        sa.Column("body_size", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
    )
    op.create_table(
        "pending_actions",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("target_id", sa.String(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
    )
    op.create_index("ix_pending_actions_target", "pending_actions", ["target_id", "id"])


def downgrade():
    op.drop_table("pending_actions")
    op.drop_index("ix_statuses_message_id", table_name="statuses")
    op.drop_index("ix_statuses_once", table_name="statuses")
    op.drop_table("statuses")
    op.drop_table("rejections")
    for name, _ in reversed(NEW_COLUMNS):
        op.drop_column("messages", name)
    op.drop_column("messages", "channel")


def _backfill(connection):
    # Imported here: the providers' readers are only needed when there are rows to read.
    from lyftr.providers import twilio_record, whatsapp_record

    readers = {
        "whatsapp": lambda raw: whatsapp_record.fields(*whatsapp_record.from_raw(raw)),
        "twilio": twilio_record.fields,
    }
    page = sa.text(
        "SELECT message_id, provider, raw FROM messages WHERE provider IN ('whatsapp', 'twilio') "
        "AND raw IS NOT NULL AND message_id > :after ORDER BY message_id LIMIT :n"
    )
    update = sa.text(
        "UPDATE messages SET channel = :channel, sender_name = :sender_name, media = :media, "
        "location = :location, reply_to = :reply_to WHERE message_id = :message_id"
    )
    after = ""
    while rows := connection.execute(page, {"after": after, "n": BACKFILL_PAGE}).all():
        updates = []
        for message_id, provider, raw in rows:
            try:
                document = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(document, dict):
                continue
            found = readers[provider](document)
            updates.append(
                {
                    "message_id": message_id,
                    "channel": found["channel"],
                    "sender_name": found["sender_name"],
                    "media": _dumps(found["media"]),
                    "location": _dumps(found["location"]),
                    "reply_to": found["reply_to"],
                }
            )
        if updates:
            connection.execute(update, updates)
        after = rows[-1][0]


def _dumps(value):
    return None if value is None else json.dumps(value)
