"""PainPath's Twilio SMS input channel for Rasa (credentials.yml names this class).

Unlike Rasa's own Twilio channel it validates `X-Twilio-Signature` (403 and
nothing processed otherwise), maps the phone number to the patient id (the
conversation id), honours STOP/START/HELP before anything else, records every
message, and sends replies with the real `twilio` client off the event loop.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from twilio.request_validator import RequestValidator

from painpath import sms
from painpath.settings import get_settings

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class PainPathSmsOutput(OutputChannel):
    """Sends the bot's replies to the patient's phone through the SMS gateway."""

    @classmethod
    def name(cls) -> Text:
        return "twilio"

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        """`recipient_id` is the patient id (the conversation id)."""
        await asyncio.get_running_loop().run_in_executor(
            None, sms.send_to_patient, recipient_id, text)

    async def send_text_with_buttons(self, recipient_id: Text, text: Text,
                                     buttons: list, **kwargs: Any) -> None:
        titles = " / ".join(b.get("title", "") for b in buttons)
        await self.send_text_message(recipient_id, f"{text} ({titles})" if titles else text)


class TwilioInput(InputChannel):
    """`POST /webhooks/twilio/webhook`: inbound SMS from Twilio."""

    @classmethod
    def name(cls) -> Text:
        return "twilio"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        return cls()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("painpath_twilio_webhook", __name__)

        @hook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @hook.route("/webhook", methods=["POST"])
        async def message(request: Request) -> HTTPResponse:
            if len(request.body or b"") > MAX_BODY_BYTES:
                return response.text("payload too large", status=413)
            settings = get_settings()
            form = {k: request.form.get(k) for k in request.form.keys()}
            signature = request.headers.get("X-Twilio-Signature", "")
            url = settings.public_base_url + "/webhooks/twilio/webhook"
            token = settings.twilio_auth_token
            if not token or not signature or not RequestValidator(token).validate(
                    url, form, signature):
                logger.warning("rejected inbound SMS webhook: bad or missing signature")
                return response.text("forbidden", status=403)
            sender, text = form.get("From"), form.get("Body")
            if not sender or text is None:
                return response.text(EMPTY_TWIML, content_type="text/xml")
            loop = asyncio.get_running_loop()
            routed = await loop.run_in_executor(
                None, sms.route_inbound, sender, text, form.get("MessageSid"))
            if routed.patient_id is not None and routed.forward_text is not None:
                await on_new_message(UserMessage(
                    routed.forward_text, self.get_output_channel(), routed.patient_id,
                    input_channel=self.name(),
                    metadata={"message_sid": form.get("MessageSid"),
                              "procedure": routed.procedure},
                ))
            return response.text(EMPTY_TWIML, content_type="text/xml")

        return hook

    def get_output_channel(self) -> OutputChannel:
        return PainPathSmsOutput()
