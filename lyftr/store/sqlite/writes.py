"""The SQLite backend's writes inside a transaction (``store.sqlite.backend``): one delivery
stored with its counts and search entry, purged rows forgotten, an action's changes applied."""

from lyftr.store import actions, sql
from lyftr.store.folding import indexed_text

INSERT_ONE = sql.insert_message(returning="rowid", named=False)
SEARCH_ONE = "INSERT INTO messages_fts (rowid, text_folded) VALUES (?, ?)"
COUNT_TS_HOUR = sql.count_hours("ts_hour_counts")
COUNT_ARRIVAL_HOUR = sql.count_hours("arrival_hour_counts")


def forget_rows(cursor, rows, purged_at):
    """Delete ``rows`` (rowid, message_id, from, ts_key, created_at) with their search entries and
    counts, and keep their IDs' hashes in purged_hashes."""
    senders = {}
    for row in rows:
        senders[row[2]] = senders.get(row[2], 0) + 1
    cursor.executemany(
        sql.REMEMBER_PURGED,
        [{"hash": sql.id_hash(row[1]), "purged_at": purged_at} for row in rows],
    )
    for sender, n in senders.items():
        cursor.execute(sql.DISCOUNT_SENDER, {"n": n, "from_msisdn": sender})
        cursor.execute(sql.DROP_EMPTY_SENDER, {"from_msisdn": sender})
    for column, table in ((3, "ts_hour_counts"), (4, "arrival_hour_counts")):
        hours = sql.hour_counts((row[column] for row in rows), sign=-1)
        cursor.executemany(sql.count_hours(table), hours)
        cursor.executemany(sql.drop_empty_hours(table, ":hour"), hours)
    cursor.executemany("DELETE FROM messages_fts WHERE rowid = ?", [(r[0],) for r in rows])
    cursor.executemany("DELETE FROM messages WHERE rowid = ?", [(r[0],) for r in rows])


def executor(cursor):
    return lambda statement, params: cursor.execute(statement, params).fetchall()


def write_changes(cursor, target, changes):
    """An action's changes to ``target``, its search entry rewritten if its text changed."""
    cursor.execute(actions.update_statement(changes), {**changes, "message_id": target})
    if "text" in changes:
        rowid = cursor.execute(
            "SELECT rowid FROM messages WHERE message_id = ?", (target,)
        ).fetchone()[0]
        cursor.execute("DELETE FROM messages_fts WHERE rowid = ?", (rowid,))
        if changes["text"]:
            cursor.execute(SEARCH_ONE, (rowid, indexed_text(changes["text"])))


def insert_row(message, created_at):
    """The parameters of ``INSERT_ONE``: the message's values, then its ID's hash."""
    return (*sql.message_values(message, created_at), sql.id_hash(message["message_id"]))


def store(cursor, delivery):
    found = cursor.execute(INSERT_ONE, delivery.row).fetchall()
    if not found:
        return False
    row = delivery.row
    cursor.execute(sql.COUNT_SENDER, {"from_msisdn": row[1], "n": 1})
    cursor.execute(COUNT_TS_HOUR, {"hour": row[4][: sql.HOUR], "n": 1})
    cursor.execute(COUNT_ARRIVAL_HOUR, {"hour": row[9][: sql.HOUR], "n": 1})
    if delivery.folded:
        cursor.execute(SEARCH_ONE, (found[0][0], delivery.folded))
    return True
