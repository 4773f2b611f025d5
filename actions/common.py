"""Helpers shared by the action modules."""
from __future__ import annotations

import asyncio
import logging

from painpath.messaging import deliver

logger = logging.getLogger(__name__)


def deliver_alerts(message_ids: tuple[int, ...]) -> None:
    """Hand committed alert messages to the SMS gateway (blocking)."""
    for message_id in message_ids:
        try:
            deliver(message_id)
        except Exception:  # the alert row stays queued for the retry sweep
            logger.exception("alert message %s not delivered now", message_id)


async def deliver_alerts_async(message_ids: tuple[int, ...]) -> None:
    """`deliver_alerts` off the event loop."""
    if message_ids:
        await asyncio.get_running_loop().run_in_executor(None, deliver_alerts, message_ids)
