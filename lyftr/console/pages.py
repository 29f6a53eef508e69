"""The console's pages: the latest arrivals, a message, a sender's conversation, the overview."""

import time
from datetime import UTC, datetime, timedelta

from flask import current_app, redirect, render_template, request, url_for

from lyftr import metrics, store, timestamps
from lyftr.api import strict_json
from lyftr.api.health import readiness_checks
from lyftr.api.messages import decode_cursor, encode_cursor
from lyftr.api.schemas import Q_MAX
from lyftr.console.blueprint import bp
from lyftr.store.folding import storable

PAGE_SIZE = 50
# A message page shows at most this much of the provider's payload (a WhatsApp one is ~2 KB).
RAW_MAX_CHARS = 64 * 1024
TOP_SENDERS = 10
CHART_DAYS = 7
# Arrivals per hour: a finished hour is counted again after this long (a purge or an import may
# change it), the current hour after CHART_CURRENT_TTL_S. Counting costs about 0.1 ms per
# thousand messages in the hour (docs/performance.md), so a page stays fast at any traffic.
CHART_DONE_TTL_S = 600
CHART_CURRENT_TTL_S = 10


def init_app(app):
    app.extensions["lyftr.console"] = {"hours": {}}


def _text_arg(name):
    value = request.args.get(name, "")
    if name == "from" and value.startswith(" "):  # an unencoded '+' in a URL reads as a space
        value = "+" + value[1:]
    return value.strip() or None


def _cursor_arg():
    cursor = request.args.get("cursor")
    if not cursor:
        return None, None
    position = decode_cursor(cursor)
    return position, None if position is not None else "This page link is not valid any more."


@bp.get("")
def index():
    """The latest arrivals, newest first."""
    q, sender, since = _text_arg("q"), _text_arg("from"), _text_arg("since")
    before, error = _cursor_arg()
    since_key = timestamps.query_ts_key(since) if since else None
    if since and since_key is None:
        error = "since: an ISO-8601 date or date-time, e.g. 2025-01-15 or 2025-01-15T10:00:00Z."
    if not all(storable(v, nul=True) for v in (q, sender) if v is not None):
        error = "The search or the sender holds characters no message can."
    filters = {"q": q or "", "from": sender or "", "since": since or ""}
    if q is not None and len(q) > Q_MAX:
        error = f"The search is limited to {Q_MAX} characters."
        filters["q"] = q[:Q_MAX]
        return render_template("console/index.html", filters=filters, rows=[], error=error), 422
    if error:
        return render_template("console/index.html", filters=filters, rows=[], error=error), 400
    rows, last = store.list_arrivals(
        limit=PAGE_SIZE, from_msisdn=sender, received_since=since_key, q=q, before=before
    )
    older = None
    if last is not None:
        args = {k: v for k, v in filters.items() if v}
        older = url_for("console.index", **args, cursor=encode_cursor(*last))
    newest = url_for("console.index", **{k: v for k, v in filters.items() if v})
    return render_template(
        "console/index.html",
        filters=filters,
        rows=rows,
        older=older,
        newest=newest if before is not None else None,
    )


@bp.get("/")
def index_slash():
    return redirect(url_for("console.index"))


@bp.get("/messages/<path:message_id>")
def message(message_id):
    """One message's full record."""
    record = store.get_message(message_id) if storable(message_id) else None
    if record is None:
        return render_template("console/not_found.html", what="message", name=message_id), 404
    raw = None
    if record.raw is not None:  # bounded: a payload stored deep or large stays a small page
        raw = strict_json.pretty(record.raw, max_chars=RAW_MAX_CHARS)
    return render_template("console/message.html", record=record, raw=raw)


@bp.get("/senders/<path:sender>")
def conversation(sender):
    """One sender's messages in chronological order, like a conversation."""
    after, error = _cursor_arg()
    if not storable(sender):
        return render_template("console/not_found.html", what="sender", name=sender), 404
    if error:
        return render_template(
            "console/conversation.html", sender=sender, rows=[], total=0, error=error
        ), 400
    page = store.list_messages(limit=PAGE_SIZE, offset=0, from_msisdn=sender, after=after)
    if page.total == 0:
        return render_template("console/not_found.html", what="sender", name=sender), 404
    later = None
    if page.has_more:
        cursor = encode_cursor(page.rows[-1].ts_key, page.rows[-1].message_id)
        later = url_for("console.conversation", sender=sender, cursor=cursor)
    first = url_for("console.conversation", sender=sender) if after is not None else None
    return render_template(
        "console/conversation.html",
        sender=sender,
        rows=page.rows,
        total=page.total,
        later=later,
        first=first,
    )


@bp.get("/overview")
def overview():
    """Totals, top senders, arrivals per hour and the service's health."""
    stats = store.stats()
    hours = _arrivals_per_hour()
    checks = readiness_checks()
    webhook_results = {
        dict(labels)["result"]: int(value)
        for labels, value in metrics.current_values("webhook_requests_total").items()
    }
    stored = {
        dict(labels)["provider"]: int(value)
        for labels, value in metrics.current_values("messages_stored_total").items()
    }
    return render_template(
        "console/overview.html",
        stats=stats,
        hours=hours,
        peak=max((n for _, n in hours), default=0),
        days=CHART_DAYS,
        checks=checks,
        ready=all(state == "ok" for state in checks.values()),
        webhook_results=[(r, webhook_results.get(r, 0)) for r in metrics.WEBHOOK_RESULTS],
        stored=[(p, stored.get(p, 0)) for p in metrics.PROVIDERS],
    )


def _arrivals_per_hour(now=None):
    """``[(hour, count)]`` for the last CHART_DAYS days, oldest first (UTC hours), through a
    per-process cache of the hours already counted."""
    now = now or datetime.now(UTC)
    current = now.replace(minute=0, second=0, microsecond=0)
    hours = [
        (current - timedelta(hours=i)).strftime("%Y-%m-%dT%H") for i in range(CHART_DAYS * 24)
    ][::-1]
    cache = current_app.extensions["lyftr.console"]["hours"]
    clock = time.monotonic()
    for hour in list(cache):
        if hour < hours[0]:
            del cache[hour]
    stale = [
        hour
        for hour in hours
        if hour not in cache
        or clock - cache[hour][1] > (CHART_CURRENT_TTL_S if hour == hours[-1] else CHART_DONE_TTL_S)
    ]
    for hour, count in store.arrivals_per_hour(stale):
        cache[hour] = (count, clock)
    return [(hour, cache[hour][0]) for hour in hours]
