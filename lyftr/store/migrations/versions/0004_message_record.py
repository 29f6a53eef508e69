"""The normalized message record: channel, sender name, media, location, reply, reactions, edits.

New columns on ``messages`` (JSON documents as text, like ``raw``): ``channel``, ``sender_name``,
``media`` (a list), ``location``, ``reply_to``, ``reactions`` (a list), ``edited_at``,
``revoked_at``. Rows from /webhook need nothing but the constant default (channel 'webhook'): no
table rewrite. Rows from WhatsApp and Twilio get the fields their ``raw`` allows, read by the same
functions the endpoints use (``providers.whatsapp_record``, ``providers.twilio_record``), a page
at a time. Their ``text`` and search entries are left as they were stored: rewriting them would
rebuild the search index inside the migration; new rows get the fuller text.

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


def upgrade():
    op.add_column(
        "messages", sa.Column("channel", sa.String(), nullable=False, server_default="webhook")
    )
    for name, type_ in NEW_COLUMNS:
        op.add_column("messages", sa.Column(name, type_, nullable=True))
    _backfill(op.get_bind())


def downgrade():
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
