"""Helpers the tests import: the test secret, sample messages, a signed sender, PostgreSQL setup."""

import json
import os
import uuid

from sqlalchemy.engine import make_url

from lyftr.providers.signing import sign

SECRET = "test-secret"
POSTGRES_URL = os.environ.get("LYFTR_TEST_POSTGRES_URL", "")
NO_POSTGRES = "PostgreSQL tier: set LYFTR_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"


def postgres_admin():
    """A psycopg connection (autocommit) to the test server's database, for setup and checks."""
    import psycopg

    url = make_url(POSTGRES_URL).set(drivername="postgresql")
    return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)


class PostgresSchema:
    """A fresh schema for one test; the URL given to the app puts it first on the search_path.
    ``application_name`` marks the test's connections, so teardown can end any left open."""

    def __init__(self):
        self.name = f"lyftr_test_{uuid.uuid4().hex[:12]}"
        self.url = (
            make_url(POSTGRES_URL)
            .update_query_dict(
                {
                    "options": f"-csearch_path={self.name},public",
                    "application_name": self.name,
                }
            )
            .render_as_string(hide_password=False)
        )

    def __enter__(self):
        with postgres_admin() as connection:
            # pg_trgm once per database, in public: a per-test schema would take it along when
            # dropped.
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
            connection.execute(f'CREATE SCHEMA "{self.name}"')
        return self

    def __exit__(self, *exc):
        with postgres_admin() as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (self.name,),
            )
            connection.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')


def sample_message(**overrides):
    message = {
        "message_id": "m1",
        "from": "+919876543210",
        "to": "+14155550100",
        "ts": "2025-01-15T10:00:00Z",
        "text": "Hello",
    }
    message.update(overrides)
    return message


class Sender:
    """Posts to /webhook the way the provider does: raw bytes, signed with the secret."""

    def __init__(self, client, secret=SECRET):
        self.client = client
        self.secret = secret

    def raw(self, body, signature=None, **headers):
        if isinstance(body, str):
            body = body.encode("utf-8")
        if signature is None:
            signature = sign(self.secret, body)
        return self.client.post(
            "/webhook", data=body, headers={"X-Signature": signature, **headers}
        )

    def __call__(self, message=None, **overrides):
        body = json.dumps(message if message is not None else sample_message(**overrides))
        return self.raw(body)


def stored_total(client):
    """How many messages the service holds, asked both ways the contract offers."""
    listed = client.get("/messages").get_json()["total"]
    counted = client.get("/stats").get_json()["total_messages"]
    assert listed == counted
    return listed


def assert_nothing_stored(client):
    assert stored_total(client) == 0
    assert client.get("/stats").get_json()["senders_count"] == 0


def metric(client, name, **labels):
    """The value of one sample scraped from /metrics (0.0 when the series does not exist yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


# --- providers: WhatsApp Cloud API, Twilio, Standard Webhooks ------------------------------------
# Requests are signed as the providers sign them: Twilio's and Standard Webhooks' own libraries, and
# for Meta (which publishes no library) the HMAC its documentation describes, written out here.

WHATSAPP_APP_SECRET = "whatsapp-app-secret"
WHATSAPP_VERIFY_TOKEN = "whatsapp-verify-token"
TWILIO_AUTH_TOKEN = "twilio-auth-token"
PUBLIC_BASE_URL = "https://lyftr.example.com"
# "whsec_" and the base64 of 24 random bytes, as Svix and the Standard Webhooks libraries make them.
STANDARD_WEBHOOKS_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PROVIDER_SETTINGS = {
    "WHATSAPP_APP_SECRET": WHATSAPP_APP_SECRET,
    "WHATSAPP_APP_SECRET_PREVIOUS": "",
    "WHATSAPP_VERIFY_TOKEN": WHATSAPP_VERIFY_TOKEN,
    "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    "STANDARD_WEBHOOKS_SECRET": STANDARD_WEBHOOKS_SECRET,
}

# Values from Meta's messages webhook reference.
BUSINESS_NUMBER = "15550783881"
BUSINESS_PHONE_NUMBER_ID = "106540352242922"
WHATSAPP_ACCOUNT_ID = "102290129340398"
WHATSAPP_USER = "16505551234"
WHATSAPP_TS = "1739321024"  # 2025-02-12T00:43:44Z
WHATSAPP_TS_ISO = "2025-02-12T00:43:44Z"


def whatsapp_signature(body, secret=WHATSAPP_APP_SECRET):
    """``X-Hub-Signature-256`` as Meta sends it: ``sha256=`` and the hex HMAC-SHA256 of the raw
    body, keyed with the app secret."""
    import hashlib
    import hmac

    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def wa_message(message_id, kind="text", *, sender=WHATSAPP_USER, timestamp=WHATSAPP_TS, **content):
    """One object of ``value.messages[]``; ``content`` is the type's own object (``text={...}``).
    ``sender=None`` leaves out ``from`` (a user known only by a business-scoped user ID)."""
    message = {"from": sender, "id": message_id, "timestamp": timestamp, "type": kind, **content}
    if sender is None:
        del message["from"]
    return message


def wa_text(message_id, body="Hello", **options):
    return wa_message(message_id, "text", text={"body": body}, **options)


def wa_status(message_id, status="delivered", recipient=WHATSAPP_USER):
    """One object of ``value.statuses[]``: a receipt for a message the business sent."""
    return {
        "id": message_id,
        "status": status,
        "timestamp": WHATSAPP_TS,
        "recipient_id": recipient,
        "pricing": {"billable": True, "pricing_model": "PMP", "category": "service"},
    }


def wa_change(messages=(), statuses=(), *, number=BUSINESS_NUMBER, contacts=None, field="messages"):
    """One ``entry[].changes[]`` item of the ``messages`` field."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": number, "phone_number_id": BUSINESS_PHONE_NUMBER_ID},
    }
    if contacts is None and messages:
        wa_id = messages[0].get("from", WHATSAPP_USER)
        contacts = [{"profile": {"name": "Sheena Nelson"}, "wa_id": wa_id}]
    if contacts is not None:
        value["contacts"] = contacts
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {"value": value, "field": field}


def wa_entry(*changes, account=WHATSAPP_ACCOUNT_ID):
    return {"id": account, "changes": list(changes)}


def wa_notification(*changes, entries=None):
    """A whole POST body: one entry holding ``changes``, or the ``entries`` given."""
    return {
        "object": "whatsapp_business_account",
        "entry": list(entries) if entries is not None else [wa_entry(*changes)],
    }


def wa_body(payload):
    """The payload as Meta writes it: JSON with non-ASCII escaped as \\uXXXX."""
    return json.dumps(payload, ensure_ascii=True).encode("ascii")


class WhatsAppSender:
    """Posts notifications to /webhooks/whatsapp signed with the app secret, as Meta does."""

    def __init__(self, client, secret=WHATSAPP_APP_SECRET):
        self.client = client
        self.secret = secret

    def raw(self, body, signature=None, **headers):
        """``signature=False`` sends no signature header."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if signature is None:
            signature = whatsapp_signature(body, self.secret)
        if signature is not False:
            headers["X-Hub-Signature-256"] = signature
        return self.client.post(
            "/webhooks/whatsapp",
            data=body,
            headers={"Content-Type": "application/json", **headers},
        )

    def __call__(self, payload):
        return self.raw(wa_body(payload))

    def messages(self, *messages, **change_options):
        """One notification holding ``messages`` in one change."""
        return self(wa_notification(wa_change(messages, **change_options)))


def twilio_form(message_sid="SM0123456789abcdef0123456789abcdef", **overrides):
    """The fields Twilio posts for an incoming SMS (empty ones included, as Twilio sends them)."""
    form = {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": message_sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": message_sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": "Hello from Twilio",
        "FromCountry": "IN",
        "To": "+14155550100",
        "MessagingServiceSid": "MG0123456789abcdef0123456789abcdef",
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": message_sid,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": "+919876543210",
        "ApiVersion": "2010-04-01",
    }
    form.update(overrides)
    return form


class TwilioSender:
    """Posts forms to /webhooks/twilio signed by the twilio package's RequestValidator for the URL
    Twilio would have called: ``base_url`` + path + query string."""

    def __init__(self, client, token=TWILIO_AUTH_TOKEN, base_url=PUBLIC_BASE_URL):
        self.client = client
        self.token = token
        self.base_url = base_url

    def __call__(self, form=None, *, query="", signed_url=None, signature=None, **fields):
        """``signed_url`` overrides the URL signed; ``signature=False`` sends no signature."""
        from twilio.request_validator import RequestValidator

        if form is None:
            form = twilio_form(**fields)
        path = "/webhooks/twilio" + (f"?{query}" if query else "")
        if signature is None:
            url = signed_url if signed_url is not None else self.base_url + path
            signature = RequestValidator(self.token).compute_signature(url, form)
        headers = {} if signature is False else {"X-Twilio-Signature": signature}
        return self.client.post(path, data=form, headers=headers)


def standard_webhooks_headers(
    body, *, secret=STANDARD_WEBHOOKS_SECRET, msg_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", at=None
):
    """The headers a Standard Webhooks sender (the ``standardwebhooks`` library) puts on ``body``,
    signed at ``at`` (an aware datetime; default now)."""
    from datetime import UTC, datetime

    from standardwebhooks.webhooks import Webhook

    at = at or datetime.now(UTC)
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


def message_record(client, message_id, **kwargs):
    """GET /messages/<message_id>, the ID percent-encoded as a client would."""
    from urllib.parse import quote

    return client.get("/messages/" + quote(message_id, safe=""), **kwargs)


def stored_row(message_id, **overrides):
    """A message as storage takes it (``schemas.WebhookMessageSchema``'s output), from
    ``sample_message``; ``overrides`` set other columns (provider, type, raw...)."""
    message = sample_message(message_id=message_id)
    return {
        "message_id": message_id,
        "from_msisdn": message["from"],
        "to_msisdn": message["to"],
        "ts": message["ts"],
        "ts_key": "2025-01-15T10:00:00.",
        "text": message["text"],
        **overrides,
    }
