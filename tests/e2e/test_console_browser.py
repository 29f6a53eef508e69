"""The console in a real browser: Debian's chromium driven by Playwright, against the real Gunicorn
server. Every test fails on any browser console error or uncaught page error (a script, a style
or an image the Content-Security-Policy refused included).

With LYFTR_SCREENSHOTS=1 the tests also write docs/screenshots/*.png (one per page). The layout is
guarded twice: DOM assertions (no sideways scrolling at 390 px, the conversation opened at its
latest message, keyboard focus), and screenshots compared with the committed ones in
tests/e2e/screenshots/ within a tolerance (LYFTR_UPDATE_SCREENSHOTS=1 rewrites them after an
intended change; review the images before committing them).
"""

import base64
import os
import re
from pathlib import Path

import pytest

from .server import REPO_ROOT, message

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
REFERENCES = Path(__file__).parent / "screenshots"
PHONE = {"width": 390, "height": 844}
# A pixel differs when a channel is off by more than PIXEL_THRESHOLD (anti-aliasing, font hinting
# move a few); a screenshot matches when at most MAX_DIFFERENT of its pixels differ.
PIXEL_THRESHOLD = 48
MAX_DIFFERENT = 0.005
TOKEN = "browser-t0ken"
ALICE, BOB = "+919876543210", "+14155550123"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} is missing: install Debian's chromium (scripts/ensure-test-tools.sh)",
)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    yield from _page(browser, {"width": 1280, "height": 900})


@pytest.fixture
def phone(browser):
    yield from _page(browser, PHONE)


def _page(browser, viewport):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems = []
    page.on(
        "console",
        lambda entry: (
            problems.append(f"console {entry.type}: {entry.text}")
            if entry.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield page
    context.close()
    # A wrong token's page is a 401 (as it should be), which the browser reports as a failed load.
    problems = [p for p in problems if "status of 401 (UNAUTHORIZED)" not in p]
    assert problems == [], problems


def screenshot(page, name, *, full_page=False):
    if os.environ.get("LYFTR_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def fill_with_messages(server):
    """A small, readable history: Alice's order conversation, Bob's, and 60 parcel notices."""
    talk = [
        (ALICE, "2025-01-15T09:58:00Z", "Hi, where is my order #1042?"),
        (BOB, "2025-01-15T10:01:00Z", "Can I change the delivery address?"),
        (ALICE, "2025-01-15T10:02:30Z", "It said it shipped on Monday"),
        (BOB, "2025-01-15T10:05:00Z", "Thanks, that works"),
        (ALICE, "2025-01-16T08:15:00Z", "Got it, thank you! <script>alert('hi')</script>"),
    ]
    for i in range(60):
        sender = f"+4477009000{i % 4:02d}"
        server.post_webhook(
            message(
                f"parcel-{i:02d}",
                from_=sender,
                ts=f"2025-01-14T{8 + i // 10:02d}:{i % 10 * 5:02d}:00Z",
                text=f"Parcel {i:02d} is out for delivery",
            )
        )
    for i, (sender, ts, text) in enumerate(talk):
        response = server.post_webhook(message(f"chat-{i}", from_=sender, ts=ts, text=text))
        assert response.status == 200


def test_search_page_open_a_message_and_follow_its_sender(server, page):
    fill_with_messages(server)
    base = f"http://127.0.0.1:{server.port}"

    page.goto(f"{base}/ui")
    rows = page.locator("table.messages tbody tr")
    assert rows.count() == 50
    # The newest arrival first; its text shows as text, not as markup.
    assert "<script>alert('hi')</script>" in rows.first.inner_text()
    screenshot(page, "messages")

    page.get_by_label("Search").fill("PARCEL")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"q=PARCEL"))
    assert rows.count() == 50
    assert all("Parcel" in text for text in rows.all_inner_texts())
    page.get_by_role("link", name="Older »").click()
    page.wait_for_url(re.compile(r"cursor="))
    assert rows.count() == 10
    assert page.get_by_role("link", name="Older »").count() == 0
    page.get_by_role("link", name="« Newest").click()
    page.wait_for_url(re.compile(r"/ui\?q=PARCEL$"))  # counted before the page came: flaky
    assert rows.count() == 50

    page.get_by_label("Search").fill("order #1042")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"q=order"))
    assert rows.count() == 1
    rows.first.locator("td.text a").click()
    page.wait_for_url(re.compile(r"/ui/messages/chat-0$"))
    record = page.locator("dl.record").inner_text()
    assert "webhook" in record and "2025-01-15T09:58:00Z" in record
    screenshot(page, "message")

    page.get_by_role("link", name=ALICE).click()
    page.wait_for_url(re.compile(r"/ui/senders/"))
    bubbles = page.locator(".conversation .bubble .text").all_inner_texts()
    assert bubbles == [
        "Hi, where is my order #1042?",
        "It said it shipped on Monday",
        "Got it, thank you! <script>alert('hi')</script>",
    ]
    screenshot(page, "conversation")

    page.get_by_role("link", name="Overview").click()
    page.wait_for_url(re.compile(r"/ui/overview$"))
    assert page.locator("svg.chart rect.bar").count() >= 1
    # Every axis label inside the chart: the last day's is not cut off at the right edge.
    overflow = page.evaluate(
        """() => [...document.querySelectorAll("svg.chart text")].map((label) => {
            const box = label.getBBox();
            return box.x + box.width - label.ownerSVGElement.viewBox.baseVal.width;
        })"""
    )
    assert max(overflow) <= 0, overflow
    assert "ready" in page.locator("h2", has_text="Health").inner_text()
    top = page.locator("table").first.inner_text()
    assert "+447700900000" in top
    screenshot(page, "overview", full_page=True)


def test_log_in_once_and_out(start_server, page):
    server = start_server(workers=2, env={"API_TOKEN": TOKEN, "SECRET_KEY": "browser-key"})
    server.post_webhook(message("secret-1", text="for operators only"))
    base = f"http://127.0.0.1:{server.port}"

    page.goto(f"{base}/ui/senders/%2B919876543210")
    page.wait_for_url(re.compile(r"/ui/login\?next="))
    assert "for operators only" not in page.content()
    screenshot(page, "login")
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "That is not the API token."

    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/ui/senders/"))
    assert "for operators only" in page.content()
    # Once: other pages, and a reload, need no second login; the token is in no URL.
    page.goto(f"{base}/ui")
    assert "for operators only" in page.content()
    assert TOKEN not in page.url
    cookies = page.context.cookies()
    assert [c["name"] for c in cookies] == ["lyftr_console"]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert TOKEN not in cookies[0]["value"]

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/ui/login"))
    page.goto(f"{base}/ui")
    page.wait_for_url(re.compile(r"/ui/login"))


def test_screenshots_are_committed():
    """The README shows one of them; they are remade with LYFTR_SCREENSHOTS=1."""
    for name in ("messages", "message", "conversation", "overview", "login"):
        assert Path(SCREENSHOTS / f"{name}.png").is_file(), name


# --- layout ---------------------------------------------------------------------------------------


def no_sideways_scroll(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url}: {width} px wide"


def difference(page, actual, expected):
    """The fraction of pixels that differ between two PNGs, measured by the browser itself (a
    canvas on a blank page: no image library needed)."""
    blank = page.context.new_page()
    try:
        return blank.evaluate(
            """async ([a, b, threshold]) => {
                const load = (data) => new Promise((ok, fail) => {
                    const image = new Image();
                    image.onload = () => ok(image);
                    image.onerror = fail;
                    image.src = "data:image/png;base64," + data;
                });
                const [x, y] = await Promise.all([load(a), load(b)]);
                if (x.width !== y.width || x.height !== y.height) return 1;
                const pixels = (image) => {
                    const canvas = document.createElement("canvas");
                    canvas.width = image.width;
                    canvas.height = image.height;
                    const context = canvas.getContext("2d");
                    context.drawImage(image, 0, 0);
                    return context.getImageData(0, 0, image.width, image.height).data;
                };
                const p = pixels(x), q = pixels(y);
                let different = 0;
                for (let i = 0; i < p.length; i += 4) {
                    const off = (k) => Math.abs(p[i + k] - q[i + k]) > threshold;
                    if (off(0) || off(1) || off(2)) different++;
                }
                return different / (p.length / 4);
            }""",
            [
                base64.b64encode(actual).decode(),
                base64.b64encode(expected).decode(),
                PIXEL_THRESHOLD,
            ],
        )
    finally:
        blank.close()


def matches_reference(page, name):
    """The page looks as the committed screenshot does (times masked: they move)."""
    actual = page.screenshot(mask=[page.locator("time")], animations="disabled")
    reference = REFERENCES / f"{name}.png"
    if os.environ.get("LYFTR_UPDATE_SCREENSHOTS") or not reference.exists():
        REFERENCES.mkdir(exist_ok=True)
        reference.write_bytes(actual)
        if not os.environ.get("LYFTR_UPDATE_SCREENSHOTS"):
            pytest.fail(f"{reference} was missing: written now, review and commit it")
        return
    different = difference(page, actual, reference.read_bytes())
    if different > MAX_DIFFERENT:
        (REFERENCES / f"{name}.actual.png").write_bytes(actual)
        pytest.fail(
            f"{name}: {different:.1%} of the pixels differ from {reference} (see "
            f"{name}.actual.png beside it; LYFTR_UPDATE_SCREENSHOTS=1 accepts an intended change)"
        )


def test_a_phone_reads_every_page_without_sideways_scrolling(server, phone):
    fill_with_messages(server)
    base = f"http://127.0.0.1:{server.port}"
    for path in ("/ui", "/ui?q=parcel", "/ui/messages/chat-4", "/ui/overview"):
        phone.goto(base + path)
        no_sideways_scroll(phone)

    phone.goto(f"{base}/ui")
    card = phone.locator("table.messages tbody tr").first
    box = card.bounding_box()
    assert box["width"] <= PHONE["width"] and box["height"] < 200  # a card, not a squeezed row
    matches_reference(phone, "phone-messages")

    # A conversation opens at its latest message, newest at the bottom, as a chat app does.
    phone.get_by_role("link", name=ALICE).first.click()
    phone.wait_for_url(re.compile(r"/ui/senders/.*#latest$"))
    no_sideways_scroll(phone)
    bubbles = phone.locator(".conversation .bubble")
    latest = bubbles.last.bounding_box()
    assert "Got it, thank you!" in bubbles.last.inner_text()
    assert latest["y"] > bubbles.first.bounding_box()["y"]
    assert latest["y"] >= 0 and latest["y"] + latest["height"] <= PHONE["height"]
    matches_reference(phone, "phone-conversation")


def test_messages_page_looks_as_committed(server, page):
    fill_with_messages(server)
    page.goto(f"http://127.0.0.1:{server.port}/ui?q=order")
    assert page.locator("mark").first.inner_text().casefold() == "order"
    assert "1 message matches" in page.locator("p.summary").inner_text()
    matches_reference(page, "messages-search")


def test_the_keyboard_reaches_the_content_first(server, page):
    server.post_webhook(message("k1", text="line one\nline two"))
    page.goto(f"http://127.0.0.1:{server.port}/ui")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the content")
    assert skip.evaluate("element => element === document.activeElement")
    assert skip.bounding_box()["y"] >= 0  # shown while focused
    outline = skip.evaluate("element => getComputedStyle(element).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"#main$"))
    # Texts keep their newlines; links are underlined.
    page.goto(f"http://127.0.0.1:{server.port}/ui/messages/k1")
    assert page.locator("dd.text").inner_text() == "line one\nline two"
    decoration = page.locator("main a").first.evaluate(
        "element => getComputedStyle(element).textDecorationLine"
    )
    assert decoration == "underline"
