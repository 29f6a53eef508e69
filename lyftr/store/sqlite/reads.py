"""How the SQLite backend reads: which plan finds a page of search results, an exact total, and
the console's newest-first pages, chosen by what the counts and indexes say is cheapest."""

from lyftr.store import sql
from lyftr.store.backend import MessageRecord, MessageRow, Stats
from lyftr.store.folding import index_answers

# Substring search goes through a trigram index: terms of at least three characters use it, shorter
# ones scan the same (case-folded) column. Both match exactly what a scan would.
TRIGRAM = 3

# The folded texts as the index stores them: FTS5's content table (documented layout: the rowid as
# "id", the column as "c0"). Read directly it scans about twice as fast as through messages_fts.
_FOLDED_TEXTS = "messages_fts_content"
_CONTAINS = "instr(c0, :term) > 0"
# Walking the rows in page order and checking each for the term, until the page is full: for a
# term found in many rows, only a few rows are read. Exact for terms without NUL (see search).
MATCHES_ROW = f"EXISTS (SELECT 1 FROM {_FOLDED_TEXTS} WHERE id = messages.rowid AND {_CONTAINS})"


def list_messages(connection, *, limit, offset, from_msisdn, since_key, q, after, newest_first):
    """A page of ``/messages`` and its exact total (``backend.Backend.list_messages``)."""
    filters, params = sql.filters(from_msisdn=from_msisdn, since_key=since_key)
    search_plan = search(q) if q else None
    count = total(connection, filters, params, from_msisdn, since_key, search_plan)
    where, where_params = list(filters), dict(params)
    if after is not None:
        condition, after_params = sql.after(after)
        where.append(condition)
        where_params.update(after_params)
    if search_plan is not None:
        kind, condition, search_params = search_plan
        wanted = limit + 1 + offset
        if kind != "exact" and walk_is_cheaper(connection, wanted, count, from_msisdn):
            where.append(MATCHES_ROW)
            where_params["term"] = q.casefold()
        else:
            where.append(condition)
            where_params.update(search_params)
    query = (
        f"SELECT {sql.PAGE_COLUMNS} FROM messages{sql.where(where)}"
        f"{sql.page_order(newest_first)}"
        " LIMIT :limit OFFSET :offset"
    )
    where_params.update(limit=limit + 1, offset=offset)
    rows = connection.execute(query, where_params).fetchall()
    return [MessageRow._make(row) for row in rows], count


def stats(connection, top):
    total_messages, senders = connection.execute(sql.STATS_TOTALS).fetchone()
    ranked = connection.execute(sql.STATS_TOP, {"top": top}).fetchall()
    first = connection.execute(sql.FIRST_TS).fetchone()
    last = connection.execute(sql.LAST_TS).fetchone()
    return Stats(total_messages, senders, ranked, first and first[0], last and last[0])


def list_arrivals(connection, *, limit, from_msisdn, received_since, q, before):
    """The console's page, newest arrival first. Without a sender or a term:
    ix_messages_created_at, backwards. With one: the newest ARRIVALS_WALK rows of the range are
    walked in order, each checked, which fills the page of a common sender or term after a few
    rows; only what is still missing after them is found through the sender's index or the search
    index, and sorted (a rare sender or term: few rows)."""
    ranges, params = sql.arrivals(received_since=received_since, before=before)
    checks = []
    if from_msisdn is not None:
        checks.append("from_msisdn = :from_msisdn")
        params["from_msisdn"] = from_msisdn
    search_plan = search(q) if q else None
    if search_plan is not None:
        params["term"] = q.casefold()
        checks.append(search_plan[1] if search_plan[0] == "exact" else MATCHES_ROW)
    return arrivals(connection, limit + 1, ranges, checks, params, search_plan)


def search(q):
    """How ``q`` is matched: (kind, condition on ``messages``, its parameters).

    "index": a trigram phrase query. A phrase of trigrams at consecutive positions is exactly a
    substring of the indexed text, so the index alone answers, without re-reading any text.
    "scan": shorter than a trigram, every indexed text is searched with instr().
    "exact": the term has a NUL (or the character standing for it): the texts themselves are read.
    All three match what ``q.casefold() in text.casefold()`` says for every row.
    """
    folded = q.casefold()
    if not index_answers(folded):
        return "exact", "instr(lyftr_casefold(messages.text), :term) > 0", {"term": folded}
    if len(folded) >= TRIGRAM:
        phrase = '"' + folded.replace('"', '""') + '"'
        return (
            "index",
            "messages.rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :phrase)",
            {"phrase": phrase},
        )
    condition = f"messages.rowid IN (SELECT id FROM {_FOLDED_TEXTS} WHERE {_CONTAINS})"
    return "scan", condition, {"term": folded}


def total(connection, filters, params, from_msisdn, since_key, search):
    # The maintained counts and the search index answer the common cases without the messages.
    if search is None and since_key is None:
        if from_msisdn is None:
            query, args = sql.TOTAL, {}
        else:
            query, args = sql.SENDER_TOTAL, params
    elif search is None and from_msisdn is None:
        query, args = sql.SINCE_TOTAL, sql.since_total_params(since_key)
    elif search is not None and not filters and search[0] != "exact":
        kind, _, args = search
        if kind == "index":
            query = "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH :phrase"
        else:
            query = f"SELECT count(*) FROM {_FOLDED_TEXTS} WHERE {_CONTAINS}"
    else:
        conditions, args = list(filters), dict(params)
        if search is not None:
            conditions.append(search[1])
            args.update(search[2])
        query = "SELECT count(*) FROM messages" + sql.where(conditions)
    row = connection.execute(query, args).fetchone()
    return row[0] if row and row[0] is not None else 0


def walk_is_cheaper(connection, rows_wanted, total, from_msisdn):
    """Whether to walk the rows in order checking each (about rows_wanted * population / total
    rows read) rather than fetch every match and sort them (total rows read, each costlier)."""
    if total == 0:
        return False
    if from_msisdn is not None:
        row = connection.execute(sql.SENDER_TOTAL, {"from_msisdn": from_msisdn}).fetchone()
    else:
        row = connection.execute(sql.TOTAL).fetchone()
    population = row[0] if row else 0
    return rows_wanted * population <= total * total


# The console's newest-first listing walks the newest rows this many at a time, checking each, and
# goes on while what it found says the page fills within ARRIVALS_WALK_MAX rows; then an index.
ARRIVALS_WALK = 5000
ARRIVALS_WALK_MAX = 50_000
# A sender with at most this many messages is read through its index rather than the search index.
ARRIVALS_SMALL_SENDER = 20_000
_BY_ARRIVAL = f"SELECT {sql.RECORD_COLUMNS} FROM messages"
_BELOW = "(created_at, message_id) < (:below_created_at, :below_message_id)"


def arrivals(connection, wanted, ranges, checks, params, search):
    """Up to ``wanted`` records in the range, newest arrival first, that pass ``checks``."""
    if not checks:
        query = f"{_BY_ARRIVAL}{sql.where(ranges)}{sql.ARRIVAL_ORDER} LIMIT :n"
        return [MessageRecord._make(r) for r in connection.execute(query, {**params, "n": wanted})]
    rows, walked, unread = [], 0, list(ranges)
    while True:
        # The oldest row of this stretch of the walk (None: fewer rows are left).
        floor = connection.execute(
            f"SELECT created_at, message_id FROM messages{sql.where(unread)}{sql.ARRIVAL_ORDER} "
            "LIMIT 1 OFFSET :walk",
            {**params, "walk": ARRIVALS_WALK - 1},
        ).fetchone()
        stretch = list(unread)
        if floor is not None:
            stretch.append("(created_at, message_id) >= (:floor_created_at, :floor_message_id)")
            params.update(floor_created_at=floor[0], floor_message_id=floor[1])
        query = (
            f"{_BY_ARRIVAL} INDEXED BY ix_messages_created_at{sql.where(stretch + checks)}"
            f"{sql.ARRIVAL_ORDER} LIMIT :n"
        )
        rows += connection.execute(query, {**params, "n": wanted - len(rows)}).fetchall()
        if floor is None or len(rows) == wanted:
            return [MessageRecord._make(r) for r in rows]
        walked += ARRIVALS_WALK
        unread = [*ranges, _BELOW]
        params.update(below_created_at=floor[0], below_message_id=floor[1])
        if not rows or (wanted - len(rows)) * walked / len(rows) > ARRIVALS_WALK_MAX - walked:
            break
    sender = [c for c in checks if c == "from_msisdn = :from_msisdn"]
    if sender and (search is None or sender_total(connection, params) <= ARRIVALS_SMALL_SENDER):
        source, conditions = " INDEXED BY ix_messages_from_ts_key", [*unread, *checks]
    elif search[0] != "exact":  # the search index's rowids, each looked up
        source, conditions = " NOT INDEXED", [*unread, search[1], *sender]
        params.update(search[2])
    else:  # a term no index answers: every text is read, as list_messages does
        source, conditions = " NOT INDEXED", [*unread, *checks]
    query = f"{_BY_ARRIVAL}{source}{sql.where(conditions)}{sql.ARRIVAL_ORDER} LIMIT :n"
    rows += connection.execute(query, {**params, "n": wanted - len(rows)}).fetchall()
    return [MessageRecord._make(r) for r in rows]


def sender_total(connection, params):
    row = connection.execute(sql.SENDER_TOTAL, params).fetchone()
    return row[0] if row else 0
