"""Check-in actions: thin translations between the tracker and `painpath.checkins`.

The form `checkin_form` asks the items of the current check-in (slot
`checkin_items`, set when the check-in starts); every question id is a slot of
the same name and has an `action_ask_<item>` action (bot/domain/checkin_items.yml).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (BlockingAction, added_events, as_id, deliver_alerts,
                            follow_up_events, in_thread, own_checkin)
from painpath import checkins, programs, screening
from painpath.content import get_content, message
from painpath.db import new_session
from painpath.models import CheckIn, Patient

logger = logging.getLogger(__name__)

FORM = "checkin_form"


def _item_resets(items: List[str]) -> List[EventType]:
    """Clear this check-in's answer slots (a value left from an earlier check-in
    would count as answered); other items are not asked, so they stay as they are."""
    return [SlotSet(item, None) for item in items]


def _checkin_entity(tracker: Tracker) -> Optional[int]:
    return as_id(next(tracker.get_latest_entity_values("checkin_id"), None))


class ActionStartCheckin(BlockingAction):
    """Start (or resume) the patient's check-in; sets `checkin_ready`."""

    def name(self) -> Text:
        return "action_start_checkin"

    def run_blocking(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        patient_id = tracker.sender_id
        wanted = _checkin_entity(tracker)
        with new_session() as session, session.begin():
            checkin = session.get(CheckIn, wanted) if wanted else None
            if checkin is not None and (checkin.patient_id != patient_id
                                        or checkin.status in ("completed", "cancelled")):
                checkin = None
            checkin = checkin or checkins.next_checkin(session, patient_id)
            if checkin is None or session.get(Patient, patient_id) is None:
                dispatcher.utter_message(text=message("checkin_none_due"))
                return [SlotSet("checkin_ready", False)]
            intro, items = checkins.begin(session, checkin)
            checkin_id = checkin.id
        dispatcher.utter_message(text=intro)
        return [*_item_resets(items), SlotSet("checkin_id", checkin_id),
                SlotSet("checkin_items", items), SlotSet("checkin_reask", False),
                SlotSet("checkin_stopped", False), SlotSet("checkin_ready", True)]


class ValidateCheckinForm(FormValidationAction):
    """Every answer goes through `painpath.checkins.submit`, which parses and stores it."""

    def name(self) -> Text:
        return "validate_checkin_form"

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        return list(tracker.get_slot("checkin_items") or [])

    async def get_extraction_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> List[EventType]:
        return []  # answers are extracted by the domain's from_text mappings

    async def get_validation_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> List[EventType]:
        return await in_thread(self._validate, dispatcher, tracker)

    def _validate(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> List[EventType]:
        """Store and judge each answer (database work: runs on a worker thread). Only
        into the conversation's own patient's check-in: another id is ignored."""
        patient_id = tracker.sender_id
        with new_session() as session:
            checkin_id = own_checkin(session, tracker)
        items = set(tracker.get_slot("checkin_items") or [])
        events: List[EventType] = []
        for item, text in tracker.slots_to_validate().items():
            if item not in items or checkin_id is None or text is None:
                continue  # None: the reset at the start, seen again at form activation
            with new_session() as session, session.begin():
                done, value = checkins.final_answer(session, checkin_id, item,
                                                    patient_id=patient_id)
                outcome = None if done else checkins.submit(session, checkin_id, item,
                                                            str(text), patient_id=patient_id)
                # a yes to ASQ items 1-4: ASQ item 5 next, through the screening path
                screened = outcome is not None and screening.ask_after_answer(
                    session, patient_id, checkin_id, outcome) is not None
            if outcome is None:  # answered already (e.g. by a red-flag message)
                events += [SlotSet(item, value), SlotSet("checkin_reask", False)]
                continue
            alerts = outcome.raised.alert_message_ids if outcome.raised else ()
            for reply in outcome.replies:
                dispatcher.utter_message(text=reply)
            if alerts:
                deliver_alerts(alerts)
            if outcome.status == "reask":
                events += [SlotSet(item, None), SlotSet("checkin_reask", True)]
            else:
                events += [SlotSet(item, outcome.value), SlotSet("checkin_reask", False)]
            if outcome.follow_up and not outcome.stop_checkin:
                events += follow_up_events(tracker, item, outcome.follow_up)
            if outcome.added:
                events += added_events(tracker, outcome.added)
            if outcome.stop_checkin or screened:  # screen_form asks the screen next
                events += [SlotSet("checkin_stopped", True), SlotSet("requested_slot", None)]
            if screened:
                events += [SlotSet("screen_asked", True), SlotSet("screen_reply", None)]
            tracker.slots.update({e["name"]: e["value"] for e in events})
        return events

    async def next_requested_slot(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                  domain: DomainDict) -> Optional[EventType]:
        if tracker.get_slot("checkin_stopped"):
            return SlotSet("requested_slot", None)
        return await super().next_requested_slot(dispatcher, tracker, domain)


class AskCheckinItem(BlockingAction):
    """Asks one check-in question (or its short re-ask after an unusable answer)."""

    item: str = ""

    def name(self) -> Text:
        return f"action_ask_{self.item}"

    def run_blocking(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     domain: DomainDict) -> List[EventType]:
        with new_session() as session:
            text = checkins.ask_text(session, own_checkin(session, tracker), self.item,
                                     reask=bool(tracker.get_slot("checkin_reask")),
                                     patient_id=tracker.sender_id,
                                     channel=tracker.get_latest_input_channel())
        dispatcher.utter_message(text=text)
        return [SlotSet("checkin_reask", False)]


# One ask action per question in questions.yaml (names listed in the generated domain).
ASK_ACTIONS: Dict[str, Any] = {
    item: type(f"ActionAsk_{item}", (AskCheckinItem,), {"item": item})
    for item in get_content().questions
}


class ActionFinishCheckin(BlockingAction):
    """Completes the check-in and sends the personal summary."""

    def name(self) -> Text:
        return "action_finish_checkin"

    def run_blocking(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        with new_session() as session, session.begin():
            checkin_id = own_checkin(session, tracker)
            offer = None
            screen_pending = screening.pending(session, tracker.sender_id) is not None
            if checkin_id is not None and not tracker.get_slot("checkin_stopped"):
                dispatcher.utter_message(text=checkins.finish(session, checkin_id,
                                                              patient_id=tracker.sender_id))
                offer = programs.offer_after_checkin(session, session.get(CheckIn, checkin_id))
        if offer:  # an exercise the answers point to (the patient replies YES)
            dispatcher.utter_message(text=offer)
        events: List[EventType] = [SlotSet("checkin_id", None), SlotSet("checkin_items", None),
                                   SlotSet("checkin_ready", None), SlotSet("checkin_stopped", False)]
        if screen_pending:  # ASQ item 5 after a check-in answer: the screen form asks it
            events.append(FollowupAction("screen_form"))
        return events


class ActionPauseCheckin(BlockingAction):
    """Pauses the check-in; the patient resumes with CHECKIN/RESUME."""

    def name(self) -> Text:
        return "action_pause_checkin"

    def run_blocking(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        with new_session() as session, session.begin():
            checkin_id = own_checkin(session, tracker)
            text = checkins.pause(session, checkin_id, patient_id=tracker.sender_id) \
                if checkin_id is not None else message("checkin_paused")
        dispatcher.utter_message(text=text)
        return [ActiveLoop(None), SlotSet("requested_slot", None)]


class ActionHelp(BlockingAction):
    """The clinic's name and number, and the emergency and crisis lines."""

    def name(self) -> Text:
        return "action_help"

    def run_blocking(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        with new_session() as session:
            patient = session.get(Patient, tracker.sender_id)
            clinic = patient.clinic if patient else None
            text = message(
                "help_text", clinic=clinic.name if clinic else "Your clinic",
                clinic_phone=(clinic.phone if clinic and clinic.phone else "your clinic"),
                emergency_number=(clinic.emergency_number if clinic else "911"))
        dispatcher.utter_message(text=text)
        return []
