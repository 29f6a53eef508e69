"""The backend contract: what a database backend does for ``lyftr.store``, and the rows it
returns.

Two backends satisfy it: ``sqlite_store.SQLiteBackend`` (the embedded default) and
``postgres_store.PostgresBackend`` (one database shared by several hosts). Both give the same
answers to the same calls: insert-once with the first write winning, chronological order, the same
filters and search semantics (``folding``), totals kept with each insert. Errors are SQLAlchemy's
(``sqlalchemy.exc.DBAPIError`` and subclasses), whatever driver raised them.
"""

from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol


class MessageRow(NamedTuple):
    """A stored message as reads return it; ``ts_key`` orders it (see ``timestamps``)."""

    message_id: str
    from_msisdn: str
    to_msisdn: str
    ts: str
    text: str | None
    ts_key: str


class MessageRecord(NamedTuple):
    """A stored message with where it came from; ``received_at`` is when it was stored (UTC) and
    ``raw`` the provider's payload as received (a JSON document), None for /webhook's."""

    message_id: str
    from_msisdn: str
    to_msisdn: str
    ts: str
    text: str | None
    provider: str
    type: str
    received_at: str
    raw: str | None
    seq: int | None  # the feed position; None until the message is numbered (backend.sequence)


class Stats(NamedTuple):
    total: int
    senders: int
    top_senders: list[tuple[str, int]]
    first_ts: str | None
    last_ts: str | None


class Backend(Protocol):
    def insert_message(self, message: dict) -> bool:
        """Store ``message`` (as ``schemas.WebhookMessageSchema`` loads it) unless its message_id
        is stored: True if stored, False if a duplicate. Returns once the row, its sender's count
        and its search entry are committed together."""

    def insert_batch(self, messages: list[dict]) -> int:
        """Store every message of ``messages`` not stored yet, in one transaction: all of them or,
        on an error, none. Return how many were new (the first of a repeated message_id wins)."""

    def get_message(self, message_id: str) -> MessageRecord | None:
        """The full record of one stored message, or None."""

    def sequence(self, limit: int) -> int:
        """Number up to ``limit`` committed messages that have no feed position yet, in arrival
        order, in one transaction that no other numbering runs beside; return how many.

        Every position given is above every position given before, and all of one call's become
        visible together at its commit: the numbered rows a reader sees always form a prefix of
        the feed, whatever commits concurrently (on PostgreSQL, from any host)."""

    def feed(self, after: int, limit: int) -> list[MessageRecord]:
        """Up to ``limit`` numbered messages with ``seq > after``, in seq order."""

    def purge(self, before: str, limit: int, purged_at: str) -> int:
        """Delete up to ``limit`` of the messages that arrived before ``before`` (oldest first) with
        their counts and search entries, remember their IDs, in one transaction; return how
        many."""

    def count_purgeable(self, before: str) -> int:
        """How many messages arrived before ``before``."""

    def forget_purged(self, before: str) -> int:
        """Forget the IDs of messages purged before ``before``; return how many."""

    def revoke_session(self, nonce: str, expires_at: str, now: str) -> None:
        """Remember that the console session ``nonce`` is logged out, until ``expires_at`` (when
        it would have expired anyway); forget revocations expired by ``now``."""

    def session_revoked(self, nonce: str) -> bool:
        """Whether the console session ``nonce`` was logged out."""

    def exclusive_purge(self) -> AbstractContextManager[bool]:
        """True inside if this process runs the only purge (across processes and hosts)."""

    def export_page(
        self, *, from_msisdn: str | None, since_key: str | None, position, limit: int
    ) -> list[MessageRecord]:
        """Up to ``limit`` records in arrival order after ``position`` (created_at, message_id)."""

    def backup(self, path: str) -> None:
        """Write a consistent snapshot of the database to ``path`` while it serves (SQLite);
        NotImplementedError saying what to use instead (PostgreSQL: pg_dump)."""

    def bulk_insert(self, messages, *, batch_size: int) -> int:
        """Store many messages as ``insert_message`` would, ``batch_size`` per transaction; return
        how many were new."""

    def after_bulk_load(self) -> None:
        """Leave the database tidy after a bulk load (WAL checkpoint, planner statistics)."""

    def list_messages(
        self,
        *,
        limit: int,
        offset: int,
        from_msisdn: str | None,
        since_key: str | None,
        q: str | None,
        after: tuple[str, str] | None,
    ) -> tuple[list[MessageRow], int]:
        """Up to ``limit + 1`` rows in (ts_key, message_id) order from ``offset`` (after the
        ``after`` position, if given), and how many rows match the filters, from one snapshot."""

    def stats(self, top: int) -> Stats:
        """Totals, the ``top`` senders by count (ties by sender) and the time span, one snapshot."""

    def migration_transaction(self) -> AbstractContextManager[Any]:
        """A SQLAlchemy connection in a transaction that no other process's migration (nor, on
        SQLite, any write) runs beside."""

    def check_writable(self) -> str | None:
        """Why the database cannot take writes now (a ``database_errors`` cause), or None."""

    # --- the console -------------------------------------------------------------------------

    def list_arrivals(
        self,
        *,
        limit: int,
        from_msisdn: str | None,
        received_since: str | None,
        q: str | None,
        before: tuple[str, str] | None,
    ) -> list[MessageRecord]:
        """Up to ``limit + 1`` records, newest arrival first ((created_at, message_id) descending),
        before the ``before`` position if given: from one sender, arrived at or after
        ``received_since`` (a ``timestamps`` key), whose text contains ``q`` (as list_messages)."""

    def arrivals_per_hour(self, hours: list[str]) -> list[tuple[str, int]]:
        """How many messages arrived in each of ``hours`` ('YYYY-MM-DDTHH', UTC), in order."""
