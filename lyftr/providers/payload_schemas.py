"""What Meta and Twilio post, as JSON Schema for the OpenAPI document (components the providers'
operations refer to)."""

from lyftr.api import schemas
from lyftr.api.response_schemas import EXAMPLE_MESSAGE_SID, EXAMPLE_WAMID, schema_ref

# --- Requests of the providers: what Meta and Twilio send (JSON Schema, for the document) -------
# Open objects (Meta and Twilio add fields; the views ignore what they do not read). What the views
# read is described; whatever else a message holds is kept in its record's ``raw``.


def text_object(name, description):
    return {
        "type": "object",
        "description": description,
        "properties": {name: {"type": "string"}},
    }


_WHATSAPP_MESSAGE = {
    "type": "object",
    "description": (
        "One message a user sent. Stored as message_id = id, from = '+' + from (without a phone "
        "number: from_user_id, or the user_id of the change's only contact, as given), to = '+' + "
        "the digits of metadata.display_phone_number, ts = timestamp as UTC "
        "'YYYY-MM-DDTHH:MM:SSZ', and text as a person sees it (see docs/api.md): text.body; a "
        "caption; a reaction's emoji; a reply's title; a button's text; a location's name and "
        "address; contact names; a system body; ... otherwise null. The whole object is in the "
        "record's raw. A message that cannot be stored is quarantined (GET /rejections)."
    ),
    "required": ["id", "timestamp"],
    "properties": {
        "id": {
            "type": "string",
            "minLength": 1,
            "maxLength": schemas.MESSAGE_ID_MAX,
            "example": EXAMPLE_WAMID,
        },
        "from": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The sender's phone number, digits only. Absent for a user known only "
            "by a business-scoped user ID.",
            "example": "16505551234",
        },
        "from_user_id": {
            "type": "string",
            "minLength": 1,
            "description": "The sender's business-scoped user ID: 'from' when there is no phone "
            "number.",
        },
        "timestamp": {
            "type": "string",
            "pattern": "^[0-9]{1,11}$",
            "description": "Unix seconds, as a string.",
            "example": "1749416383",
        },
        "type": {
            "type": "string",
            "description": "text, image, video, document, audio, sticker, reaction, interactive, "
            "button, location, contacts, ...",
            "example": "text",
        },
        "text": text_object("body", "type 'text': the text is body."),
        "image": text_object("caption", "type 'image': the text is the caption, if any."),
        "video": text_object("caption", "type 'video': the text is the caption, if any."),
        "document": text_object("caption", "type 'document': the text is the caption, if any."),
        "reaction": {
            "type": "object",
            "description": "type 'reaction': the text is the emoji.",
            "properties": {"message_id": {"type": "string"}, "emoji": {"type": "string"}},
        },
        "button": text_object("text", "type 'button': the text is text."),
        "interactive": {
            "type": "object",
            "description": "type 'interactive': the text is the title of the reply.",
            "properties": {
                "type": {"type": "string", "example": "button_reply"},
                "button_reply": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "title": {"type": "string"}},
                },
                "list_reply": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "title": {"type": "string"},
                        "description": {"type": "string"},
                    },
                },
            },
        },
    },
}

_WHATSAPP_STATUS = {
    "type": "object",
    "description": "A receipt (sent, delivered, read, failed) of a message the business sent: "
    "counted and logged by id, not stored.",
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "example": "delivered"},
        "timestamp": {"type": "string"},
        "recipient_id": {"type": "string"},
    },
}

_WHATSAPP_VALUE = {
    "type": "object",
    "description": "The value of a 'messages' change. metadata is required there.",
    "required": ["metadata"],
    "properties": {
        "messaging_product": {"type": "string", "example": "whatsapp"},
        "metadata": {
            "type": "object",
            "required": ["display_phone_number"],
            "properties": {
                "display_phone_number": {
                    "type": "string",
                    "pattern": "[0-9]",
                    "description": "The business number the messages were sent to; its digits "
                    "are the stored 'to'.",
                    "example": "15550783881",
                },
                "phone_number_id": {"type": "string", "example": "106540352242922"},
            },
        },
        "contacts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "wa_id": {"type": "string"},
                    "user_id": {"type": "string"},
                    "profile": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
            },
        },
        "messages": {"type": "array", "items": schema_ref("WhatsAppMessage")},
        "statuses": {"type": "array", "items": schema_ref("WhatsAppStatus")},
    },
}

_WHATSAPP_NOTIFICATION = {
    "type": "object",
    "description": (
        "A WhatsApp Cloud API notification (Meta's webhook payload). Every message of every change "
        "whose field is 'messages' becomes a row, all in one transaction; statuses and changes of "
        "other fields are acknowledged, counted and logged (IDs only), not stored."
    ),
    "required": ["object", "entry"],
    "properties": {
        "object": {"type": "string", "example": "whatsapp_business_account"},
        "entry": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "The WhatsApp Business Account ID."},
                    "changes": {
                        "type": "array",
                        "items": {
                            "description": "A change: field 'messages' (messages and statuses), "
                            "or another field the app subscribed to (not read).",
                            "anyOf": [
                                {
                                    "type": "object",
                                    "required": ["field", "value"],
                                    "properties": {
                                        "field": {"type": "string", "enum": ["messages"]},
                                        "value": schema_ref("WhatsAppChangeValue"),
                                    },
                                },
                                {
                                    "type": "object",
                                    "properties": {
                                        "field": {"type": "string", "not": {"enum": ["messages"]}},
                                        "value": {"type": "object"},
                                    },
                                },
                            ],
                        },
                    },
                },
            },
        },
    },
    "example": {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "contacts": [
                                {"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}
                            ],
                            "messages": [
                                {
                                    "from": "16505551234",
                                    "id": EXAMPLE_WAMID,
                                    "timestamp": "1749416383",
                                    "type": "text",
                                    "text": {"body": "Does it come in another color?"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    },
}

_TWILIO_MESSAGE = {
    "type": "object",
    "description": (
        "The form Twilio posts for an incoming SMS or WhatsApp message. Stored as message_id = "
        "MessageSid, from/to = From/To without a 'whatsapp:' prefix, text = Body, ts = the arrival "
        "time (UTC). Every field, these and Twilio's others, is the record's raw."
    ),
    "required": ["MessageSid", "From", "To"],
    "properties": {
        "MessageSid": {
            "type": "string",
            "minLength": 1,
            "maxLength": schemas.MESSAGE_ID_MAX,
            "example": EXAMPLE_MESSAGE_SID,
        },
        "From": {"type": "string", "minLength": 1, "example": "whatsapp:+14155550123"},
        "To": {"type": "string", "minLength": 1, "example": "+14155550100"},
        "Body": {"type": "string", "example": "Hello"},
        "NumMedia": {"type": "string", "description": "'0' or absent: type 'text'; else 'media'."},
        "AccountSid": {"type": "string"},
    },
    "additionalProperties": {"type": "string"},
    "example": {
        "MessageSid": EXAMPLE_MESSAGE_SID,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": "+14155550123",
        "To": "+14155550100",
        "Body": "Hello",
        "NumMedia": "0",
    },
}

WHATSAPP_SCHEMAS = {
    "WhatsAppNotification": _WHATSAPP_NOTIFICATION,
    "WhatsAppChangeValue": _WHATSAPP_VALUE,
    "WhatsAppMessage": _WHATSAPP_MESSAGE,
    "WhatsAppStatus": _WHATSAPP_STATUS,
}
TWILIO_SCHEMAS = {"TwilioMessage": _TWILIO_MESSAGE}
