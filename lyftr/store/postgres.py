"""The PostgreSQL backend: the same answers as SQLite's, for several hosts sharing one database.

- Insert-once is ``INSERT ... ON CONFLICT (message_id) DO NOTHING RETURNING``: concurrent deliveries
  of one message_id, from any host, wait on each other's row lock and exactly one gets a row back.
  The sender's count is raised in the same transaction.
- Keys (message_id, from_msisdn, ts_key) use the "C" collation: code-point order, as on SQLite.
- Search: ``text_folded`` holds the folded text (``folding.indexed_text``, as SQLite's index),
  served by a pg_trgm GIN index; the term is matched with ``LIKE`` with ``%``/``_``/``\\`` escaped.
- PostgreSQL text cannot hold NUL. A text with NUL is stored as its JSON string (``text_escaped``);
  the rare term the index cannot answer (``folding.index_answers``) is checked row by row.
"""

import itertools
import json
import os
import time
from contextlib import contextmanager

import psycopg
from sqlalchemy import text

from lyftr.store import actions, commit_signal, database_errors, events, sql, staging
from lyftr.store import postgres_statements as statements
from lyftr.store.backend import MessageRecord, MessageRow, RejectionRow, Stats, StatusRow
from lyftr.store.folding import NUL_STANDIN, index_answers
from lyftr.timestamps import now_iso

# Any constants: every process that migrates takes the first lock first; one numbering of the
# feed (sequence) runs at a time under the second; one purge at a time holds the third.
MIGRATION_LOCK_KEY = 0x6C796674  # "lyft"
SEQUENCE_LOCK_KEY = 0x6C796675
PURGE_LOCK_KEY = 0x6C796676


class PostgresBackend:
    """``backend.Backend`` on a PostgreSQL database."""

    def __init__(self, engine, config):
        self.engine = engine
        # Every read the API serves is stopped at this budget (statement_timeout, per statement).
        self.budget_ms = int(config["QUERY_BUDGET_MS"])
        # Connections from a parent's pool are not used in a forked child (Gunicorn workers, CLI).
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
        self.commit_signal = commit_signal.Listener(self._listening_connection)

    def _listening_connection(self):
        url = self.engine.url.set(drivername="postgresql")
        return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)

    def commits_seen(self):
        return self.commit_signal.seen()

    def wait_for_commit(self, seen, timeout):
        """See ``backend.Backend``: woken by NOTIFY from any host (``commit_signal``)."""
        self.commit_signal.wait(seen, timeout)

    @contextmanager
    def migration_transaction(self):
        with self.engine.connect() as connection, connection.begin():
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            yield connection

    def insert_message(self, message):
        with self.engine.begin() as connection:
            return connection.execute(statements.INSERT, _row(message, now_iso())).scalar() == 1

    def insert_batch(self, messages, actions=()):
        """See ``backend.Backend``: rows inserted as ``insert_message`` does, in one transaction."""
        created_at = now_iso()
        with self.engine.begin() as connection:
            created_ids = []
            for message in messages:
                # One statement stores the row and counts it (sender, hours) when it is new.
                if connection.execute(statements.INSERT, _row(message, created_at)).scalar() != 1:
                    continue
                created_ids.append(message["message_id"])
            _lock_targets(connection, {*created_ids, *(a["target"] for a in actions)})
            events.apply_actions(
                events.executor(connection),
                lambda target, changes: _write_changes(connection, target, changes),
                created_ids,
                actions,
            )
        return len(created_ids)

    # --- statuses and rejections (``events``) -------------------------------------------------

    def insert_statuses(self, statuses):
        with self.engine.begin() as connection:
            return events.insert_statuses(events.executor(connection), statuses)

    def record_rejection(self, rejection, keep):
        with self.engine.begin() as connection:
            events.record_rejection(events.executor(connection), rejection, keep)

    def list_statuses(self, *, message_id, status, since_key, after, limit):
        statement, params = events.list_statuses(
            message_id=message_id, status=status, since_key=since_key, after=after, limit=limit
        )
        with self.engine.connect() as connection:
            return [StatusRow._make(row) for row in connection.execute(text(statement), params)]

    def list_rejections(self, *, provider, before, limit):
        statement, params = events.list_rejections(provider=provider, before=before, limit=limit)
        with self.engine.connect() as connection:
            rows = connection.execute(text(statement), params)
            return [RejectionRow._make(row) for row in rows]

    def get_message(self, message_id):
        """See ``backend.Backend``."""
        with self._read() as connection:
            row = connection.execute(statements.RECORD, {"message_id": message_id}).first()
        if row is None:
            return None
        return _record(row)

    def sequence(self, limit):
        """See ``backend.Backend``."""
        with self.engine.connect() as connection:
            if connection.execute(text(sql.ANY_UNSEQUENCED)).first() is None:
                return 0
        with self.engine.begin() as connection:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCE_LOCK_KEY}
            )
            return connection.execute(statements.SEQUENCE, {"n": limit}).rowcount

    def feed(self, after, limit):
        with self._read() as connection:
            rows = connection.execute(statements.FEED, {"after": after, "limit": limit}).all()
        return [_record(row) for row in rows]

    def purge(self, before, limit, purged_at):
        """See ``backend.Backend``: its rows are locked from the statement to the commit."""
        started = time.monotonic()
        with self.engine.begin() as connection:
            purged, emptied, ts_hours, arrival_hours = connection.execute(
                statements.PURGE, {"before": before, "n": limit, "purged_at": purged_at}
            ).one()
            for table, hours in (
                ("ts_hour_counts", ts_hours),
                ("arrival_hour_counts", arrival_hours),
            ):
                if hours:
                    connection.execute(statements.DROP_EMPTY_HOURS[table], {"hours": list(hours)})
            if emptied:
                connection.execute(
                    text(
                        "DELETE FROM sender_counts WHERE from_msisdn = ANY(:senders) AND count <= 0"
                    ),
                    {"senders": list(emptied)},
                )
        return purged, time.monotonic() - started

    def count_purgeable(self, before):
        with self.engine.connect() as connection:
            return connection.execute(text(sql.PURGEABLE), {"before": before}).scalar()

    def forget_purged(self, before):
        with self.engine.begin() as connection:
            return connection.execute(text(sql.FORGET_PURGED), {"before": before}).rowcount

    def revoke_session(self, nonce, expires_at, now):
        with self.engine.begin() as connection:
            connection.execute(text(sql.FORGET_REVOCATIONS), {"now": now})
            connection.execute(text(sql.REVOKE_SESSION), {"nonce": nonce, "expires_at": expires_at})

    def session_revoked(self, nonce):
        with self.engine.connect() as connection:
            found = connection.execute(text(sql.SESSION_REVOKED), {"nonce": nonce}).first()
        return found is not None

    @contextmanager
    def exclusive_purge(self):
        """A session advisory lock, not waited for, on a connection kept for the purge."""
        with self.engine.connect() as connection:
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": PURGE_LOCK_KEY}
            ).scalar()
            connection.commit()
            try:
                yield bool(got)
            finally:
                if got:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": PURGE_LOCK_KEY}
                    )
                    connection.commit()

    def export_page(self, *, from_msisdn, since_key, position, limit):
        statement, params = sql.export_page(
            from_msisdn=from_msisdn,
            since_key=since_key,
            position=position,
            columns=f"{sql.RECORD_COLUMNS}, text_escaped",
        )
        with self.engine.connect() as connection:
            rows = connection.execute(text(statement), {**params, "limit": limit}).all()
        return [_record(row) for row in rows]

    def backup(self, path):
        raise NotImplementedError(
            "on PostgreSQL, back up with pg_dump, given a libpq URL (postgresql://..., without "
            "'+psycopg'): pg_dump --format=custom --file=lyftr.dump postgresql://USER@HOST/DB; "
            "restore with pg_restore --clean --if-exists --dbname=postgresql://USER@HOST/DB "
            "lyftr.dump (see docs/operations.md)"
        )

    def bulk_insert(self, chunks):
        """Copy each staged chunk into a temporary table, then move it with one INSERT ... SELECT
        (one transaction per chunk)."""
        return sum(self._bulk_batch(staging.read(chunk)) for chunk in chunks)

    def _bulk_batch(self, rows):
        with self.engine.begin() as connection:
            # A bulk load is numbered as it is written, holding the feed's numbering lock to the
            # commit (as sequence does), after the rows already waiting for a position.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCE_LOCK_KEY}
            )
            connection.execute(statements.SEQUENCE, {"n": None})
            connection.exec_driver_sql(statements.STAGE)
            cursor = connection.connection.driver_connection.cursor()
            columns = ", ".join(statements.COLUMNS)
            with cursor.copy(f"COPY lyftr_bulk (position, {columns}) FROM STDIN") as copy:
                for position, values in enumerate(rows):
                    copy.write_row((position, *statements.stored_row(values)))
            return connection.exec_driver_sql(statements.BULK_MOVE).scalar()

    def after_bulk_load(self):
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE messages")
            connection.exec_driver_sql("ANALYZE sender_counts")

    def check_writable(self):
        with self.engine.connect() as connection:
            read_only = connection.execute(text(statements.READ_ONLY)).scalar()
        return database_errors.READ_ONLY if read_only else None

    @contextmanager
    def _snapshot(self):
        """A REPEATABLE READ transaction: several reads from one snapshot, each under the budget."""
        connection = self.engine.connect().execution_options(isolation_level="REPEATABLE READ")
        with connection, connection.begin():
            self._limit(connection)
            yield connection

    @contextmanager
    def _read(self):
        """A connection whose transaction's statements each stop at the budget."""
        with self.engine.connect() as connection:
            self._limit(connection)
            yield connection

    def _limit(self, connection):
        # SET LOCAL: for this transaction only; the pooled connection keeps no limit afterwards.
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {self.budget_ms}")

    def list_messages(
        self,
        *,
        limit,
        offset,
        from_msisdn=None,
        since_key=None,
        q=None,
        after=None,
        newest_first=False,
    ):
        """See ``backend.Backend``."""
        filters, params = sql.filters(from_msisdn=from_msisdn, since_key=since_key)
        folded = q.casefold() if q else None
        if folded is not None:
            filters.append("text_folded LIKE :pattern ESCAPE '\\'")
            params["pattern"] = _like_pattern(folded)

        with self._snapshot() as connection:
            if folded is not None and not index_answers(folded):
                return _exact_search(connection, filters, params, folded, after, limit, offset)
            total = _total(connection, filters, params, from_msisdn, since_key, folded)
            if after is not None:
                condition, after_params = sql.after(after)
                filters, params = [*filters, condition], {**params, **after_params}
            query = (
                statements.SELECT
                + sql.where(filters)
                + sql.page_order(newest_first)
                + " LIMIT :limit OFFSET :offset"
            )
            params.update(limit=limit + 1, offset=offset)
            return _decoded(connection.execute(text(query), params)), total

    def stats(self, top):
        """See ``backend.Backend``."""
        with self._snapshot() as connection:
            total, senders = connection.execute(text(sql.STATS_TOTALS)).one()
            ranked = connection.execute(text(sql.STATS_TOP), {"top": top}).all()
            first = connection.execute(text(sql.FIRST_TS)).scalar()
            last = connection.execute(text(sql.LAST_TS)).scalar()
        return Stats(int(total), senders, [tuple(row) for row in ranked], first, last)

    # --- the console --------------------------------------------------------------------------

    def list_arrivals(self, *, limit, from_msisdn, received_since, q, before):
        """See ``backend.Backend``: one statement; the planner picks ix_messages_created_at
        backwards (a common sender or term), or the sender's or the trigram index and a sort."""
        conditions, params = sql.arrivals(received_since=received_since, before=before)
        folded = q.casefold() if q else None
        if from_msisdn is not None:
            conditions.append("from_msisdn = :from_msisdn")
            params["from_msisdn"] = from_msisdn
        if folded is not None:
            conditions.append("text_folded LIKE :pattern ESCAPE '\\'")
            params["pattern"] = _like_pattern(folded)
        query = (
            f"SELECT {sql.RECORD_COLUMNS}, text_escaped FROM messages{sql.where(conditions)}"
            f"{sql.ARRIVAL_ORDER}"
        )
        exact = folded is not None and not index_answers(folded)
        if not exact:
            query += " LIMIT :n"
            params["n"] = limit + 1
        with self._read() as connection:
            records = [_record(row) for row in connection.execute(text(query), params)]
        if exact:  # the index found candidates (a superset): each is checked here
            matches = (r for r in records if r.text is not None and folded in r.text.casefold())
            records = list(itertools.islice(matches, limit + 1))
        return records

    def arrivals_per_hour(self, hours):
        statement, params = sql.arrivals_per_hour(hours)
        with self._read() as connection:
            return sql.hours_in_order(hours, connection.execute(text(statement), params))


def _row(message, created_at):
    values = statements.stored_row(sql.message_values(message, created_at))
    row = dict(zip(statements.COLUMNS, values, strict=True))
    row["purged_hash"] = sql.id_hash(message["message_id"])
    return row


def _record(row):
    """A MessageRecord from a row of RECORD_COLUMNS and text_escaped."""
    text_value = json.loads(row.text) if row.text_escaped else row.text
    return MessageRecord(*row[:4], text_value, *row[5:-1])


def _lock_targets(connection, message_ids):
    """Batches storing a message and acting on it, from any host, take turns (else each could miss
    the other's uncommitted row); in key order, so they never deadlock."""
    if message_ids:
        connection.execute(statements.LOCK_TARGETS, {"ids": list(message_ids)})


def _write_changes(connection, target, changes):
    """An action's changes to ``target``, its search columns rewritten if its text changed."""
    if "text" in changes:
        stored, escaped, folded = statements.stored_text(changes["text"])
        changes = {**changes, "text": stored, "text_escaped": escaped, "text_folded": folded}
    statement = actions.update_statement(changes, key="target_id")
    connection.execute(text(statement), {**changes, "target_id": target})


def _like_pattern(folded):
    escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped.replace("\x00", NUL_STANDIN) + "%"


def _decoded(result):
    """MessageRows, with texts stored escaped read back."""
    return [
        MessageRow(*row[:4], json.loads(row[4]) if row[6] else row[4], row[5]) for row in result
    ]


def _total(connection, filters, params, from_msisdn, since_key, folded):
    # The maintained counts answer the unfiltered and the sender-only totals without a scan.
    if folded is None and since_key is None:
        query = sql.TOTAL if from_msisdn is None else sql.SENDER_TOTAL
    elif folded is None and from_msisdn is None:
        query, params = sql.SINCE_TOTAL, sql.since_total_params(since_key)
    else:
        query = "SELECT count(*) FROM messages" + sql.where(filters)
    return int(connection.execute(text(query), params).scalar() or 0)


def _exact_search(connection, filters, params, folded, after, limit, offset):
    """A term with NUL or U+FFFF: the index finds candidates (a superset), each is checked here."""
    query = statements.SELECT + sql.where(filters) + sql.PAGE_ORDER
    matches = [
        row
        for row in _decoded(connection.execute(text(query), params))
        if row.text is not None and folded in row.text.casefold()
    ]
    page = matches
    if after is not None:
        page = [row for row in page if (row.ts_key, row.message_id) > tuple(after)]
    return page[offset : offset + limit + 1], len(matches)
