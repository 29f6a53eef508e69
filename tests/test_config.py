"""Secrets at start: refused when empty after decoding, warned about when weak on a public bind;
API_TOKEN alone starts (the console derives its key)."""

import logging

import pytest
from helpers import SECRET

from lyftr import config, create_app

STRONG = "s" * 32
PUBLIC = ["0.0.0.0:8000"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STANDARD_WEBHOOKS_SECRET", "whsec_"),
        ("STANDARD_WEBHOOKS_SECRET", "whsec_="),
        ("STANDARD_WEBHOOKS_SECRET", "whsec_not base64!"),
        ("WEBHOOK_SECRET", "   "),
        ("API_TOKEN", " "),
        ("SECRET_KEY", "\t"),
        ("WHATSAPP_APP_SECRET", " "),
        ("TWILIO_AUTH_TOKEN", "  "),
    ],
)
def test_a_secret_set_but_empty_is_refused_naming_it(database_url, name, value):
    with pytest.raises(ValueError, match=name):
        create_app({"WEBHOOK_SECRET": SECRET, "DATABASE_URL": database_url, name: value})


def test_unset_secrets_still_start(database_url):
    app = create_app({"WEBHOOK_SECRET": "", "DATABASE_URL": database_url})
    assert app.test_client().get("/health/live").status_code == 200


def test_api_token_alone_starts_and_the_console_logs_in(database_url):
    app = create_app(
        {"WEBHOOK_SECRET": SECRET, "DATABASE_URL": database_url, "API_TOKEN": "t" * 32}
    )
    assert app.config["SECRET_KEY"]  # derived from the token
    client = app.test_client()
    assert (
        client.get("/messages", headers={"Authorization": "Bearer " + "t" * 32}).status_code == 200
    )
    form = client.get("/ui/login").get_data(as_text=True)
    csrf = form.split('name="csrf" value="')[1].split('"')[0]
    response = client.post("/ui/login", data={"token": "t" * 32, "csrf": csrf})
    assert response.status_code == 302 and client.get("/ui").status_code == 200


def test_weak_secrets_on_a_public_bind_are_named():
    settings = config.from_env(
        {
            "WEBHOOK_SECRET": "testsecret",
            "API_TOKEN": "a",
            "SECRET_KEY": STRONG,
            "STANDARD_WEBHOOKS_SECRET": "whsec_" + "QUFBQUFB",  # 6 bytes
            "WHATSAPP_APP_SECRET": STRONG,
        }
    )
    warnings = config.start_warnings(settings, PUBLIC)
    named = sorted(w.split()[0] for w in warnings)
    assert named == ["API_TOKEN", "STANDARD_WEBHOOKS_SECRET", "WEBHOOK_SECRET"]
    assert "well-known" in next(w for w in warnings if w.startswith("WEBHOOK_SECRET"))
    assert "0.0.0.0:8000" in warnings[0] and "testsecret" not in " ".join(warnings)


def test_open_reads_on_a_public_bind_are_warned_about():
    warnings = config.start_warnings(config.from_env({"WEBHOOK_SECRET": STRONG}), PUBLIC)
    assert len(warnings) == 1 and warnings[0].startswith("API_TOKEN is not set")


@pytest.mark.parametrize("bind", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "unix:/s"])
def test_nothing_is_warned_about_on_a_loopback_bind(bind):
    settings = config.from_env({"WEBHOOK_SECRET": "testsecret", "API_TOKEN": "a"})
    assert config.start_warnings(settings, [bind]) == []


def test_strong_settings_start_without_a_warning():
    settings = config.from_env({"WEBHOOK_SECRET": STRONG, "API_TOKEN": STRONG})
    assert config.start_warnings(settings, PUBLIC + ["[::]:8000"]) == []


def test_check_at_start_logs_and_refuses(caplog):
    caplog.set_level(logging.WARNING, logger="lyftr.startup")
    assert config.check_at_start(PUBLIC, {"WEBHOOK_SECRET": "testsecret"}) is True
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    caplog.clear()
    assert config.check_at_start(PUBLIC, {"STANDARD_WEBHOOKS_SECRET": "whsec_"}) is False
    assert caplog.records[0].levelname == "ERROR"
    assert "STANDARD_WEBHOOKS_SECRET" in caplog.records[0].getMessage()


def test_a_key_given_as_bytes_is_checked_as_bytes(database_url):
    create_app({"DATABASE_URL": database_url, "SECRET_KEY": b"k" * 32})
    with pytest.raises(ValueError, match="SECRET_KEY"):
        create_app({"DATABASE_URL": database_url, "SECRET_KEY": b"  "})
