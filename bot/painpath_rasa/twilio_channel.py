"""PainPath's Twilio SMS input channel for Rasa (credentials.yml names this class).

Unlike Rasa's own Twilio channel it validates `X-Twilio-Signature` (403 and
nothing processed otherwise), refuses bodies over 64 KB without buffering them
(413), bad UTF-8 (400) and a signed request without a well-formed MessageSid
(400), processes a MessageSid only once (a replayed signed request is answered
and ignored; Twilio's retry of a webhook whose turn failed with a 500 runs that turn
again), maps the (To, From) pair to the patient id (the conversation id; a text that
matches several clinics is not guessed: painpath/unrouted.py), answers a
picture without words (PainPath shows no pictures) and makes it a nurse task,
honours STOP/START/HELP before anything else, records every message, and sends
replies with the real `twilio` client off the event loop.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.exc import IntegrityError
from twilio.request_validator import RequestValidator

from painpath import sms
from painpath.inbound import (
    SMS_MAX_CHARS,
    clean_text,
    inbound_already_received,
    neutralise_command,
    parse_form,
    valid_message_sid,
)
from painpath.logsafety import install_phone_redaction
from painpath.phone import InvalidPhone, normalize
from painpath.settings import get_settings

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


async def _read_capped(request: Request) -> bytes | None:
    """The request body, or None as soon as it is known to exceed MAX_BODY_BYTES
    (the route streams, so an oversized body is never buffered whole)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    body = bytearray()
    while True:
        chunk = await request.stream.read()
        if chunk is None:
            return bytes(body)
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None


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
        """Read the settings now, so that a Rasa server whose webhooks could never pass
        their signature check (PUBLIC_BASE_URL unset, …) refuses to start (ConfigError
        names the variable) instead of answering every real SMS with 403."""
        get_settings()
        return cls()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        install_phone_redaction()  # Rasa's logging is configured by now
        hook = Blueprint("painpath_twilio_webhook", __name__)

        @hook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @hook.route("/webhook", methods=["POST"], stream=True)
        async def message(request: Request) -> HTTPResponse:
            body = await _read_capped(request)
            if body is None:
                logger.warning("refused inbound SMS webhook: body over %d bytes", MAX_BODY_BYTES)
                return response.text("payload too large", status=413)
            content_type = (request.headers.get("content-type") or "").split(";")[0].strip()
            if content_type.lower() != "application/x-www-form-urlencoded":
                return response.text("unsupported media type", status=415)
            try:
                form = parse_form(body)
            except ValueError:
                logger.warning("refused inbound SMS webhook: form is not valid UTF-8")
                return response.text("bad request", status=400)
            settings = get_settings()
            signature = request.headers.get("X-Twilio-Signature", "")
            url = settings.public_base_url + "/webhooks/twilio/webhook"
            token = settings.twilio_auth_token
            if not token or not signature or not RequestValidator(token).validate(
                    url, form, signature):
                logger.warning("rejected inbound SMS webhook: bad or missing signature")
                return response.text("forbidden", status=403)
            sid = form.get("MessageSid")
            if not valid_message_sid(sid):
                # replay protection keys on the SID: a message without one is refused
                logger.warning("refused signed inbound SMS webhook: missing or malformed MessageSid")
                return response.text("bad request", status=400)
            sender, text = form.get("From"), form.get("Body")
            if not sender or text is None:
                return response.text(EMPTY_TWIML, content_type="text/xml")
            try:
                sender = normalize(sender)
            except InvalidPhone:
                logger.info("inbound SMS %s from a sender that is not a phone number ignored", sid)
                return response.text(EMPTY_TWIML, content_type="text/xml")
            text = clean_text(text, SMS_MAX_CHARS)
            loop = asyncio.get_running_loop()
            if await loop.run_in_executor(None, inbound_already_received, sid):
                # a replay, or Twilio's retry of a webhook whose turn failed
                routed = await loop.run_in_executor(None, sms.retry_inbound, sid)
                if routed is None:
                    logger.info("replayed inbound SMS %s ignored", sid)
                    return response.text(EMPTY_TWIML, content_type="text/xml")
            else:
                try:
                    media = form.get("NumMedia", "0")
                    routed = await loop.run_in_executor(
                        None, sms.route_inbound, sender, text, sid,
                        int(media) if media.isdigit() and len(media) < 4 else 0,
                        form.get("To"))  # signed: which clinic's number was texted
                except IntegrityError:
                    # the same SID twice at once: the other request recorded (and handles) it
                    if await loop.run_in_executor(None, inbound_already_received, sid):
                        logger.info("concurrent replay of inbound SMS %s ignored", sid)
                        return response.text(EMPTY_TWIML, content_type="text/xml")
                    raise
            forward = neutralise_command(routed.forward_text or "")  # "/…" is not an intent
            if routed.patient_id is not None and forward.strip():
                try:
                    await on_new_message(UserMessage(
                        forward, self.get_output_channel(), routed.patient_id,
                        input_channel=self.name(),
                        metadata={"message_sid": sid, "procedure": routed.procedure,
                                  "glucose_limit_mg_dl": routed.glucose_limit_mg_dl},
                    ))
                except Exception:
                    # 500: Twilio retries (README), and the retry runs the turn again
                    await loop.run_in_executor(None, sms.mark_inbound, sid, "unhandled")
                    raise
                await loop.run_in_executor(None, sms.mark_inbound, sid, "handled")
            return response.text(EMPTY_TWIML, content_type="text/xml")

        return hook

    def get_output_channel(self) -> OutputChannel:
        return PainPathSmsOutput()
