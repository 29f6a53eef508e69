"""The console's pages: the latest arrivals, a message, a sender's conversation, the overview."""

import time
from datetime import UTC, datetime, timedelta

from flask import current_app, redirect, render_template, request, url_for

from lyftr import metrics, store, timestamps
from lyftr.api import strict_json
from lyftr.api.health import readiness_checks
from lyftr.api.messages import decode_cursor, encode_cursor
from lyftr.api.schemas import Q_MAX, MessagesQuerySchema
from lyftr.console import display
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
    # A person who opens the server's address lands on the console; the API has no "/".
    app.add_url_rule("/", "root", lambda: redirect(url_for("console.index")))


bp.context_processor(display.template_helpers)


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


def _filter_problem(q, sender, since):
    """What is wrong with the filters, in the API's words (its 422 for the same values), with a
    suggestion where one is obvious; or None."""
    if not all(storable(v, nul=True) for v in (q, sender) if v is not None):
        return "The search or the sender holds characters no message can."
    problems = MessagesQuerySchema().validate({"from": sender, "since": since})
    if "from" in problems:
        hint = f" Did you mean +{sender}?" if sender.isascii() and sender.isdigit() else ""
        return f"From: {problems['from'][0]}.{hint}"
    if "since" in problems:
        return f"Received since: {problems['since'][0]}, e.g. 2025-01-15 or 2025-01-15T10:00:00Z."
    return None


def _matching(q, sender, since):
    """How many messages the filters match (None where counting is not cheap: a since filter
    is on arrival time, which /messages does not count)."""
    if since:
        return None
    if not q and not sender:
        return store.stats().total
    return store.list_messages(limit=1, offset=0, from_msisdn=sender, q=q).total


@bp.get("")
def index():
    """The latest arrivals, newest first."""
    q, sender, since = _text_arg("q"), _text_arg("from"), _text_arg("since")
    before, error = _cursor_arg()
    error = _filter_problem(q, sender, since) or error
    filters = {"q": q or "", "from": sender or "", "since": since or ""}
    if q is not None and len(q) > Q_MAX:
        error = f"The search is limited to {Q_MAX} characters."
        filters["q"] = q[:Q_MAX]
        return render_template("console/index.html", filters=filters, rows=[], error=error), 422
    if error:
        return render_template("console/index.html", filters=filters, rows=[], error=error), 400
    since_key = timestamps.query_ts_key(since) if since else None
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
        matching=_matching(q, sender, since),
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
    """One sender's messages in ts order, like a chat: the latest page first, newest at the
    bottom; ``page`` 2, 3, ... go back in time."""
    if not storable(sender):
        return render_template("console/not_found.html", what="sender", name=sender), 404
    page_number = request.args.get("page", "1")
    if not (
        page_number.isascii()
        and page_number.isdigit()
        and 0 < len(page_number) <= 9
        and int(page_number) > 0
    ):
        return render_template(
            "console/conversation.html",
            sender=sender,
            rows=[],
            total=0,
            error="This page link is not valid any more.",
        ), 400
    page_number = int(page_number)
    # Offset paging from the end, read backwards (a busy sender's latest page without walking
    # the rows before it): the latest page is whole, the earliest holds the rest.
    page = store.list_messages(
        limit=PAGE_SIZE,
        offset=(page_number - 1) * PAGE_SIZE,
        from_msisdn=sender,
        newest_first=True,
    )
    total = page.total
    if total == 0:
        return render_template("console/not_found.html", what="sender", name=sender), 404
    rows = page.rows[::-1]
    earlier = later = None
    if total > page_number * PAGE_SIZE:
        earlier = url_for("console.conversation", sender=sender, page=page_number + 1)
    if page_number > 1:
        later = url_for("console.conversation", sender=sender, page=page_number - 1)
        if page_number == 2:
            later = url_for("console.conversation", sender=sender, _anchor="latest")
    return render_template(
        "console/conversation.html",
        sender=sender,
        rows=rows,
        total=total,
        earlier=earlier,
        later=later,
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
