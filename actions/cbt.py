"""Self-management exercise actions (CBT modules and activity pacing): thin
translations between the tracker and `painpath.programs`.

`exercise_form` has one slot, `exercise_reply`, filled from every reply; the
validator hands it to `programs.advance` and keeps the form open until the
exercise is over. What to ask next is `programs.prompt`.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import BlockingAction, as_id, deliver_alerts, in_thread, own_exercise
from painpath import programs
from painpath.db import new_session
from painpath.models import ExerciseSession, Patient
from painpath.parsing import parse_yes_no

logger = logging.getLogger(__name__)

FORM = "exercise_form"
OPEN_FORMS = (FORM, "checkin_form")


def _session_entity(tracker: Tracker) -> Optional[int]:
    return as_id(next(tracker.get_latest_entity_values("exercise_session"), None))


class ActionStartExercise(BlockingAction):
    """Start the exercise the patient asked for, resume a paused one, accept an
    offer (YES), or start a session the scheduler made due; sets `exercise_ready`."""

    def name(self) -> Text:
        return "action_start_exercise"

    def run_blocking(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     domain: DomainDict) -> List[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        patient_id = tracker.sender_id
        events: List[EventType] = []
        response = None
        if (tracker.active_loop or {}).get("name") in OPEN_FORMS:
            events += [ActiveLoop(None), SlotSet("requested_slot", None)]
        with new_session() as session, session.begin():
            if session.get(Patient, patient_id) is None:
                row, text = None, programs.say("nothing_to_resume")
            elif intent == "EXTERNAL_start_exercise":
                row = session.get(ExerciseSession, _session_entity(tracker) or -1)
                if row is not None and (row.patient_id != patient_id or row.status != "active"):
                    row = None
                if row is not None:
                    programs.pause_active_except(session, patient_id, row.id)
                    programs.activate(row)
                text = None
            elif intent == "resume_exercise":
                row = programs.resume(session, patient_id)
                text = None if row else programs.say("nothing_to_resume")
            elif intent in ("affirm", "inform"):
                # YES to an offer starts it; NO declines it; anything else outside a
                # form is a stray answer
                answer = True if intent == "affirm" else parse_yes_no(
                    tracker.latest_message.get("text") or "")
                row = programs.accept_offer(session, patient_id) if answer is True else None
                if row is not None:
                    text = None
                elif answer is False and programs.decline_offer(session, patient_id):
                    text = programs.say("offer_declined")
                elif intent == "affirm":
                    text = programs.say("nothing_offered")
                else:
                    text, response = None, "utter_not_in_checkin"
            else:
                exercise = programs.get_programs().requests.get(intent or "")
                row = programs.start(session, patient_id, exercise) if exercise else None
                text = None if row else programs.say("menu")
            session_id = row.id if row is not None else None
        if text:
            dispatcher.utter_message(text=text)
        if response:
            dispatcher.utter_message(response=response)
        if session_id is None:
            return events + [SlotSet("exercise_ready", False)]
        return events + [SlotSet("exercise_session", session_id), SlotSet("exercise_reply", None),
                         SlotSet("exercise_ready", True)]


class ValidateExerciseForm(FormValidationAction):
    """Each reply goes to `painpath.programs.advance`."""

    def name(self) -> Text:
        return "validate_exercise_form"

    async def validate_exercise_reply(self, slot_value: Any, dispatcher: CollectingDispatcher,
                                      tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        return await in_thread(self._advance, slot_value, dispatcher, tracker)

    def _advance(self, slot_value: Any, dispatcher: CollectingDispatcher,
                 tracker: Tracker) -> Dict[Text, Any]:
        with new_session() as session, session.begin():
            session_id = own_exercise(session, tracker)  # another patient's: ignored
            if session_id is None:
                return {"exercise_reply": "done"}
            if slot_value is None:  # the reset at the start, validated at form activation
                return {"exercise_reply": None}
            turn = programs.advance(session, session_id, str(slot_value or ""),
                                    patient_id=tracker.sender_id)
        for reply in turn.replies:
            dispatcher.utter_message(text=reply)
        if turn.alert_message_ids:
            deliver_alerts(turn.alert_message_ids)
        if turn.done and not turn.replies:  # paused elsewhere (STOP, another exercise)
            dispatcher.utter_message(text=programs.say("exit_later"))
        return {"exercise_reply": "done" if turn.done else None}


class ActionAskExerciseReply(BlockingAction):
    """Asks the exercise's current step (or its re-ask)."""

    def name(self) -> Text:
        return "action_ask_exercise_reply"

    def run_blocking(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     domain: DomainDict) -> List[EventType]:
        with new_session() as session, session.begin():
            session_id = own_exercise(session, tracker)
            row = session.get(ExerciseSession, session_id) if session_id is not None else None
            if row is None or row.status != "active":
                dispatcher.utter_message(text=programs.say("nothing_to_resume"))
                return [ActiveLoop(None), SlotSet("requested_slot", None)]
            dispatcher.utter_message(text=programs.prompt(row))
        return []


class ActionExerciseDone(Action):
    """Clears the exercise's slots once it is over."""

    def name(self) -> Text:
        return "action_exercise_done"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        return [SlotSet("exercise_session", None), SlotSet("exercise_reply", None),
                SlotSet("exercise_ready", None)]


class ActionPauseExercise(BlockingAction):
    """Pauses the exercise in progress (a due check-in comes first)."""

    def name(self) -> Text:
        return "action_pause_exercise"

    def run_blocking(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     domain: DomainDict) -> List[EventType]:
        with new_session() as session, session.begin():
            programs.pause_active(session, tracker.sender_id)
        return [ActiveLoop(None), SlotSet("requested_slot", None),
                SlotSet("exercise_session", None), SlotSet("exercise_reply", None)]


class ActionDeclineOffer(BlockingAction):
    """NO to an offered exercise; otherwise a plain goodbye."""

    def name(self) -> Text:
        return "action_decline_offer"

    def run_blocking(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                     domain: DomainDict) -> List[EventType]:
        with new_session() as session, session.begin():
            declined = programs.decline_offer(session, tracker.sender_id)
        if declined:
            dispatcher.utter_message(text=programs.say("offer_declined"))
        else:
            dispatcher.utter_message(response="utter_goodbye")
        return []


class ActionListExercises(Action):
    """The menu of exercises."""

    def name(self) -> Text:
        return "action_list_exercises"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        dispatcher.utter_message(text=programs.say("menu"))
        return []
