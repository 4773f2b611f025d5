"""The web-chat input channel: Rasa's REST channel, but only for the web app.

`POST /webhooks/web/webhook` with `{"sender", "message", "metadata"}` and the
web app's signature over a timestamp, a nonce and the body (painpath/webhook_auth.py);
anything else, a request older than 5 minutes or one seen before, gets 403 and
reaches no conversation. Nonces are kept in Redis when the deployment has it
(REDIS_HOST: every Rasa server sees them), else in memory. A message that starts with "/" is
read as the patient's words, never as an intent (it is triaged like any other).
"""
from __future__ import annotations

import logging
from typing import Optional, Text

from rasa.core.channels.rest import RestInput
from sanic.exceptions import Forbidden
from sanic.request import Request

from painpath.inbound import neutralise_command
from painpath.nonces import nonce_store
from painpath.settings import get_settings
from painpath.webhook_auth import PURPOSE, verify

logger = logging.getLogger(__name__)


class WebChatInput(RestInput):
    def __init__(self) -> None:
        settings = get_settings()
        self.key = settings.key_for(PURPOSE)
        self.nonces = nonce_store(settings)

    @classmethod
    def name(cls) -> Text:
        return "web"

    async def _extract_sender(self, req: Request) -> Optional[Text]:
        refused = verify(req.body or b"", req.headers, self.key, self.nonces)
        if refused:
            logger.warning("rejected web-chat message: %s", refused)
            raise Forbidden("forbidden")
        return await super()._extract_sender(req)

    def _extract_message(self, req: Request) -> Optional[Text]:
        text = super()._extract_message(req)
        return neutralise_command(text) if isinstance(text, str) else text
