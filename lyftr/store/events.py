"""What happens around messages, written once for both backends: delivery statuses, refused
deliveries (rejections), and edits/revokes/reactions applied to the message they name.

Each function takes ``execute(statement, params) -> rows`` (rows: a list, empty for a statement
that returns none) running in the caller's transaction, so the backends differ only in how they
run SQL and keep their search index (``write``: see ``apply_actions``).
"""

import json

from sqlalchemy import text

from lyftr.store import actions as act

STATUS_COLUMNS = (
    "provider",
    "message_id",
    "status",
    "ts",
    "ts_key",
    "recipient",
    "errors",
    "raw",
    "received_at",
)
INSERT_STATUS = (
    f"INSERT INTO statuses ({', '.join(STATUS_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in STATUS_COLUMNS)}) "
    "ON CONFLICT (provider, message_id, status) DO NOTHING RETURNING id"
)
REJECTION_COLUMNS = (
    "at",
    "provider",
    "reason",
    "client",
    "url",
    "body_sha256",
    "body_size",
    "body",
)
INSERT_REJECTION = (
    f"INSERT INTO rejections ({', '.join(REJECTION_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in REJECTION_COLUMNS)}) RETURNING id"
)
# The newest ``keep``: ids only grow, so everything ``keep`` or more below the newest goes.
TRIM_REJECTIONS = "DELETE FROM rejections WHERE id <= :newest - :keep"
ANY_PENDING = "SELECT 1 FROM pending_actions LIMIT 1"


def executor(connection):
    """``execute`` on a SQLAlchemy connection (SQLite's backend binds its cursor's own)."""

    def execute(statement, params):
        result = connection.execute(text(statement), params)
        return result.all() if result.returns_rows else []

    return execute


def insert_statuses(execute, statuses):
    """Store each status event not stored yet; return how many were new."""
    return sum(bool(execute(INSERT_STATUS, status)) for status in statuses)


def record_rejection(execute, rejection, keep):
    newest = execute(INSERT_REJECTION, rejection)[0][0]
    execute(TRIM_REJECTIONS, {"newest": newest, "keep": keep})


def list_statuses(*, message_id, status, since_key, after, limit):
    """The statement of a page of statuses in arrival (id) order, and its parameters."""
    conditions, params = ["id > :after"], {"after": after, "limit": limit}
    for name, value in (("message_id", message_id), ("status", status)):
        if value is not None:
            conditions.append(f"{name} = :{name}")
            params[name] = value
    if since_key is not None:
        conditions.append("ts_key >= :since_key")
        params["since_key"] = since_key
    statement = (
        "SELECT id, provider, message_id, status, ts, recipient, errors, raw, received_at "
        f"FROM statuses WHERE {' AND '.join(conditions)} ORDER BY id LIMIT :limit"
    )
    return statement, params


def list_rejections(*, provider, before, limit):
    """The statement of a page of rejections, newest first, and its parameters."""
    conditions, params = [], {"limit": limit}
    if provider is not None:
        conditions.append("provider = :provider")
        params["provider"] = provider
    if before is not None:
        conditions.append("id < :before")
        params["before"] = before
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    statement = (
        f"SELECT id, {', '.join(REJECTION_COLUMNS)} FROM rejections{where} "
        "ORDER BY id DESC LIMIT :limit"
    )
    return statement, params


def apply_actions(execute, write, created_ids, actions):
    """In the transaction that stored a batch: first the pending actions that named a message
    the batch stored (``created_ids``), then the batch's own actions (each only if its message,
    ``action['event']``, was new: a redelivery applies nothing twice). ``write(message_id,
    changes)`` writes a target's changed columns and, if its text changed, its search entry."""
    if created_ids and execute(ANY_PENDING, {}):
        for message_id in created_ids:
            pending = execute(act.PENDING, {"target": message_id})
            if pending:
                for _, document in pending:
                    _apply(execute, write, json.loads(document))
                execute(act.DROP_PENDING, {"target": message_id})
    created = set(created_ids)
    for action in actions:
        if action["event"] in created:
            _apply(execute, write, action)


def _apply(execute, write, action):
    found = execute(act.TARGET, {"message_id": action["target"]})
    if not found:
        execute(act.KEEP_PENDING, {"target": action["target"], "action": json.dumps(action)})
        return
    text, reactions, revoked_at = found[0]
    changes = act.changes({"text": text, "reactions": reactions, "revoked_at": revoked_at}, action)
    if changes:
        write(action["target"], changes)
