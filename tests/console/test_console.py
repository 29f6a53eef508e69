"""The console (/ui): pages, escaping, the login, paging, filters and the storage queries behind
them, on both backends."""

import html
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import quote, unquote

import pytest

from lyftr import create_app, store
from lyftr.store.sqlite import reads as sqlite_reads
from lyftr.timestamps import now_iso

TOKEN = "console-t0ken"
XSS = "<script>alert('x')</script>"


def links(response, pattern):
    """The hrefs of ``response`` that match ``pattern``, unescaped."""
    body = response.get_data(as_text=True)
    return [html.unescape(h) for h in re.findall(r'href="([^"]*)"', body) if re.search(pattern, h)]


def message_ids(response):
    body = response.get_data(as_text=True)
    return [html.unescape(m) for m in re.findall(r'href="/ui/messages/([^"]*)"', body)]


def send_many(send, n, **overrides):
    ids = []
    for i in range(n):
        message_id = f"m{i:03d}"
        fields = {"message_id": message_id, "ts": f"2025-01-15T10:{i // 60:02d}:{i % 60:02d}Z"}
        assert send(**{**fields, **overrides}).status_code == 200
        ids.append(message_id)
    return ids


# --- pages -----------------------------------------------------------------------------------


def test_pages_answer_html_with_a_strict_policy(client, send):
    send()
    for path in ("/ui", "/ui/overview", "/ui/messages/m1", "/ui/senders/%2B919876543210"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.mimetype == "text/html"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/ui/").status_code == 302
    with client.get("/ui/static/console.css") as stylesheet:
        assert stylesheet.status_code == 200 and stylesheet.mimetype == "text/css"


def test_text_and_ids_are_escaped_everywhere(client, send):
    message_id = '<img src=x onerror="alert(1)">'
    assert send(message_id=message_id, text=XSS).status_code == 200
    pages = [
        client.get("/ui"),
        client.get("/ui", query_string={"q": XSS}),
        client.get("/ui/messages/" + quote(message_id, safe="")),
        client.get("/ui/senders/%2B919876543210"),
        client.get("/ui/messages/" + quote(XSS, safe="")),  # a 404 naming what was asked for
    ]
    for response in pages:
        body = response.get_data(as_text=True)
        assert "<script>" not in body and "<img src=x" not in body
        assert "&lt;script&gt;" in body
    assert pages[0].status_code == 200 and "&lt;script&gt;alert(" in pages[0].get_data(as_text=True)
    assert [unquote(i) for i in message_ids(pages[0])] == [message_id]
    assert pages[4].status_code == 404


def test_the_latest_arrivals_come_first_and_page_by_cursor(client, send):
    # Written in ts order backwards: the console orders by arrival, not by ts.
    ids = [f"m{i:03d}" for i in range(120)]
    for i, message_id in enumerate(ids):
        assert send(message_id=message_id, ts=f"2025-01-{28 - i // 10:02d}T10:00:00Z").status_code
    seen, path = [], "/ui"
    for _ in range(5):
        response = client.get(path)
        assert response.status_code == 200
        seen += message_ids(response)
        next_links = re.findall(r'<a href="([^"]*)" rel="next">', response.get_data(as_text=True))
        if not next_links:
            break
        path = html.unescape(next_links[0])
    assert seen == ids[::-1]
    assert 'rel="first"' in client.get(path).get_data(as_text=True)


def test_filters(client, send):
    send(message_id="a", text="Your ORDER shipped", **{"from": "+111"})
    send(message_id="b", text="order again", **{"from": "+222"})
    send(message_id="c", text="hello", **{"from": "+111"})
    assert message_ids(client.get("/ui?q=order")) == ["b", "a"]
    assert message_ids(client.get("/ui?q=order&from=%2B111")) == ["a"]
    assert message_ids(client.get("/ui?from=+111")) == ["c", "a"]  # an unencoded '+' too
    assert message_ids(client.get("/ui?q=nothing-like-this")) == []
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert message_ids(client.get("/ui", query_string={"since": past})) == ["c", "b", "a"]
    assert message_ids(client.get("/ui?since=2999-01-01")) == []
    for bad in ("/ui?since=yesterday", "/ui?cursor=not-a-cursor"):
        response = client.get(bad)
        assert response.status_code == 400
        assert 'role="alert"' in response.get_data(as_text=True)
        assert message_ids(response) == []


def test_a_message_shows_its_full_record_and_payload(make_app):
    from helpers import PROVIDER_SETTINGS, WhatsAppSender, wa_text

    client = make_app(**PROVIDER_SETTINGS).test_client()
    assert WhatsAppSender(client).messages(wa_text("wamid.1", "Hi <b>there</b>")).status_code == 200
    body = client.get("/ui/messages/wamid.1").get_data(as_text=True)
    for expected in ("whatsapp", "text", "Hi &lt;b&gt;there&lt;/b&gt;", "&#34;body&#34;:"):
        assert expected in body
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body)  # received_at
    assert '\n    "from": "16505551234"' in html.unescape(body)  # pretty-printed (raw.message)


def test_unknown_message_and_sender_are_404(client, send):
    send()
    assert client.get("/ui/messages/nope").status_code == 404
    assert client.get("/ui/messages/a%00b").status_code == 404
    assert client.get("/ui/senders/%2B999").status_code == 404
    assert "No sender" in client.get("/ui/senders/%2B999").get_data(as_text=True)


def test_a_sender_reads_as_a_conversation_in_ts_order(client, send):
    send(message_id="late", ts="2025-01-16T09:00:00Z", text="second")
    send(message_id="early", ts="2025-01-15T09:00:00Z", text="first")
    send(message_id="other", ts="2025-01-15T08:00:00Z", **{"from": "+1"})
    response = client.get("/ui/senders/%2B919876543210")
    assert message_ids(response) == ["early", "late"]
    body = response.get_data(as_text=True)
    assert "2 messages" in body and body.index("2025-01-15") < body.index("2025-01-16")


def test_a_conversation_opens_at_the_latest_messages_newest_at_the_bottom(client, send):
    ids = send_many(send, 60)
    response = client.get("/ui/senders/%2B919876543210")
    body = response.get_data(as_text=True)
    assert message_ids(response) == ids[10:]  # the latest 50, oldest of them at the top
    assert re.search(r'id="latest">\s*<p class="text">[^<]*</p>\s*<p class="meta">', body)
    assert body.rindex('id="latest"') > body.rindex("/ui/messages/m058")
    assert 'rel="next"' not in body
    earlier = re.findall(r'<a href="([^"]*)" rel="prev">', body)
    first_page = client.get(html.unescape(earlier[0]))
    assert message_ids(first_page) == ids[:10]
    back = re.findall(r'<a href="([^"]*)" rel="next">', first_page.get_data(as_text=True))
    assert html.unescape(back[0]) == "/ui/senders/+919876543210#latest"
    assert 'rel="prev"' not in first_page.get_data(as_text=True)
    assert client.get("/ui/senders/%2B919876543210?page=0").status_code == 400
    assert client.get("/ui/senders/%2B919876543210?page=9").status_code == 200


def test_overview(client, send):
    send_many(send, 3)
    send(message_id="x", **{"from": "+1"})
    body = client.get("/ui/overview").get_data(as_text=True)
    assert ">4</span> messages" in body and ">2</span> senders" in body
    assert body.index("/ui/senders/+919876543210#") < body.index('/ui/senders/+1#latest"')
    assert len(re.findall(r'<rect class="bar"', body)) == 1  # all arrived this hour
    assert re.search(r"<title>\d{4}-\d\d-\d\dT\d\d:00 UTC: 4</title>", body)
    assert "webhook_secret" in body and "ready" in body
    assert re.search(r"<td>created</td><td class=\"n\">[\d,]+</td>", body)


# --- access ----------------------------------------------------------------------------------


@pytest.fixture
def guarded(make_app, send):
    send(text="secret text")
    return make_app(API_TOKEN=TOKEN).test_client()


def csrf_of(response):
    return re.search(r'name="csrf" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def log_in(client, token=TOKEN, next_path="/ui"):
    form = client.get("/ui/login")
    return client.post("/ui/login", data={"token": token, "csrf": csrf_of(form), "next": next_path})


def test_a_token_without_a_key_starts_with_a_key_derived_from_it(database_url):
    apps = [
        create_app({"DATABASE_URL": database_url, "API_TOKEN": token, "SECRET_KEY": ""})
        for token in (TOKEN, TOKEN, "another-token")
    ]
    keys = [app.config["SECRET_KEY"] for app in apps]
    assert keys[0] == keys[1] != keys[2] and TOKEN not in keys[0]


def test_no_page_shows_data_without_logging_in(guarded):
    for path in ("/ui", "/ui/overview", "/ui/messages/m1", "/ui/senders/%2B919876543210"):
        response = guarded.get(path)
        assert response.status_code == 302
        assert response.location.startswith("/ui/login?next=")
        assert "secret text" not in response.get_data(as_text=True)
    # A bearer token is the API's way, not the console's.
    assert guarded.get("/ui", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 302


def test_log_in_once_then_browse_then_log_out(guarded):
    wrong = log_in(guarded, token="wrong")
    assert wrong.status_code == 401 and "not the API token" in wrong.get_data(as_text=True)
    assert guarded.get("/ui").status_code == 302
    response = log_in(guarded, next_path="/ui/senders/%2B919876543210")
    assert response.status_code == 302 and response.location == "/ui/senders/%2B919876543210"
    cookie = response.headers["Set-Cookie"]
    assert TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    assert "secret text" in guarded.get("/ui").get_data(as_text=True)
    page = guarded.get("/ui/overview")
    assert page.status_code == 200
    # Logging out needs the session's CSRF token.
    assert guarded.post("/ui/logout", data={"csrf": "forged"}).status_code == 302
    assert guarded.get("/ui").status_code == 200
    assert guarded.post("/ui/logout", data={"csrf": csrf_of(page)}).status_code == 302
    assert guarded.get("/ui").status_code == 302


def test_login_needs_the_forms_csrf_token(guarded):
    guarded.get("/ui/login")
    response = guarded.post("/ui/login", data={"token": TOKEN, "csrf": "forged"})
    assert "expired" in response.get_data(as_text=True)
    assert guarded.get("/ui").status_code == 302


def test_login_goes_back_only_to_the_console(guarded):
    for target in ("https://evil.example/", "//evil.example/ui", "/messages", "/ui\\evil"):
        response = log_in(guarded.application.test_client(), next_path=target)
        assert response.location == "/ui", target


def test_a_new_api_token_logs_everyone_out(make_app, guarded):
    log_in(guarded)
    cookie = guarded.get_cookie("lyftr_console", path="/ui")
    rotated = make_app(API_TOKEN="another-token").test_client()
    rotated.set_cookie("lyftr_console", cookie.value, path="/ui")
    assert rotated.get("/ui").status_code == 302


def test_without_a_token_there_is_no_login(client):
    assert client.get("/ui/login").location == "/ui"
    assert client.get("/ui").status_code == 200


# --- the storage queries -----------------------------------------------------------------------


def stored(app, messages):
    with app.app_context():
        created_at = [now_iso() for _ in messages]
        for message, at in zip(messages, created_at, strict=True):
            store.insert_batch([{**message, "created_at": at}])


def load(app, n):
    from lyftr.timestamps import message_ts_key

    senders = ["+1", "+2", "+3", "+4", "+5", "+6", "+7"]
    messages = []
    for i in range(n):
        ts = f"2025-01-{1 + i % 28:02d}T00:00:{i % 60:02d}Z"
        messages.append(
            {
                "message_id": f"id{i:04d}",
                "from_msisdn": senders[(i * i) % 7 if i % 3 else 0],
                "to_msisdn": "+9",
                "ts": ts,
                "ts_key": message_ts_key(ts),
                "text": ("rare " if i % 37 == 0 else "") + ("common " if i % 2 else "x"),
            }
        )
    stored(app, messages)
    return messages


@pytest.mark.parametrize("walk", [3, 5000])
def test_list_arrivals_is_the_filtered_newest_first_order(app, monkeypatch, walk):
    # A tiny walk sends most queries through the indexes: both ways give the same pages.
    monkeypatch.setattr(sqlite_reads, "ARRIVALS_WALK", walk)
    monkeypatch.setattr(sqlite_reads, "ARRIVALS_WALK_MAX", walk * 3)
    monkeypatch.setattr(sqlite_reads, "ARRIVALS_SMALL_SENDER", 20)
    messages = load(app, 150)
    newest_first = messages[::-1]
    cases = [
        {},
        {"from_msisdn": "+1"},
        {"from_msisdn": "+3"},
        {"from_msisdn": "+404"},
        {"q": "RARE"},
        {"q": "common"},
        {"q": "x"},
        {"q": "rare", "from_msisdn": "+1"},
        {"q": "common", "from_msisdn": "+2"},
    ]
    with app.app_context():
        for filters in cases:
            expected = [
                m["message_id"]
                for m in newest_first
                if m["from_msisdn"] == filters.get("from_msisdn", m["from_msisdn"])
                and filters.get("q", "").casefold() in m["text"].casefold()
            ]
            got, before = [], None
            while True:
                page, before = store.list_arrivals(limit=7, before=before, **filters)
                got += [record.message_id for record in page]
                if before is None:
                    break
            assert got == expected, filters


def test_arrivals_per_hour(app):
    now = datetime.now(UTC)
    load(app, 5)
    hours = [(now + timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in (-1, 0, 1)]
    with app.app_context():
        counts = store.arrivals_per_hour(["2020-01-01T00", *hours])
    assert [hour for hour, _ in counts] == ["2020-01-01T00", *hours]
    assert counts[0][1] == 0
    assert sum(n for _, n in counts) == 5  # this hour's, or the next's if it turned meanwhile


def test_stylesheet_is_served_before_login(make_app):
    app = make_app(API_TOKEN="t" * 32, SECRET_KEY="k" * 32)
    client = app.test_client()
    assert client.get("/ui").status_code == 302  # the pages ask for the login
    with client.get("/ui/static/console.css") as stylesheet:  # the login page needs its style
        assert stylesheet.status_code == 200 and stylesheet.mimetype == "text/css"


def test_the_root_leads_to_the_console(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui"
    assert client.get("/", follow_redirects=True).status_code == 200


def test_a_search_says_how_many_match_and_marks_the_term(client, send):
    send(message_id="a", text="Your ORDER <shipped>", **{"from": "+111"})
    send(message_id="b", text="order again\nsecond line", **{"from": "+222"})
    send(message_id="c", text="hello", **{"from": "+111"})
    body = client.get("/ui?q=order").get_data(as_text=True)
    assert "<h1>Messages with “order”</h1>" in body
    assert "2 messages match." in body
    assert "Your <mark>ORDER</mark> &lt;shipped&gt;" in body
    assert "<mark>order</mark> again\nsecond line" in body  # its newline kept (pre-line)
    assert "1 message matches." in client.get("/ui?q=order&from=%2B111").get_data(as_text=True)
    assert "3 messages." in client.get("/ui").get_data(as_text=True)
    marked = client.get("/ui", query_string={"q": "<s"}).get_data(as_text=True)
    assert "<mark>&lt;s</mark>hipped&gt;" in marked


def test_times_read_relative_with_the_exact_instant_on_hover(client, send):
    send(message_id="a", ts="2025-01-15T10:00:00Z")
    body = client.get("/ui").get_data(as_text=True)
    assert re.search(r'<time datetime="[0-9T:.-]+Z" title="[0-9 :-]+ UTC">just now</time>', body)
    record = client.get("/ui/messages/a").get_data(as_text=True)
    assert 'title="2025-01-15 10:00:00 UTC">15 Jan 2025</time>' in record
    conversation = client.get("/ui/senders/%2B919876543210").get_data(as_text=True)
    assert ">15 Jan 2025</time>" in conversation


@pytest.mark.parametrize(
    ("query", "explained"),
    [
        ({"from": "919876543210"}, "From: Value should be '+' followed by 1 to 15 digits"),
        ({"from": "919876543210"}, "Did you mean +919876543210?"),
        ({"since": "yesterday"}, "Received since: Value should be an ISO-8601 date or date-time"),
    ],
)
def test_a_bad_filter_is_explained_as_the_api_does(client, send, query, explained):
    send()
    response = client.get("/ui", query_string=query)
    assert response.status_code == 400
    assert explained in html.unescape(response.get_data(as_text=True))
    assert message_ids(response) == []


def test_new_record_fields_show_when_present(app, client, send, monkeypatch):
    send(message_id="m1", text="line one\nline two")
    with app.app_context():
        record = store.get_message("m1")._asdict()
    record |= {
        "sender_name": "Asha <K>",
        "reply_to": "m0",
        "edited_at": "2025-01-15T10:05:00Z",
        "media": [{"url": "javascript:alert(1)", "mime_type": "image/png", "caption": "cat"}],
        "location": {"latitude": 12.9, "longitude": 77.6, "name": "Office", "address": None},
        "reactions": [{"from": "+14155550100", "emoji": "👍", "ts": "2025-01-15T10:06:00Z"}],
    }
    # The record's shape (a row with more attributes) once the new fields are stored.
    monkeypatch.setattr(store, "get_message", lambda message_id: SimpleNamespace(**record))
    body = client.get("/ui/messages/m1").get_data(as_text=True)
    for expected in ("(Asha &lt;K&gt;)", "/ui/messages/m0", "Edited", "cat", "Office", "👍"):
        assert expected in body, expected
    assert "line one\nline two" in body
    assert "javascript:" not in body  # only http(s) media links
    record["revoked_at"] = "2025-01-15T11:00:00Z"
    assert "Deleted by the sender" in client.get("/ui/messages/m1").get_data(as_text=True)


def test_without_the_new_fields_the_record_page_shows_none_of_them(client, send):
    send(message_id="m1")
    body = client.get("/ui/messages/m1").get_data(as_text=True)
    for absent in ("In reply to", "Edited", "Media", "Location", "Reactions", "Deleted"):
        assert absent not in body


def test_the_charts_last_day_label_has_room(client, monkeypatch):
    from lyftr.console import pages

    # The worst case: the newest hour is a midnight, so its day's label is the last bar's.
    start = datetime(2025, 1, 8, 1, tzinfo=UTC)
    hours = [((start + timedelta(hours=i)).strftime("%Y-%m-%dT%H"), 1) for i in range(168)]
    assert hours[-1][0].endswith("T00")
    monkeypatch.setattr(pages, "_arrivals_per_hour", lambda: hours)
    body = client.get("/ui/overview").get_data(as_text=True)
    width = int(re.search(r'<svg class="chart"[^>]* width="(\d+)"', body)[1])
    last_label = max(
        int(x) for x in re.findall(r'<text class="label" x="(\d+)" y="1[0-9]{2}"', body)
    )
    # "01-15" in the 11 px label font is about 33 px wide.
    assert width - last_label >= 36
