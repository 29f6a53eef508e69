"""The console's sessions: login delays per address, 401 and WARNING for a wrong token, issue
time and nonce, revocation by logout and by a new token, Secure cookies, and where ``next`` may
lead."""

import json
import logging
import re
import time

import pytest

from lyftr import store
from lyftr.console.access import LOGIN_DELAY_MAX_S, LoginThrottle
from lyftr.logs import LineFormatter

TOKEN = "console-t0ken-of-enough-length-32"


@pytest.fixture
def guarded(make_app):
    return make_app(API_TOKEN=TOKEN).test_client()


def csrf_of(response):
    return re.search(r'name="csrf" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def log_in(client, token=TOKEN, next_path="/ui", address="198.51.100.7"):
    form = client.get("/ui/login")
    return client.post(
        "/ui/login",
        data={"token": token, "csrf": csrf_of(form), "next": next_path},
        environ_base={"REMOTE_ADDR": address},
    )


def logins(client, result):
    from lyftr import metrics

    return metrics.current_values("console_logins_total").get((("result", result),), 0)


def test_a_wrong_token_is_401_logged_at_warning_and_counted(guarded, caplog):
    caplog.set_level(logging.INFO, logger="lyftr.request")
    before = logins(guarded, "login_failed")
    response = log_in(guarded, token="wrong")
    assert response.status_code == 401
    assert logins(guarded, "login_failed") == before + 1
    line = json.loads(LineFormatter().format(caplog.records[-1]))
    assert line["level"] == "WARNING" and line["result"] == "login_failed"
    assert TOKEN not in caplog.text and "wrong" not in caplog.text


def test_failures_delay_the_next_attempt_of_that_address_only(guarded):
    assert log_in(guarded, token="wrong").status_code == 401  # one typo: no delay yet
    assert log_in(guarded, token="wrong").status_code == 401
    # The right token is not even checked while the address waits.
    delayed = log_in(guarded)
    assert delayed.status_code == 429 and int(delayed.headers["Retry-After"]) >= 1
    assert "try again in" in delayed.get_data(as_text=True)
    assert guarded.get("/ui").status_code == 302
    other = guarded.application.test_client()
    assert log_in(other, address="203.0.113.9").status_code == 302


def test_the_delay_doubles_up_to_its_cap_and_a_success_resets_it():
    throttle = LoginThrottle()
    waits = []
    for n in range(10):
        throttle.failed("a", now=1000.0 + n * 1000)
        waits.append(throttle.wait_s("a", now=1000.0 + n * 1000))
    assert waits[:5] == [0, 1, 2, 4, 8] and max(waits) == LOGIN_DELAY_MAX_S
    throttle.succeeded("a")
    assert throttle.wait_s("a") == 0


def test_the_throttle_remembers_a_bounded_number_of_addresses():
    throttle = LoginThrottle(max_addresses=100)
    for n in range(1000):
        for _ in range(2):
            throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle.failures) == 100
    assert throttle.wait_s("10.0.3.231") > 0 and throttle.wait_s("10.0.0.0") == 0


def test_a_replayed_cookie_after_logout_is_refused(guarded):
    assert log_in(guarded).status_code == 302
    cookie = guarded.get_cookie("lyftr_console", path="/ui").value
    page = guarded.get("/ui")
    assert page.status_code == 200
    assert guarded.post("/ui/logout", data={"csrf": csrf_of(page)}).status_code == 302
    replay = guarded.application.test_client()
    replay.set_cookie("lyftr_console", cookie, path="/ui")
    assert replay.get("/ui").status_code == 302


def test_each_login_is_a_new_session_with_its_own_nonce(guarded):
    serializer = guarded.application.session_interface.get_signing_serializer(guarded.application)
    sessions = []
    for _ in range(2):
        client = guarded.application.test_client()
        log_in(client)
        sessions.append(serializer.loads(client.get_cookie("lyftr_console", path="/ui").value))
    assert sessions[0]["nonce"] != sessions[1]["nonce"]
    assert abs(sessions[0]["iat"] - time.time()) < 60


@pytest.mark.parametrize("age_h", [12.01, 100])
def test_a_session_expires_12_hours_after_its_login(guarded, age_h):
    log_in(guarded)
    app = guarded.application
    serializer = app.session_interface.get_signing_serializer(app)
    data = serializer.loads(guarded.get_cookie("lyftr_console", path="/ui").value)
    assert guarded.get("/ui").status_code == 200
    data["iat"] = int(time.time() - age_h * 3600)
    guarded.set_cookie("lyftr_console", serializer.dumps(data), path="/ui")
    assert guarded.get("/ui").status_code == 302


def test_a_session_without_issue_time_or_nonce_is_refused(guarded):
    log_in(guarded)
    app = guarded.application
    serializer = app.session_interface.get_signing_serializer(app)
    data = serializer.loads(guarded.get_cookie("lyftr_console", path="/ui").value)
    for missing in ("iat", "nonce"):
        forged = {k: v for k, v in data.items() if k != missing}
        guarded.set_cookie("lyftr_console", serializer.dumps(forged), path="/ui")
        assert guarded.get("/ui").status_code == 302, missing


def test_the_cookie_is_secure_behind_https_and_lives_12_hours(make_app):
    plain = make_app(API_TOKEN=TOKEN).test_client()
    assert "Secure" not in log_in(plain).headers["Set-Cookie"]
    secure = make_app(API_TOKEN=TOKEN, PUBLIC_BASE_URL="https://lyftr.example").test_client()
    cookie = log_in(secure).headers["Set-Cookie"]
    assert "Secure" in cookie and "Expires=" in cookie


@pytest.mark.parametrize(
    "target",
    [
        "/ui\r\nSet-Cookie: x=1",
        "/ui/%0d%0a\nLocation: x",
        "/ui\nx",
        "/uix",
        "/ui/../messages",
        "/ui/%2E%2e/messages",
        "/ui//evil.example",
        "/ui@evil.example",
        "/ui/ messages",
        "javascript:alert(1)",
    ],
)
def test_next_is_a_plain_console_path_or_the_index(guarded, target):
    response = log_in(guarded.application.test_client(), next_path=target)
    assert response.status_code == 302 and response.location == "/ui", target


def test_next_keeps_a_console_path_with_its_query(guarded):
    target = "/ui/senders/%2B919876543210?cursor=abc_-"
    assert log_in(guarded, next_path=target).location == target


def test_a_logout_on_one_worker_is_seen_by_another(make_app):
    first, second = make_app(API_TOKEN=TOKEN).test_client(), make_app(API_TOKEN=TOKEN).test_client()
    log_in(first)
    cookie = first.get_cookie("lyftr_console", path="/ui").value
    second.set_cookie("lyftr_console", cookie, path="/ui")
    assert second.get("/ui").status_code == 200  # one session, valid on both
    page = first.get("/ui")
    assert first.post("/ui/logout", data={"csrf": csrf_of(page)}).status_code == 302
    assert second.get("/ui").status_code == 302


def test_revocations_are_forgotten_once_their_sessions_expire(app):
    with app.app_context():
        store.revoke_session("old", "2000-01-01T00:00:00.000000Z")
        assert store.session_revoked("old")
        store.revoke_session("new", "2100-01-01T00:00:00.000000Z")  # forgets the expired
        assert store.session_revoked("new") and not store.session_revoked("old")
