"""Helpers shared by the action modules."""
from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import Any, List, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from painpath.checkins import with_added, with_follow_up
from painpath.messaging import deliver
from painpath.ownership import own_checkin_id, own_exercise_id

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


class BlockingAction(Action, ABC):
    """An action whose work (database, SMS gateway) blocks: `run_blocking` runs on a
    worker thread so the action server's event loop keeps serving other patients."""

    @abstractmethod
    def run_blocking(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     domain: DomainDict) -> List[EventType]:
        """The action's work."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        return await asyncio.to_thread(self.run_blocking, dispatcher, tracker, domain)


def as_id(value: Any) -> Optional[int]:
    """A row id from a slot or entity (None when it is missing or not a number)."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def own_checkin(session: Session, tracker: Tracker) -> Optional[int]:
    """The `checkin_id` slot, only when it is the conversation's patient's check-in."""
    return own_checkin_id(session, as_id(tracker.get_slot("checkin_id")), tracker.sender_id)


def own_exercise(session: Session, tracker: Tracker) -> Optional[int]:
    """The `exercise_session` slot, only when it is the conversation's patient's."""
    return own_exercise_id(session, as_id(tracker.get_slot("exercise_session")),
                           tracker.sender_id)


def in_thread(fn: Any, *args: Any) -> Any:
    """Await `fn(*args)` on a worker thread."""
    return asyncio.to_thread(fn, *args)


def follow_up_events(tracker: Tracker, item: str, follow_up: str) -> List[EventType]:
    """Ask `follow_up` next: clear its slot (a value from an earlier check-in would
    count as answered) and put it after `item` in the form's list of questions."""
    items = with_follow_up(list(tracker.get_slot("checkin_items") or []), item, follow_up)
    return [SlotSet(follow_up, None), SlotSet("checkin_items", items)]


def added_events(tracker: Tracker, added: List[str]) -> List[EventType]:
    """Ask `added` (the ASQ after a positive PHQ-2) next in the form: clear their
    slots and put them after the mood questions in the form's list."""
    items = with_added(list(tracker.get_slot("checkin_items") or []), added)
    return [*(SlotSet(item, None) for item in added), SlotSet("checkin_items", items)]
