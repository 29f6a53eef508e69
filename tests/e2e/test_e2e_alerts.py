"""Every metric, label and label value that deploy/prometheus/alerts.yml and the Grafana dashboard
name is one the real server exports, read from its /metrics after traffic of every kind: a renamed
metric or label cannot silently leave an alert that never fires or a panel that stays empty."""

import json
from urllib.parse import urlencode

import pytest
from helpers import (
    PUBLIC_BASE_URL,
    TWILIO_AUTH_TOKEN,
    WHATSAPP_APP_SECRET,
    WHATSAPP_VERIFY_TOKEN,
    twilio_form,
    wa_body,
    wa_change,
    wa_notification,
    wa_status,
    wa_text,
    whatsapp_signature,
)
from test_alerts import ALERTS, DASHBOARD, deploy_problems, exported_series
from twilio.request_validator import RequestValidator

from .server import message, parse_metrics, value

pytestmark = pytest.mark.e2e

PROVIDER_ENV = {
    "WHATSAPP_APP_SECRET": WHATSAPP_APP_SECRET,
    "WHATSAPP_VERIFY_TOKEN": WHATSAPP_VERIFY_TOKEN,
    "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
}


def drive_traffic(server):
    """One request of each kind the rules and panels look at; returns nothing, asserts statuses."""
    first = message()
    assert server.post_webhook(first).status == 200  # created
    assert server.post_webhook(first).status == 200  # duplicate
    assert server.post_webhook(message(), signature="0" * 64).status == 401
    assert server.post_webhook({"message_id": "no-sender"}).status == 422
    assert server.get("/no-such-page").status == 404
    assert server.get("/health/live").status == 200
    assert server.get("/health/ready").status == 200
    assert server.get("/messages").status == 200
    assert server.get("/stats").status == 200

    handshake = {
        "hub.mode": "subscribe",
        "hub.verify_token": WHATSAPP_VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    assert server.get("/webhooks/whatsapp?" + urlencode(handshake)).status == 200
    body = wa_body(wa_notification(wa_change([wa_text("wamid.alerts.1")], [wa_status("wamid.o")])))
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": whatsapp_signature(body)}
    assert server.request("POST", "/webhooks/whatsapp", body=body, headers=headers).status == 200
    headers["X-Hub-Signature-256"] = whatsapp_signature(body, "an-old-secret")
    assert server.request("POST", "/webhooks/whatsapp", body=body, headers=headers).status == 401

    form = twilio_form(Body="Hola")
    signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(
        PUBLIC_BASE_URL + "/webhooks/twilio", form
    )
    response = server.request(
        "POST",
        "/webhooks/twilio",
        body=urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    assert response.status == 200


def test_alerts_and_dashboard_name_only_what_lyftr_exports(start_server, tmp_path):
    server = start_server(workers=2, env=PROVIDER_ENV)
    drive_traffic(server)
    samples = parse_metrics(server.metrics())

    # The traffic arrived (so the names below come from a server that counted it).
    assert value(samples, "webhook_requests_total", result="created") == 1
    assert value(samples, "webhook_requests_total", result="duplicate") == 1
    assert value(samples, "webhook_requests_total", result="invalid_signature") == 1
    assert value(samples, "messages_stored_total", provider="whatsapp") == 1
    assert value(samples, "messages_stored_total", provider="twilio") == 1
    assert value(samples, "provider_requests_total", provider="whatsapp", result="verified") == 1
    ready = {"method": "GET", "path": "/health/ready", "status": "200"}
    assert value(samples, "http_requests_total", **ready) == 1

    exported = exported_series(samples)
    assert deploy_problems(exported) == []

    # The check can fail: a misspelled metric in the rules, a renamed label and a histogram named
    # without its suffix in the dashboard are each reported.
    alerts = tmp_path / "alerts.yml"
    text = ALERTS.read_text(encoding="utf-8")
    assert "messages_stored_total{" in text
    alerts.write_text(text.replace("messages_stored_total{", "messages_saved_total{"), "utf-8")
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            target["expr"] = (
                target["expr"]
                .replace("request_latency_ms_bucket", "request_latency_ms")
                .replace("by (path, status)", "by (route, status)")
            )
    broken_dashboard = tmp_path / "lyftr.json"
    broken_dashboard.write_text(json.dumps(dashboard), "utf-8")
    found = deploy_problems(exported, alerts=alerts, dashboard=broken_dashboard)
    assert "alert LyftrIngestStopped: lyftr exports no metric 'messages_saved_total'" in found
    assert (
        "panel 'Latency percentiles' target A: lyftr exports no metric 'request_latency_ms'"
        in found
    )
    assert (
        "panel 'Requests by route and status' target A: no metric it selects has the label "
        "'route' it groups by" in found
    )
