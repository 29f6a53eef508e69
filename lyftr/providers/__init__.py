"""The senders: one module per provider, each a blueprint that verifies, reads and stores.

``webhook`` is the contract's own ``POST /webhook`` (its HMAC, or Standard Webhooks' signature);
``whatsapp`` is Meta's WhatsApp Cloud API and ``twilio`` Twilio's Messaging webhook. A new provider
is a module here with a blueprint ``bp`` and one line in ``PROVIDERS``. ``signing`` and ``inbound``
are what they share: signature checks, and reading a bounded body as strict JSON.
"""

from lyftr.providers import twilio, webhook, whatsapp

PROVIDERS = (webhook, whatsapp, twilio)


def init_app(app):
    for provider in PROVIDERS:
        app.register_blueprint(provider.bp)
