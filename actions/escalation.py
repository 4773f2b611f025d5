"""Red flags in the patient's own words: the reply, the escalation, the alert."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.common import (added_events, deliver_alerts_async, follow_up_events, in_thread,
                            own_checkin)
from painpath import checkins, programs, screening
from painpath.db import new_session
from painpath.escalation import handle_red_flag
from painpath.models import CheckIn
from painpath.screening import Flag
from painpath.triage import tier_rank

logger = logging.getLogger(__name__)

FORM = "checkin_form"
EXERCISE_FORM = "exercise_form"


def _asked_for(tracker: Tracker) -> str | None:
    """The intent the message had before the red-flag classifier overrode it."""
    ranking = tracker.latest_message.get("intent_ranking") or []
    top = next((r for r in ranking if r.get("name") != "red_flag"), None)
    return top["name"] if top and float(top.get("confidence") or 0) >= 0.5 else None


def flag_of(tracker: Tracker) -> Flag | None:
    """What the red-flag NLU component found in the latest message (None: no flag)."""
    if (tracker.latest_message.get("intent") or {}).get("name") != "red_flag":
        return None
    entities = tracker.latest_message.get("entities") or []
    return Flag(
        tier=next((e["value"] for e in entities if e.get("entity") == "red_flag_tier"), "urgent"),
        reasons=[e["value"] for e in entities if e.get("entity") == "red_flag_reason"],
        screen=next((e["value"] for e in entities if e.get("entity") == "red_flag_screen"), None))


@dataclass
class _Flagged:
    """One red-flag turn as it is worked out (database work, one transaction)."""

    tier: str
    reasons: List[str]
    replies: List[str] = field(default_factory=list)
    events: List[EventType] = field(default_factory=list)
    alerts: tuple[int, ...] = ()
    stop: bool = False
    escalation_id: Optional[int] = None


class ActionHandleRedFlag(Action):
    """Emergency and crisis stop whatever is happening; urgent and routine are
    escalated or noted and the check-in goes on (bot/rules/red_flags.yml). A
    screen (or the crisis follow-up) is asked after the tier's reply, and the
    screen form waits for its answer (bot/rules/screens.yml)."""

    def name(self) -> Text:
        return "action_handle_red_flag"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        events, alerts = await in_thread(self._handle, dispatcher, tracker)
        await deliver_alerts_async(alerts)
        return events

    def _handle(self, dispatcher: CollectingDispatcher,
                tracker: Tracker) -> tuple[List[EventType], tuple[int, ...]]:
        """Record the escalation, ask the screen and word the reply (a worker thread)."""
        flag = flag_of(tracker) or Flag("urgent")
        text = tracker.latest_message.get("text") or ""
        loop = (tracker.active_loop or {}).get("name")
        patient_id = tracker.sender_id
        turn = _Flagged(flag.tier, list(flag.reasons))
        with new_session() as session, session.begin():
            # only the patient's own check-in (a forged id is ignored; the flag stands)
            checkin_id = own_checkin(session, tracker) if loop == FORM else None
            if checkin_id is not None:
                self._answer_open_question(session, tracker, checkin_id, text, turn)
            if turn.tier != "none":
                response = handle_red_flag(session, patient_id, turn.tier,
                                           turn.reasons or ["red flag in message"], text,
                                           checkin_id=checkin_id)
                turn.replies += response.replies
                turn.stop, turn.escalation_id = response.stop_checkin, response.escalation_id
                turn.alerts = response.raised.alert_message_ids if response.raised else ()
            wanted = screening.question_for(Flag(turn.tier, turn.reasons, flag.screen))
            wanted = wanted if wanted and screening.pending(session, patient_id) is None else None
            interrupted, exercise_id = self._interrupt(session, tracker, loop, text, turn,
                                                       asking=wanted is not None)
            asked = wanted is not None and screening.ask(
                session, patient_id, wanted, turn.tier, escalation_id=turn.escalation_id,
                interrupted=None if turn.stop else interrupted,
                checkin_id=checkin_id, exercise_session_id=exercise_id) is not None
            if turn.tier == "routine" and not loop and not asked:
                # noted; what was asked for is still offered
                offer = programs.offer_for_request(session, patient_id, _asked_for(tracker))
                turn.replies += [offer] if offer else []
            if turn.stop and checkin_id is not None:
                checkin = session.get(CheckIn, checkin_id)
                if checkin is not None and checkin.status == "in_progress":
                    checkin.status = "paused"  # answers kept; the nurse sees where it stopped
        for reply in turn.replies:
            dispatcher.utter_message(text=reply)
        events = [*turn.events, SlotSet("red_flag_stop", turn.stop),
                  SlotSet("screen_asked", asked)]
        if asked:
            events.append(SlotSet("screen_reply", None))
        if loop in (FORM, EXERCISE_FORM):  # the rules reopen a form unless it had to stop
            events += [ActiveLoop(None), SlotSet("requested_slot", None)]
        return events, turn.alerts

    @staticmethod
    def _answer_open_question(session: Session, tracker: Tracker, checkin_id: int, text: str,
                              turn: _Flagged) -> None:
        """The message may also answer the open question ("yes, and I have a fever"):
        a YES to a higher-tier safety question raises the tier."""
        item = tracker.get_slot("requested_slot")
        answered = checkins.try_answer(session, checkin_id, item, text,
                                       patient_id=tracker.sender_id) if item else None
        if answered is None:
            return
        q = checkins.question(item)
        if answered.value is True and q.flag_tier and tier_rank(q.flag_tier) > tier_rank(turn.tier):
            turn.tier = q.flag_tier
            turn.reasons = [q.flag_reason or q.label, *turn.reasons]
        turn.events.append(SlotSet(item, answered.value))
        if answered.follow_up:  # asked when the check-in goes on
            turn.events += follow_up_events(tracker, item, answered.follow_up)
        if answered.added:  # the ASQ after a positive PHQ-2
            turn.events += added_events(tracker, answered.added)

    @staticmethod
    def _interrupt(session: Session, tracker: Tracker, loop: Optional[str], text: str,
                   turn: _Flagged, asking: bool) -> tuple[Optional[str], Optional[int]]:
        """What the flag does to the form in progress; returns the form a screen
        interrupts (reopened after a clear NO) and the exercise session."""
        if loop == FORM:
            return "checkin", None
        if loop != EXERCISE_FORM:
            return None, None
        # a routine note doesn't interrupt: the message also answers the step;
        # a screen or anything more urgent wins and the exercise waits (resumable)
        step = programs.answer_flagged(session, tracker.sender_id, text) \
            if turn.tier == "routine" and not asking else None
        if step is not None:
            turn.replies += step.replies
            turn.stop = turn.stop or step.done
            return None, None
        paused = programs.pause_active(session, tracker.sender_id)
        turn.stop = turn.stop or not asking
        return "exercise", paused.id if paused is not None else None
