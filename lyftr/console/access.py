"""Who may see the console: without ``API_TOKEN`` everyone (as the API); with it, a login form.

A login puts in the signed session cookie an HMAC of the token (not the token: a signed cookie is
readable), the time it was issued and a random nonce. A session is valid for SESSION_LIFETIME
after its issue, while the token is the same and until it is logged out: logging out revokes its
nonce in the database (``store.revoke_session``, seen by every worker and host), so a copy of the
cookie replayed later is refused too.

Failed logins are delayed per client address (from the second in a row), exponentially up to
LOGIN_DELAY_MAX_S: while an
address is delayed its attempts are not even checked (429 with Retry-After). Each failure is
logged at WARNING (``result=login_failed``) and counted (``console_logins_total``).
"""

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from flask import current_app, g, redirect, render_template, request, session, url_for

from lyftr import metrics, store
from lyftr.api.request_log import annotate
from lyftr.console.blueprint import bp

# Styles come from our own stylesheet only; the SVG chart is inline markup, not a script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SESSION_LIFETIME = timedelta(hours=12)
# After the n-th failure in a row from one address (n >= 2) its next attempt waits 2**(n-2)
# seconds, at most LOGIN_DELAY_MAX_S: one typo costs nothing, a guessing script one try a minute.
LOGIN_DELAY_MAX_S = 60
# Addresses remembered per worker process (the least recently seen are forgotten first).
LOGIN_ADDRESSES_MAX = 10_000
# A path of the console, with an optional query: nothing that leaves it or splits a header.
_CONSOLE_PATH = re.compile(r"/ui(?:/[A-Za-z0-9._~%+\-/!$&'()*,;=:@]*)?(?:\?[\x21-\x7e]*)?")


def init_app(app):
    """The console's cookie, its signing key and the per-process login state."""
    if app.config["API_TOKEN"] and not app.config["SECRET_KEY"]:
        # Derived from the token: changing API_TOKEN also changes the key (everyone logs in again).
        token = app.config["API_TOKEN"].encode("utf-8", "surrogateescape")
        app.config["SECRET_KEY"] = hmac.new(token, b"lyftr console key", hashlib.sha256).hexdigest()
    app.config.update(
        SESSION_COOKIE_NAME="lyftr_console",
        SESSION_COOKIE_PATH="/ui",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=app.config["PUBLIC_BASE_URL"].startswith("https://"),
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.extensions["lyftr.console.logins"] = LoginThrottle()


class LoginThrottle:
    """Failures in a row per client address, and until when its next attempt must wait."""

    def __init__(self, max_addresses=LOGIN_ADDRESSES_MAX):
        self.max_addresses = max_addresses
        self.failures = OrderedDict()  # address -> (failures in a row, not before this time)
        self.lock = threading.Lock()

    def wait_s(self, address, now=None):
        """Seconds ``address`` must still wait before its next attempt is checked (0: none)."""
        now = time.monotonic() if now is None else now
        with self.lock:
            _, not_before = self.failures.get(address, (0, now))
        return max(0.0, not_before - now)

    def failed(self, address, now=None):
        now = time.monotonic() if now is None else now
        with self.lock:
            count = self.failures.pop(address, (0, now))[0] + 1
            delay = min(2 ** min(count - 2, 30), LOGIN_DELAY_MAX_S) if count > 1 else 0
            self.failures[address] = (count, now + delay)
            while len(self.failures) > self.max_addresses:
                self.failures.popitem(last=False)

    def succeeded(self, address):
        with self.lock:
            self.failures.pop(address, None)


def _token_digest():
    key = current_app.config["SECRET_KEY"]
    key = key if isinstance(key, bytes) else key.encode("utf-8")
    token = current_app.config["API_TOKEN"].encode("utf-8")
    return hmac.new(key, b"lyftr console login\0" + token, hashlib.sha256).hexdigest()


def _protected():
    return bool(current_app.config["API_TOKEN"])


def _session_valid():
    issued = session.get("iat")
    nonce = session.get("nonce")
    if not (isinstance(issued, int) and isinstance(nonce, str)):
        return False
    now = time.time()
    if not issued - 60 <= now < issued + SESSION_LIFETIME.total_seconds():
        return False
    if not hmac.compare_digest(str(session.get("auth", "")), _token_digest()):
        return False
    return not store.session_revoked(nonce)


def _logged_in():
    if not _protected():
        return True
    if "logged_in" not in g:
        g.logged_in = _session_valid()
    return g.logged_in


def csrf_token():
    """This session's CSRF token for a form (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _csrf_ok():
    sent = request.form.get("csrf", "")
    return "csrf" in session and hmac.compare_digest(sent, session["csrf"])


def _safe_next(target):
    """Where to go after logging in: a plain console path of ours, never another site."""
    if target and _CONSOLE_PATH.fullmatch(target):
        path = target.partition("?")[0].lower()
        # No empty or dot segments: a browser would resolve '/ui/../x' (or '%2e%2e') out of /ui.
        if "//" not in path and "/." not in path and "%2e" not in path:
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
    if request.endpoint in ("console.login", "console.logout", "console.static") or _logged_in():
        return None
    return redirect(url_for("console.login", next=request.full_path.rstrip("?")))


@bp.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _login_outcome(result):
    """Count it and put it on the request's line (at WARNING when refused: api.request_log)."""
    metrics.count_console_login(result)
    annotate(result=result)


def _client():
    return request.remote_addr or "unknown"


@bp.route("/login", methods=["GET", "POST"])
def login():
    if not _protected():
        return redirect(url_for("console.index"))
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if _logged_in():
            return redirect(target)
        return render_template("console/login.html", next=target)
    throttle = current_app.extensions["lyftr.console.logins"]
    wait_s = throttle.wait_s(_client())
    if wait_s > 0:
        _login_outcome("login_throttled")
        retry_after = max(1, round(wait_s))
        page = render_template(
            "console/login.html", next=target, problem="throttled", retry_after=retry_after
        )
        return page, 429, {"Retry-After": str(retry_after)}
    if not _csrf_ok():
        return render_template("console/login.html", next=target, problem="expired"), 400
    sent = request.form.get("token", "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(sent, current_app.config["API_TOKEN"].encode("utf-8")):
        throttle.failed(_client())
        _login_outcome("login_failed")
        return render_template("console/login.html", next=target, problem="wrong"), 401
    throttle.succeeded(_client())
    _login_outcome("logged_in")
    session.clear()  # a new session: nothing from before the login carries over
    session.permanent = True
    session["auth"] = _token_digest()
    session["iat"] = int(time.time())
    session["nonce"] = secrets.token_urlsafe(16)
    csrf_token()
    return redirect(target)


@bp.post("/logout")
def logout():
    if _protected() and _csrf_ok():
        if _session_valid():
            expires = datetime.fromtimestamp(session["iat"], UTC) + SESSION_LIFETIME
            until = expires.isoformat(timespec="microseconds").replace("+00:00", "Z")
            store.revoke_session(session["nonce"], until)
        session.clear()
    return redirect(url_for("console.login") if _protected() else url_for("console.index"))
