"""Edits, revokes and reactions: what each does to the message it names, for both backends.

An action is a dict: ``kind`` ('edit', 'revoke', 'reaction'), ``target`` (the message_id it names),
``from`` (who acted), ``ts`` (when) and, by kind, ``text``/``media``/``location`` (an edit's new
content) or ``emoji`` (a reaction; None takes the sender's reaction back). ``changes`` says which
columns of the target change; the backends write them (and the search entry, when ``text``
changes) in the transaction that stored the action's own message. An action whose target is not
stored yet is kept (``pending_actions``) and applied when the target is stored.
"""

import json

EDIT, REVOKE, REACTION = "edit", "revoke", "reaction"
# What a revoke removes: the words and everything that holds them (raw too: it has the text).
REVOKED = {"text": None, "media": None, "location": None, "raw": None}


def changes(target, action):
    """The columns of ``target`` (a mapping with ``text``, ``reactions``, ``revoked_at``) that
    ``action`` changes, with their new values (JSON columns as text); {} for none."""
    kind = action["kind"]
    if target["revoked_at"] is not None:
        return {}  # a deleted message stays deleted: a late edit or reaction changes nothing
    if kind == REVOKE:
        return {**REVOKED, "revoked_at": action["ts"], "reactions": None}
    if kind == EDIT:
        found = {"text": action.get("text"), "edited_at": action["ts"]}
        for name in ("media", "location"):
            if action.get(name) is not None:
                found[name] = json.dumps(action[name])
        return found
    if kind == REACTION:
        reactions = json.loads(target["reactions"]) if target["reactions"] else []
        kept = [r for r in reactions if r.get("from") != action["from"]]
        if action.get("emoji"):
            kept.append({"from": action["from"], "emoji": action["emoji"], "ts": action["ts"]})
        return {"reactions": json.dumps(kept) if kept else None}
    return {}


def update_statement(columns, *, named=True, key="message_id"):
    """UPDATE messages of ``columns``, found by message_id (named or ``?`` parameters)."""
    if named:
        assignments = ", ".join(f"{name} = :{name}" for name in columns)
        return f"UPDATE messages SET {assignments} WHERE message_id = :{key}"
    assignments = ", ".join(f"{name} = ?" for name in columns)
    return f"UPDATE messages SET {assignments} WHERE message_id = ?"


TARGET = "SELECT text, reactions, revoked_at FROM messages WHERE message_id = :message_id"
PENDING = "SELECT id, action FROM pending_actions WHERE target_id = :target ORDER BY id"
KEEP_PENDING = "INSERT INTO pending_actions (target_id, action) VALUES (:target, :action)"
DROP_PENDING = "DELETE FROM pending_actions WHERE target_id = :target"
