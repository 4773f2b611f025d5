"""The direct safety question and its answer: thin translations between the
tracker and `painpath.screening`.

`action_handle_red_flag` records the question and sets `screen_asked`; the rules
(bot/rules/screens.yml) then open `screen_form`, whose one slot, `screen_reply`,
takes the patient's next message whatever its intent. The validator hands it to
`screening.answer`; a new question (the crisis follow-up, or the answer's own
screen) keeps the form open; otherwise `action_screen_done` sets `screen_resume`
to the form that goes on.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import BlockingAction, deliver_alerts, in_thread
from actions.escalation import flag_of
from painpath import screening
from painpath.db import new_session

logger = logging.getLogger(__name__)

NOTHING = "nothing"  # `screen_resume` when no form goes on
RESUMABLE = ("checkin", "exercise")


class ActionAskScreenReply(BlockingAction):
    """Asks the pending question (the screen, or the crisis follow-up)."""

    def name(self) -> Text:
        return "action_ask_screen_reply"

    def run_blocking(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     domain: DomainDict) -> List[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name") or ""
        if intent.startswith("EXTERNAL_"):  # outreach held: the question stands, unrepeated
            return []
        with new_session() as session:
            text = screening.question(session, tracker.sender_id)
        if text:
            dispatcher.utter_message(text=text)
        return []


class ValidateScreenForm(FormValidationAction):
    """Every reply while a question is pending answers it (`screening.answer`)."""

    def name(self) -> Text:
        return "validate_screen_form"

    async def validate_screen_reply(self, slot_value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        return await in_thread(self._answer, slot_value, dispatcher, tracker)

    def _answer(self, slot_value: Any, dispatcher: CollectingDispatcher,
                tracker: Tracker) -> Dict[Text, Any]:
        if slot_value is None:  # the reset when the question was asked
            return {"screen_reply": None}
        with new_session() as session, session.begin():
            turn = screening.answer(session, tracker.sender_id, str(slot_value),
                                    flag_of(tracker))
        for reply in turn.replies:
            dispatcher.utter_message(text=reply)
        if turn.alert_message_ids:
            deliver_alerts(tuple(turn.alert_message_ids))
        if turn.asked:  # the next question is pending: the form asks it
            return {"screen_reply": None}
        slots: Dict[Text, Any] = {"screen_reply": "answered",
                                  "screen_outcome": turn.resume or NOTHING}
        if turn.resume == "exercise":
            slots.update(exercise_session=turn.exercise_session_id, exercise_reply=None)
        return slots


class ActionScreenDone(Action):
    """Once the question is answered: `screen_resume` says which form goes on (the
    rules reopen it) and the question's slots are cleared."""

    def name(self) -> Text:
        return "action_screen_done"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        resume = tracker.get_slot("screen_outcome")
        return [SlotSet("screen_resume", resume if resume in RESUMABLE else NOTHING),
                SlotSet("screen_reply", None), SlotSet("screen_outcome", None),
                SlotSet("screen_asked", None)]


class ActionHoldOutreach(Action):
    """The scheduler's check-in or exercise arrived while a safety question is open:
    the question comes first (the check-in is started again by a later sweep)."""

    def name(self) -> Text:
        return "action_hold_outreach"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        logger.info("outreach held: a safety question is open")
        return []
