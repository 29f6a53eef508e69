"""Who may see the console: without ``API_TOKEN`` everyone (as the API); with it, a login form that
keeps an HMAC of the token in the signed session cookie, and CSRF tokens on its forms."""

import hashlib
import hmac
import secrets

from flask import current_app, redirect, render_template, request, session, url_for

from lyftr.console.blueprint import bp

# Styles come from our own stylesheet only; the SVG chart is inline markup, not a script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


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
    if request.endpoint in ("console.login", "console.logout", "console.static") or _logged_in():
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
