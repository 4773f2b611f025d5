"""Rasa survives an action-server restart without dropping the turn.

When Rasa 3.6 cannot reach the action server it logs "Failed to execute custom
action", drops that action's events and carries on: a patient's check-in answer is
never recorded (the form's validation action did not run) and a red flag is never
escalated (`action_handle_red_flag` did not run), while the webhook still answers
200, so nothing retries it. tests/integration/test_faults.py showed both when the
action server was SIGKILLed and restarted.

`install()` makes Rasa's endpoint requests retry a *connection* failure (nothing
was sent, so a retry cannot run an action twice) for up to `CONNECT_RETRY_SECONDS`
(default 20 s, below Twilio's 15 s webhook timeout plus its retry; env
`PAINPATH_ACTION_CONNECT_RETRY_SECONDS`): a restarting action server delays the
turn instead of losing it. Errors after the request was sent are not retried.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Optional, Text

logger = logging.getLogger(__name__)

CONNECT_RETRY_SECONDS = float(os.environ.get("PAINPATH_ACTION_CONNECT_RETRY_SECONDS", "20"))
_installed = False


def install() -> None:
    """Patch `EndpointConfig.request` once per process (idempotent)."""
    global _installed
    if _installed:
        return
    import aiohttp
    from rasa.utils.endpoints import EndpointConfig

    original = EndpointConfig.request

    async def request(self: EndpointConfig, method: Text = "post",
                      subpath: Optional[Text] = None,
                      content_type: Optional[Text] = "application/json",
                      compress: bool = False, **kwargs: Any) -> Optional[Any]:
        deadline = time.monotonic() + CONNECT_RETRY_SECONDS
        delay = 0.2
        while True:
            try:
                return await original(self, method, subpath, content_type, compress, **kwargs)
            except aiohttp.ClientConnectorError as exc:  # never connected: nothing ran
                if time.monotonic() + delay > deadline:
                    raise
                logger.warning("endpoint %s unreachable (%s); retrying in %.1f s",
                               self.url, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    EndpointConfig.request = request  # type: ignore[method-assign]
    _installed = True
