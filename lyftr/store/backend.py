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
    # The normalized record (docs/api.md); media, location and reactions as JSON text.
    channel: str = "webhook"
    sender_name: str | None = None
    media: str | None = None
    location: str | None = None
    reply_to: str | None = None
    reactions: str | None = None
    edited_at: str | None = None
    revoked_at: str | None = None


class StatusRow(NamedTuple):
    """A delivery status event; ``errors`` and ``raw`` as JSON text."""

    id: int
    provider: str
    message_id: str
    status: str
    ts: str
    recipient: str | None
    errors: str | None
    raw: str | None
    received_at: str


class RejectionRow(NamedTuple):
    """A refused delivery; ``body`` only when the request was authentic."""

    id: int
    at: str
    provider: str
    reason: str
    client: str | None
    url: str | None
    body_sha256: str | None  # None: a body too large to read
    body_size: int
    body: str | None


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

    def insert_batch(self, messages: list[dict], actions: list[dict] = ()) -> int:
        """Store every message of ``messages`` not stored yet, in one transaction: all of them or,
        on an error, none. Return how many were new (the first of a repeated message_id wins).
        In the same transaction, ``events.apply_actions``: the pending edits, revokes and
        reactions of the new messages, then ``actions`` (``store.actions``) whose own message
        was new, applied to their target or kept pending until it is stored."""

    def insert_statuses(self, statuses: list[dict]) -> int:
        """Store each status event (``events.STATUS_COLUMNS``) unless its (provider, message_id,
        status) is stored, in one transaction; return how many were new."""

    def record_rejection(self, rejection: dict, keep: int) -> None:
        """Store a refused delivery (``events.REJECTION_COLUMNS``); keep the newest ``keep``."""

    def list_statuses(
        self,
        *,
        message_id: str | None,
        status: str | None,
        since_key: str | None,
        after: int,
        limit: int,
    ) -> list[StatusRow]:
        """Up to ``limit`` status events with id > ``after``, in arrival (id) order, filtered."""

    def list_rejections(
        self, *, provider: str | None, before: int | None, limit: int
    ) -> list[RejectionRow]:
        """Up to ``limit`` rejections with id < ``before`` (if given), newest first."""

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

    def commits_seen(self) -> int:
        """A marker for ``wait_for_commit``, taken before reading the feed."""

    def wait_for_commit(self, seen: int, timeout: float) -> None:
        """Return soon after a message is committed (by any host) since ``seen`` was taken, or
        after at most ``timeout`` seconds (sooner: the caller looks again; see commit_signal)."""

    def purge(self, before: str, limit: int, purged_at: str) -> tuple[int, float]:
        """Delete up to ``limit`` of the messages that arrived before ``before`` (oldest first) with
        their counts and search entries, remember their IDs, in one transaction; return how
        many, and for how many seconds the transaction held what ingest waits for (SQLite: the
        write turn)."""

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

    def bulk_insert(self, chunks) -> int:
        """Store many messages, given as ``staging.Staged`` chunks of ``sql.message_values`` rows,
        as ``insert_message`` would, one transaction per chunk; return how many were new."""

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
        newest_first: bool = False,
    ) -> tuple[list[MessageRow], int]:
        """Up to ``limit + 1`` rows in (ts_key, message_id) order from ``offset`` (after the
        ``after`` position, if given), and how many rows match the filters, from one snapshot.
        ``newest_first``: in the reverse order, ``offset`` counted from the last row (never with
        ``q`` or ``after``)."""

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
