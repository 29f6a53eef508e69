"""The console: server-rendered pages for operators at /ui (Jinja templates in
``templates/console``, one stylesheet in ``static``, no JavaScript).

- ``/ui``: the latest arrivals first, with search (``q``), sender (``from``) and ``since`` (arrived
  at or after) filters, paged by a keyset cursor over (received_at, message_id).
- ``/ui/messages/<message_id>``: one message's full record, the provider's payload pretty-printed.
- ``/ui/senders/<from>``: one sender's messages in chronological order (``ts``), paged.
- ``/ui/overview``: totals, top senders, arrivals per hour (an SVG chart the template draws), the
  readiness checks and the webhook results from the metrics.

Access: without ``API_TOKEN`` the console is as open as the API. With it, every page asks for the
token once (a login form) and the session cookie, signed with ``SECRET_KEY``, carries an HMAC of it
(not the token: a signed cookie is readable), so changing API_TOKEN logs everyone out. The token
never travels in a URL. The cookie is HttpOnly, SameSite=Strict and limited to /ui; the login and
logout forms also carry a per-session CSRF token. A token without a key refuses to start.
"""

import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime, timedelta

from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from . import metrics, storage, timestamps
from .health import readiness_checks
from .inbound import storable
from .messages import decode_cursor, encode_cursor

bp = Blueprint("console", __name__, url_prefix="/ui")

PAGE_SIZE = 50
TOP_SENDERS = 10
CHART_DAYS = 7
# Arrivals per hour: a finished hour is counted again after this long (a purge or an import may
# change it), the current hour after CHART_CURRENT_TTL_S. Counting costs about 0.1 ms per
# thousand messages in the hour (docs/performance.md), so a page stays fast at any traffic.
CHART_DONE_TTL_S = 600
CHART_CURRENT_TTL_S = 10
# Styles come from our own stylesheet only; the SVG chart is inline markup, not a script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def init_app(app):
    """Refuse a token without a key; set the session cookie's attributes."""
    if app.config["API_TOKEN"] and not app.config["SECRET_KEY"]:
        raise ValueError(
            "API_TOKEN is set but SECRET_KEY is not: the console (/ui) keeps its login in a "
            "session cookie signed with SECRET_KEY. Set SECRET_KEY to a long random value, e.g. "
            "the output of: python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )
    app.config.update(
        SESSION_COOKIE_NAME="lyftr_console",
        SESSION_COOKIE_PATH="/ui",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
    )
    app.extensions["lyftr.console"] = {"hours": {}}


# --- access ----------------------------------------------------------------------------------


def _token_digest():
    key = current_app.config["SECRET_KEY"]
    key = key if isinstance(key, bytes) else key.encode("utf-8")
    token = current_app.config["API_TOKEN"].encode("utf-8")
    return hmac.new(key, b"lyftr console login\0" + token, hashlib.sha256).hexdigest()


def _protected():
    return bool(current_app.config["API_TOKEN"])


def _logged_in():
    if not _protected():
        return True
    return hmac.compare_digest(str(session.get("auth", "")), _token_digest())


def csrf_token():
    """This session's CSRF token for a form (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _csrf_ok():
    sent = request.form.get("csrf", "")
    return "csrf" in session and hmac.compare_digest(sent, session["csrf"])


def _safe_next(target):
    """Where to go after logging in: a console path of ours, never another site."""
    if target and target.startswith("/ui") and "\\" not in target and "//" not in target:
        return target
    return url_for("console.index")


@bp.context_processor
def _template_helpers():
    return {
        "csrf_token": csrf_token,
        "protected": _protected(),
        "logged_in": _logged_in(),
        "number": lambda n: f"{n:,}",
    }


@bp.before_request
def _require_login():
    if request.endpoint in ("console.login", "console.logout") or _logged_in():
        return None
    return redirect(url_for("console.login", next=request.full_path.rstrip("?")))


@bp.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.route("/login", methods=["GET", "POST"])
def login():
    if not _protected():
        return redirect(url_for("console.index"))
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if _logged_in():
            return redirect(target)
        return render_template("console/login.html", next=target)
    if not _csrf_ok():
        return render_template("console/login.html", next=target, problem="expired")
    sent = request.form.get("token", "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(sent, current_app.config["API_TOKEN"].encode("utf-8")):
        return render_template("console/login.html", next=target, problem="wrong")
    session.clear()  # a new session: nothing from before the login carries over
    session["auth"] = _token_digest()
    csrf_token()
    return redirect(target)


@bp.post("/logout")
def logout():
    if _protected() and _csrf_ok():
        session.clear()
    return redirect(url_for("console.login") if _protected() else url_for("console.index"))


# --- pages -----------------------------------------------------------------------------------


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
    if error:
        return render_template("console/index.html", filters=filters, rows=[], error=error), 400
    rows, last = storage.list_arrivals(
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
    record = storage.get_message(message_id) if storable(message_id) else None
    if record is None:
        return render_template("console/not_found.html", what="message", name=message_id), 404
    raw = None
    if record.raw is not None:
        raw = json.dumps(json.loads(record.raw), indent=2, ensure_ascii=False)
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
    page = storage.list_messages(limit=PAGE_SIZE, offset=0, from_msisdn=sender, after=after)
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
    stats = storage.stats()
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
    for hour, count in storage.arrivals_per_hour(stale):
        cache[hour] = (count, clock)
    return [(hour, cache[hour][0]) for hour in hours]
