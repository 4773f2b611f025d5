"""Red flags in the patient's own words: the reply, the escalation, the alert."""
from __future__ import annotations

import logging
from typing import List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import deliver_alerts_async, follow_up_events, in_thread
from painpath import checkins, programs
from painpath.db import new_session
from painpath.escalation import handle_red_flag
from painpath.models import CheckIn
from painpath.triage import tier_rank

logger = logging.getLogger(__name__)

FORM = "checkin_form"
EXERCISE_FORM = "exercise_form"


def _asked_for(tracker: Tracker) -> str | None:
    """The intent the message had before the red-flag classifier overrode it."""
    ranking = tracker.latest_message.get("intent_ranking") or []
    top = next((r for r in ranking if r.get("name") != "red_flag"), None)
    return top["name"] if top and float(top.get("confidence") or 0) >= 0.5 else None


class ActionHandleRedFlag(Action):
    """Emergency and crisis stop whatever is happening; urgent and routine are
    escalated or noted and the check-in goes on (bot/rules/red_flags.yml)."""

    def name(self) -> Text:
        return "action_handle_red_flag"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        events, alerts = await in_thread(self._handle, dispatcher, tracker)
        await deliver_alerts_async(alerts)
        return events

    def _handle(self, dispatcher: CollectingDispatcher,
                tracker: Tracker) -> tuple[List[EventType], tuple[int, ...]]:
        """Record the escalation and word the reply (database work: a worker thread)."""
        entities = tracker.latest_message.get("entities") or []
        tier = next((e["value"] for e in entities if e.get("entity") == "red_flag_tier"), "urgent")
        reasons = [e["value"] for e in entities if e.get("entity") == "red_flag_reason"]
        text = tracker.latest_message.get("text") or ""
        loop = (tracker.active_loop or {}).get("name")
        in_form = loop == FORM
        checkin_id = tracker.get_slot("checkin_id") if in_form else None
        item = tracker.get_slot("requested_slot") if in_form else None
        events: List[EventType] = []
        with new_session() as session, session.begin():
            if checkin_id is not None and item:
                # the message may also answer the open question ("yes, and I have a fever")
                answered = checkins.try_answer(session, int(checkin_id), item, text)
                if answered is not None:
                    q = checkins.question(item)
                    if answered.value is True and q.flag_tier and \
                            tier_rank(q.flag_tier) > tier_rank(tier):
                        tier = q.flag_tier
                        reasons = [q.flag_reason or q.label, *reasons]
                    events.append(SlotSet(item, answered.value))
                    if answered.follow_up:  # asked when the check-in goes on
                        events += follow_up_events(tracker, item, answered.follow_up)
            response = handle_red_flag(session, tracker.sender_id, tier,
                                       reasons or ["red flag in message"], text,
                                       checkin_id=int(checkin_id) if checkin_id else None)
            stop = response.stop_checkin
            extra: List[str] = []
            if loop == EXERCISE_FORM:
                # a routine note doesn't interrupt: the message also answers the step;
                # anything more urgent wins and the exercise waits (resumable)
                turn = programs.answer_flagged(session, tracker.sender_id, text) \
                    if tier == "routine" else None
                if turn is None:
                    programs.pause_active(session, tracker.sender_id)
                extra = turn.replies if turn is not None else []
                stop = turn is None or turn.done
            offer = None
            if tier == "routine" and not loop:  # noted; what was asked for is still offered
                offer = programs.offer_for_request(session, tracker.sender_id, _asked_for(tracker))
            if response.stop_checkin and checkin_id is not None:
                checkin = session.get(CheckIn, int(checkin_id))
                if checkin is not None and checkin.status == "in_progress":
                    checkin.status = "paused"  # answers kept; the nurse sees where it stopped
        for reply in [*response.replies, *extra, *([offer] if offer else [])]:
            dispatcher.utter_message(text=reply)
        events.append(SlotSet("red_flag_stop", stop))
        if in_form or loop == EXERCISE_FORM:  # the rules reopen a check-in unless it had to stop
            events += [ActiveLoop(None), SlotSet("requested_slot", None)]
        return events, response.raised.alert_message_ids if response.raised else ()
