"""The web-chat input channel: Rasa's REST channel, but only for the web app.

`POST /webhooks/web/webhook` with `{"sender", "message", "metadata"}` and an
`X-PainPath-Signature` HMAC of the body (painpath/webhook_auth.py); anything
else gets 403 and reaches no conversation. A message that starts with "/" is
read as the patient's words, never as an intent (it is triaged like any other).
"""
from __future__ import annotations

import logging
from typing import Optional, Text

from rasa.core.channels.rest import RestInput
from sanic.exceptions import Forbidden
from sanic.request import Request

from painpath.inbound import neutralise_command
from painpath.webhook_auth import HEADER, verify_body

logger = logging.getLogger(__name__)


class WebChatInput(RestInput):
    @classmethod
    def name(cls) -> Text:
        return "web"

    async def _extract_sender(self, req: Request) -> Optional[Text]:
        if not verify_body(req.body or b"", req.headers.get(HEADER)):
            logger.warning("rejected web-chat message: bad or missing signature")
            raise Forbidden("forbidden")
        return await super()._extract_sender(req)

    def _extract_message(self, req: Request) -> Optional[Text]:
        text = super()._extract_message(req)
        return neutralise_command(text) if isinstance(text, str) else text
