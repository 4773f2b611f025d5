"""Exercise actions (actions/cbt.py): a real Tracker and CollectingDispatcher,
exact events and messages."""
from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.cbt import (ActionAskExerciseReply, ActionDeclineOffer, ActionExerciseDone,
                         ActionListExercises, ActionPauseExercise, ActionStartExercise,
                         ValidateExerciseForm)
from actions.escalation import ActionHandleRedFlag
from painpath import programs
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.models import Escalation, ExerciseSession

DOMAIN: dict[str, Any] = {
    "forms": {"exercise_form": {"required_slots": ["exercise_reply"]}},
    "slots": {"exercise_reply": {"type": "any", "mappings": [{"type": "from_text"}]}},
}


def tracker(sender: str, intent: str, text: str = "", slots: dict[str, Any] | None = None,
            entities: list[dict[str, Any]] | None = None, in_form: bool = False) -> Tracker:
    all_slots = {"exercise_session": None, "exercise_reply": None, "exercise_ready": None,
                 "requested_slot": "exercise_reply" if in_form else None, "checkin_id": None,
                 "red_flag_stop": None}
    all_slots.update(slots or {})
    events: list[dict[str, Any]] = [{"event": "user", "text": text}]
    if in_form and all_slots.get("exercise_reply") is not None:
        events.append({"event": "slot", "name": "exercise_reply", "value": all_slots["exercise_reply"]})
    return Tracker(sender_id=sender, slots=all_slots,
                   latest_message={"text": text, "intent": {"name": intent, "confidence": 1.0},
                                   "entities": entities or []},
                   events=events, paused=False, followup_action=None,
                   active_loop={"name": "exercise_form"} if in_form else {},
                   latest_action_name="action_listen")


@pytest.fixture
def patient_id(clinic: str) -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550113", procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:30:00-05:00", name="Kim Park", baseline_pain=7)).id


def texts(dispatcher: CollectingDispatcher) -> list[str]:
    return [m.get("text") or m.get("response") for m in dispatcher.messages]


async def start(patient_id: str, intent: str = "want_breathing") -> int:
    dispatcher = CollectingDispatcher()
    events = await ActionStartExercise().run(dispatcher, tracker(patient_id, intent), {})
    session_id = next(e["value"] for e in events if e["name"] == "exercise_session")
    assert events == [SlotSet("exercise_session", session_id), SlotSet("exercise_reply", None),
                      SlotSet("exercise_ready", True)]
    assert dispatcher.messages == []  # the form asks the first step
    return session_id


async def test_a_request_starts_its_exercise_and_the_form_asks_each_step(patient_id: str) -> None:
    session_id = await start(patient_id, "want_sleep_help")
    dispatcher = CollectingDispatcher()
    slots = {"exercise_session": session_id}
    assert await ActionAskExerciseReply().run(dispatcher, tracker(patient_id, "inform", slots=slots,
                                                                  in_form=True), DOMAIN) == []
    assert texts(dispatcher)[0].startswith("Sleep habits (about 5 min)")
    validator = ValidateExerciseForm()
    for reply in ("no", "ok"):
        dispatcher = CollectingDispatcher()
        result = await validator.validate_exercise_reply(
            reply, dispatcher, tracker(patient_id, "inform", reply, slots, in_form=True), DOMAIN)
        assert result == {"exercise_reply": None} and dispatcher.messages == []
    dispatcher = CollectingDispatcher()
    await ActionAskExerciseReply().run(dispatcher, tracker(patient_id, "inform", slots=slots,
                                                           in_form=True), DOMAIN)
    assert texts(dispatcher)[0].startswith("1) Get up at the same time")


async def test_later_ends_the_form_and_resume_exercise_picks_it_up(patient_id: str) -> None:
    session_id = await start(patient_id)
    slots = {"exercise_session": session_id}
    dispatcher = CollectingDispatcher()
    result = await ValidateExerciseForm().validate_exercise_reply(
        "later", dispatcher, tracker(patient_id, "pause_checkin", "later", slots, in_form=True), DOMAIN)
    assert result == {"exercise_reply": "done"}
    assert "RESUME EXERCISE" in texts(dispatcher)[0]
    assert await ActionExerciseDone().run(CollectingDispatcher(), tracker(patient_id, "inform"), {}) == [
        SlotSet("exercise_session", None), SlotSet("exercise_reply", None), SlotSet("exercise_ready", None)]
    dispatcher = CollectingDispatcher()
    events = await ActionStartExercise().run(dispatcher, tracker(patient_id, "resume_exercise"), {})
    assert SlotSet("exercise_session", session_id) in events and SlotSet("exercise_ready", True) in events


async def test_nothing_to_resume_or_accept(patient_id: str) -> None:
    for intent, expected in (("resume_exercise", "no exercise waiting"), ("affirm", "Nothing is waiting")):
        dispatcher = CollectingDispatcher()
        events = await ActionStartExercise().run(dispatcher, tracker(patient_id, intent), {})
        assert events == [SlotSet("exercise_ready", False)]
        assert expected in texts(dispatcher)[0]


async def test_yes_accepts_the_offer_and_no_declines_it(patient_id: str) -> None:
    with new_session() as session, session.begin():
        offered = programs.make_offer(session, patient_id, "breathing").id
    dispatcher = CollectingDispatcher()
    events = await ActionStartExercise().run(dispatcher, tracker(patient_id, "affirm", "yes"), {})
    assert SlotSet("exercise_session", offered) in events
    with new_session() as session, session.begin():
        programs.make_offer(session, patient_id, "mindfulness")
    dispatcher = CollectingDispatcher()
    assert await ActionDeclineOffer().run(dispatcher, tracker(patient_id, "deny", "no thanks"), {}) == []
    assert texts(dispatcher) == [programs.say("offer_declined")]
    dispatcher = CollectingDispatcher()
    await ActionDeclineOffer().run(dispatcher, tracker(patient_id, "deny", "no"), {})
    assert texts(dispatcher) == ["utter_goodbye"]


async def test_the_scheduler_starts_its_own_session(patient_id: str) -> None:
    with new_session() as session, session.begin():
        row = programs.schedule(session, patient_id, "activation_review",
                                programs.utcnow(), {"activity": "baking", "predicted": 5})
        row.status = "active"  # claimed by due_sessions
        session_id = row.id
    dispatcher = CollectingDispatcher()
    events = await ActionStartExercise().run(dispatcher, tracker(
        patient_id, "EXTERNAL_start_exercise",
        entities=[{"entity": "exercise_session", "value": str(session_id)}]), {})
    assert SlotSet("exercise_session", session_id) in events
    dispatcher = CollectingDispatcher()
    await ActionAskExerciseReply().run(dispatcher, tracker(
        patient_id, "inform", slots={"exercise_session": session_id}, in_form=True), DOMAIN)
    assert "Yesterday you planned: baking" in texts(dispatcher)[0]
    # a session that was cancelled meanwhile is not started
    with new_session() as session, session.begin():
        session.get(ExerciseSession, session_id).status = "cancelled"
    events = await ActionStartExercise().run(CollectingDispatcher(), tracker(
        patient_id, "EXTERNAL_start_exercise",
        entities=[{"entity": "exercise_session", "value": str(session_id)}]), {})
    assert events == [SlotSet("exercise_ready", False)]


async def test_a_red_flag_mid_exercise_wins_and_pauses_it(patient_id: str) -> None:
    session_id = await start(patient_id, "want_mindfulness")
    dispatcher = CollectingDispatcher()
    events = await ActionHandleRedFlag().run(dispatcher, tracker(
        patient_id, "red_flag", "I want to end my life", {"exercise_session": session_id},
        entities=[{"entity": "red_flag_tier", "value": "crisis"},
                  {"entity": "red_flag_reason", "value": "suicidal thoughts"}], in_form=True), {})
    # a crisis stops the exercise, and the follow-up question is asked next
    assert events[-5:] == [SlotSet("red_flag_stop", True), SlotSet("screen_asked", True),
                           SlotSet("screen_reply", None), ActiveLoop(None),
                           SlotSet("requested_slot", None)]
    assert "988" in " ".join(texts(dispatcher))
    with new_session() as session:
        assert session.get(ExerciseSession, session_id).status == "paused"
        assert session.execute(select(Escalation.tier)).scalars().all() == ["crisis"]


async def test_a_due_checkin_pauses_the_exercise(patient_id: str) -> None:
    session_id = await start(patient_id)
    events = await ActionPauseExercise().run(CollectingDispatcher(), tracker(
        patient_id, "EXTERNAL_start_checkin", slots={"exercise_session": session_id}, in_form=True), {})
    assert events[:2] == [ActiveLoop(None), SlotSet("requested_slot", None)]
    with new_session() as session:
        assert session.get(ExerciseSession, session_id).status == "paused"


async def test_the_menu() -> None:
    dispatcher = CollectingDispatcher()
    await ActionListExercises().run(dispatcher, tracker("x", "list_exercises"), {})
    assert "BREATHE" in texts(dispatcher)[0] and len(texts(dispatcher)[0]) <= 320


async def test_a_routine_flag_with_a_request_notes_it_and_offers_the_exercise(patient_id: str) -> None:
    t = tracker(patient_id, "red_flag", "I can't sleep since the injection",
                entities=[{"entity": "red_flag_tier", "value": "routine"},
                          {"entity": "red_flag_reason", "value": "steroid side effects"}])
    t.latest_message["intent_ranking"] = [{"name": "red_flag", "confidence": 1.0},
                                          {"name": "want_sleep_help", "confidence": 0.82}]
    dispatcher = CollectingDispatcher()
    await ActionHandleRedFlag().run(dispatcher, t, {})
    assert texts(dispatcher)[-1] == programs.say("offer", title="sleep habits", minutes=5)
    with new_session() as session:
        assert programs.open_offer(session, patient_id).exercise == "sleep"
        assert session.execute(select(Escalation.tier)).scalars().all() == ["routine"]
    dispatcher = CollectingDispatcher()
    events = await ActionStartExercise().run(dispatcher, tracker(patient_id, "affirm", "yes"), {})
    assert SlotSet("exercise_ready", True) in events


async def test_yes_or_no_as_plain_answers_reach_an_open_offer(patient_id: str) -> None:
    with new_session() as session, session.begin():
        offered = programs.make_offer(session, patient_id, "breathing").id
    events = await ActionStartExercise().run(CollectingDispatcher(), tracker(patient_id, "inform", "yes"), {})
    assert SlotSet("exercise_session", offered) in events
    with new_session() as session, session.begin():
        programs.pause_active(session, patient_id)
        programs.make_offer(session, patient_id, "sleep")
    dispatcher = CollectingDispatcher()
    events = await ActionStartExercise().run(dispatcher, tracker(patient_id, "inform", "nope"), {})
    assert events == [SlotSet("exercise_ready", False)]
    assert texts(dispatcher) == [programs.say("offer_declined")]
    dispatcher = CollectingDispatcher()
    events = await ActionStartExercise().run(dispatcher, tracker(patient_id, "inform", "6"), {})
    assert events == [SlotSet("exercise_ready", False)]
    assert texts(dispatcher) == ["utter_not_in_checkin"]


async def test_a_routine_note_mid_exercise_answers_the_step_and_urgent_pauses(patient_id: str) -> None:
    session_id = await start(patient_id, "want_thought_record")
    with new_session() as session, session.begin():
        programs.advance(session, session_id, "no")  # past the safety check
    t = tracker(patient_id, "red_flag", "lying awake at night again", {"exercise_session": session_id},
                entities=[{"entity": "red_flag_tier", "value": "routine"}], in_form=True)
    dispatcher = CollectingDispatcher()
    events = await ActionHandleRedFlag().run(dispatcher, t, {})
    assert SlotSet("red_flag_stop", False) in events
    with new_session() as session:
        row = session.get(ExerciseSession, session_id)
        assert row.status == "active" and row.data["situation"] == "lying awake at night again"
    t = tracker(patient_id, "red_flag", "the wound is oozing pus", {"exercise_session": session_id},
                entities=[{"entity": "red_flag_tier", "value": "urgent"}], in_form=True)
    events = await ActionHandleRedFlag().run(CollectingDispatcher(), t, {})
    assert SlotSet("red_flag_stop", True) in events
    with new_session() as session:
        assert session.get(ExerciseSession, session_id).status == "paused"
