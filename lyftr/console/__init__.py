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

# access and rejections: imported for their views, which join the blueprint.
from lyftr.console import access, pages, rejections  # noqa: F401
from lyftr.console.blueprint import bp


def init_app(app):
    """The session cookie's attributes and key, the login state; serve /ui."""
    access.init_app(app)
    pages.init_app(app)
    app.register_blueprint(bp)
