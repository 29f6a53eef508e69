"""The console: server-rendered pages for operators at /ui (Jinja templates in
``templates/console``, one stylesheet in ``static``, no JavaScript).

- ``/ui``: the latest arrivals first, with search (``q``), sender (``from``) and ``since`` (arrived
  at or after) filters, paged by a keyset cursor over (received_at, message_id).
- ``/ui/messages/<message_id>``: one message's full record, the provider's payload pretty-printed.
- ``/ui/senders/<from>``: one sender's messages in ``ts`` order like a chat: it opens at the latest
  page, newest at the bottom; earlier pages go back in time. (``/`` redirects to ``/ui``.)
- ``/ui/overview``: totals, top senders, arrivals per hour (an SVG chart the template draws), the
  readiness checks and the webhook results from the metrics.

Access: without ``API_TOKEN`` the console is as open as the API. With it, every page asks for the
token once (a login form) and the session cookie, signed with ``SECRET_KEY``, carries an HMAC of it
(not the token: a signed cookie is readable), so changing API_TOKEN logs everyone out. The token
never travels in a URL. The cookie is HttpOnly, SameSite=Strict and limited to /ui; the login and
logout forms also carry a per-session CSRF token. A token without a key refuses to start.
"""

from lyftr.console import access, pages  # noqa: F401  (access: its views join the blueprint)
from lyftr.console.blueprint import bp


def init_app(app):
    """Refuse a token without a key; set the session cookie's attributes; serve /ui."""
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
    pages.init_app(app)
    app.register_blueprint(bp)
