"""Every query the service makes: the schema, insert-once, listing, stats and the readiness probe.

Writes run in one transaction each: the message row, its sender's count and its search-index entry
land together or not at all. On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` so that
concurrent writers queue on the busy timeout instead of failing to upgrade a read lock.
"""

import base64
import binascii
import json
import os
from contextlib import contextmanager

from flask import current_app
from sqlalchemy import event, func, literal_column, select, text, tuple_
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError

from .config import sqlite_path
from .extensions import db
from .models import Message, SenderCount
from .timestamps import now_iso

TOP_SENDERS = 10
# Substring search goes through a trigram index: terms of at least three characters use it, shorter
# ones scan the same (case-folded) column. Both match exactly what a scan would.
TRIGRAM = 3
SEARCH_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts "
    "USING fts5(text_folded, tokenize='trigram case_sensitive 1')"
)
ROWID = literal_column("messages.rowid")


def init_app(app):
    """Tune SQLite connections and apply the schema if the database can be reached yet."""
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine, app.config["DB_BUSY_TIMEOUT_MS"])
        app.extensions["lyftr.schema_applied"] = False
        try:
            ensure_schema()
        except Exception:  # unreachable now: readiness reports it, later requests retry
            app.logger.warning("database not available at start", exc_info=True)


def _configure_sqlite(engine, busy_timeout_ms):
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, connection_record):
        # Let SQLAlchemy's BEGIN below, not the sqlite3 module, decide when a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: a message acknowledged with 200 survives power loss, not only a process crash.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        immediate = connection.get_execution_options().get("write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction():
    with db.engine.connect() as connection:
        connection.execution_options(write=True)
        with connection.begin():
            yield connection


@contextmanager
def read_transaction():
    with db.engine.connect() as connection, connection.begin():
        yield connection


def ensure_schema():
    """Create what is missing (idempotent, safe from several processes at once); cheap once done."""
    if current_app.extensions.get("lyftr.schema_applied"):
        return
    path = sqlite_path(str(db.engine.url))
    if path:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as exc:  # a database that cannot be opened: 503 and not ready, like any other
            raise OperationalError(None, None, exc) from exc
    with write_transaction() as connection:
        db.metadata.create_all(connection)
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(SEARCH_DDL)
    current_app.extensions["lyftr.schema_applied"] = True


def forget_schema():
    """After a database error, check the schema again on the next request (the file may be new)."""
    current_app.extensions["lyftr.schema_applied"] = False


def insert_message(message):
    """Store ``message`` unless its ``message_id`` exists. True if stored, False if a duplicate."""
    ensure_schema()
    with write_transaction() as connection:
        rowid = connection.execute(
            sqlite_insert(Message)
            .values(
                message_id=message["message_id"],
                from_msisdn=message["from_msisdn"],
                to_msisdn=message["to_msisdn"],
                ts=message["ts"],
                ts_key=message["ts_key"],
                text=message["text"],
                created_at=now_iso(),
            )
            .on_conflict_do_nothing(index_elements=["message_id"])
            .returning(ROWID)
        ).scalar()
        if rowid is None:
            return False
        connection.execute(
            sqlite_insert(SenderCount)
            .values(from_msisdn=message["from_msisdn"], count=1)
            .on_conflict_do_update(
                index_elements=["from_msisdn"], set_={"count": SenderCount.count + 1}
            )
        )
        if message["text"]:
            connection.execute(
                text("INSERT INTO messages_fts (rowid, text_folded) VALUES (:rowid, :folded)"),
                {"rowid": rowid, "folded": message["text"].casefold()},
            )
        return True


def encode_cursor(ts_key, message_id):
    raw = json.dumps([ts_key, message_id], ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor):
    """The ``(ts_key, message_id)`` a cursor points after, or None if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts_key, message_id = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, TypeError):
        return None
    if not (isinstance(ts_key, str) and isinstance(message_id, str)):
        return None
    return ts_key, message_id


def _search_condition(q):
    folded = q.casefold()
    if len(folded) >= TRIGRAM:
        phrase = '"' + folded.replace('"', '""') + '"'
        matches = text(
            "SELECT rowid FROM messages_fts WHERE messages_fts MATCH :phrase "
            "AND instr(text_folded, :folded) > 0"
        ).bindparams(phrase=phrase, folded=folded)
    else:
        matches = text(
            "SELECT rowid FROM messages_fts WHERE instr(text_folded, :folded) > 0"
        ).bindparams(folded=folded)
    return ROWID.in_(matches.columns(literal_column("rowid")))


def list_messages(*, limit, offset, from_msisdn=None, since_key=None, q=None, after=None):
    """One page of messages in (ts, message_id) order, the filter's total and the next cursor."""
    ensure_schema()
    conditions = []
    if from_msisdn is not None:
        conditions.append(Message.from_msisdn == from_msisdn)
    if since_key is not None:
        conditions.append(Message.ts_key >= since_key)
    if q:
        conditions.append(_search_condition(q))
    page_conditions = list(conditions)
    if after is not None:
        page_conditions.append(tuple_(Message.ts_key, Message.message_id) > tuple_(*after))

    columns = (
        Message.message_id, Message.from_msisdn, Message.to_msisdn, Message.ts, Message.text,
        Message.ts_key,
    )
    page = (
        select(*columns)
        .where(*page_conditions)
        .order_by(Message.ts_key, Message.message_id)
        .limit(limit + 1)
        .offset(offset)
    )
    with read_transaction() as connection:
        rows = connection.execute(page).all()
        total = _count(connection, conditions, from_msisdn, since_key, q)

    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].ts_key, rows[-1].message_id)
    data = [
        {"message_id": r.message_id, "from": r.from_msisdn, "to": r.to_msisdn, "ts": r.ts,
         "text": r.text}
        for r in rows
    ]
    return data, total, next_cursor


def _count(connection, conditions, from_msisdn, since_key, q):
    # The maintained counts answer the two common cases without touching the messages table.
    if since_key is None and not q:
        if from_msisdn is None:
            query = select(func.coalesce(func.sum(SenderCount.count), 0))
        else:
            query = select(SenderCount.count).where(SenderCount.from_msisdn == from_msisdn)
        return connection.execute(query).scalar() or 0
    return connection.execute(select(func.count()).select_from(Message).where(*conditions)).scalar()


def stats():
    ensure_schema()
    with read_transaction() as connection:
        total, senders = connection.execute(
            select(func.coalesce(func.sum(SenderCount.count), 0), func.count())
        ).one()
        top = connection.execute(
            select(SenderCount.from_msisdn, SenderCount.count)
            .order_by(SenderCount.count.desc(), SenderCount.from_msisdn)
            .limit(TOP_SENDERS)
        ).all()
        first = connection.execute(
            select(Message.ts).order_by(Message.ts_key, Message.message_id).limit(1)
        ).scalar()
        last = connection.execute(
            select(Message.ts).order_by(Message.ts_key.desc(), Message.message_id.desc()).limit(1)
        ).scalar()
    return {
        "total_messages": total,
        "senders_count": senders,
        "messages_per_sender": [{"from": sender, "count": count} for sender, count in top],
        "first_message_ts": first,
        "last_message_ts": last,
    }


def check_database():
    """Raise if the database cannot be reached or lacks the schema; used by /health/ready."""
    ensure_schema()
    with read_transaction() as connection:
        connection.execute(select(Message.message_id).limit(1)).all()
        connection.execute(select(SenderCount.from_msisdn).limit(1)).all()
