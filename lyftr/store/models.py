"""The tables both backends share, as the models that ``flask db migrate`` compares with a database.

The migrations (lyftr/store/migrations) are what creates the schema; what only one backend has lives
only there: SQLite's FTS5 search table, PostgreSQL's ``text_folded``/``text_escaped`` columns and
its trigram index. ``tests/test_migrations.py`` checks that models and migrations agree.

``ts`` is kept exactly as received; ``ts_key`` is the same instant in a form that sorts and compares
chronologically as text, fractional seconds of any precision included (see
``timestamps.message_ts_key``).
``sender_counts`` is maintained in the insert's own transaction, so /stats never scans messages;
``ts_hour_counts`` and ``arrival_hour_counts`` likewise, so a since= total and the console's chart
never count more than one hour's rows (an hour's count: the sum of its shards, see sql.py).
"""

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lyftr.extensions import db

# An auto-numbered key: SQLite numbers only an INTEGER PRIMARY KEY (its rowid).
SERIAL = BigInteger().with_variant(Integer(), "sqlite")


class Message(db.Model):
    __tablename__ = "messages"

    message_id: Mapped[str] = mapped_column(String, primary_key=True)
    from_msisdn: Mapped[str] = mapped_column(String, nullable=False)
    to_msisdn: Mapped[str] = mapped_column(String, nullable=False)
    ts: Mapped[str] = mapped_column(String, nullable=False)
    ts_key: Mapped[str] = mapped_column(String, nullable=False)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[str] = mapped_column(String, nullable=False)
    # Where it came from (webhook, whatsapp, twilio), its kind, and the provider's payload (JSON).
    provider: Mapped[str] = mapped_column(String, nullable=False, server_default="webhook")
    type: Mapped[str] = mapped_column(String, nullable=False, server_default="text")
    raw: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The normalized record (see docs/api.md): JSON documents as text, like raw.
    channel: Mapped[str] = mapped_column(String, nullable=False, server_default="webhook")
    sender_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    media: Mapped[str | None] = mapped_column(Text, nullable=True)
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    reply_to: Mapped[str | None] = mapped_column(String, nullable=True)
    reactions: Mapped[str | None] = mapped_column(Text, nullable=True)
    edited_at: Mapped[str | None] = mapped_column(String, nullable=True)
    revoked_at: Mapped[str | None] = mapped_column(String, nullable=True)
    # Position in the feed: given after commit (storage.sequence), unique, never reused.
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        Index("ix_messages_ts_key", "ts_key", "message_id"),
        Index("ix_messages_from_ts_key", "from_msisdn", "ts_key", "message_id"),
        Index("ix_messages_seq", "seq", unique=True),
        Index("ix_messages_created_at", "created_at", "message_id"),
    )


class SenderCount(db.Model):
    __tablename__ = "sender_counts"

    from_msisdn: Mapped[str] = mapped_column(String, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (Index("ix_sender_counts_rank", count.desc(), "from_msisdn"),)


class ConsoleRevocation(db.Model):
    """A logged-out console session (its nonce), until it would have expired anyway."""

    __tablename__ = "console_revocations"

    nonce: Mapped[str] = mapped_column(String, primary_key=True)
    expires_at: Mapped[str] = mapped_column(String, nullable=False)

    __table_args__ = (Index("ix_console_revocations_expires_at", "expires_at"),)


class PurgedHash(db.Model):
    """A purged message's ID as an 8-byte hash (``sql.id_hash``), kept (by default for ever): a
    delivery of it again, a provider's retry or a captured request replayed, is a duplicate."""

    __tablename__ = "purged_hashes"

    # SQLite: INTEGER PRIMARY KEY, the rowid itself (no separate index).
    hash: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    purged_at: Mapped[str] = mapped_column(String, nullable=False)

    __table_args__ = (Index("ix_purged_hashes_purged_at", "purged_at"),)


class TsHourCount(db.Model):
    """How many messages have each hour ('YYYY-MM-DDTHH') of ts_key: since= totals (sql.py)."""

    __tablename__ = "ts_hour_counts"

    hour: Mapped[str] = mapped_column(String, primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)


class ArrivalHourCount(db.Model):
    """How many messages arrived (created_at) in each hour: the console's chart."""

    __tablename__ = "arrival_hour_counts"

    hour: Mapped[str] = mapped_column(String, primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)


class Status(db.Model):
    """A delivery status event (sent, delivered, read, failed, ...) of a message, once per
    (provider, message_id, status): a redelivered or repeated receipt changes nothing."""

    __tablename__ = "statuses"

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String, nullable=False)
    message_id: Mapped[str] = mapped_column(String, nullable=False)
    status: Mapped[str] = mapped_column(String, nullable=False)
    ts: Mapped[str] = mapped_column(String, nullable=False)
    ts_key: Mapped[str] = mapped_column(String, nullable=False)
    recipient: Mapped[str | None] = mapped_column(String, nullable=True)
    errors: Mapped[str | None] = mapped_column(Text, nullable=True)
    raw: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[str] = mapped_column(String, nullable=False)

    __table_args__ = (
        Index("ix_statuses_once", "provider", "message_id", "status", unique=True),
        Index("ix_statuses_message_id", "message_id", "id"),
    )


class Rejection(db.Model):
    """A refused delivery (the newest REJECTIONS_KEEP): why, from where, and the body's hash and
    size; the body itself only when the request was authentic."""

    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    at: Mapped[str] = mapped_column(String, nullable=False)
    provider: Mapped[str] = mapped_column(String, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    client: Mapped[str | None] = mapped_column(String, nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    body_sha256: Mapped[str | None] = mapped_column(String, nullable=True)
    body_size: Mapped[int] = mapped_column(Integer, nullable=False)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)


class PendingAction(db.Model):
    """An edit, revoke or reaction whose target message is not stored yet: applied when it is."""

    __tablename__ = "pending_actions"

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    target_id: Mapped[str] = mapped_column(String, nullable=False)
    action: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: see store.actions

    __table_args__ = (Index("ix_pending_actions_target", "target_id", "id"),)
