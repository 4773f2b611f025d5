"""The screen actions: `action_handle_red_flag` asks the screen after the tier's reply,
`screen_form`'s validator answers it, `action_screen_done` says which form goes on
(exact events, as the rules in bot/rules/screens.yml expect them)."""
from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.escalation import ActionHandleRedFlag
from actions.screens import ActionAskScreenReply, ActionScreenDone, ValidateScreenForm
from painpath import checkins, programs
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.messaging import ConsoleGateway, set_gateway
from painpath.models import CheckIn, Escalation, ExerciseSession, SafetyScreen


@pytest.fixture
def patient_id(clinic: str) -> str:
    set_gateway(ConsoleGateway())
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550132", procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:30:00-05:00", name="Kim Ode", baseline_pain=7)).id


def flagged(patient_id: str, text: str, tier: str, screen: str | None,
            slots: dict[str, Any] | None = None, loop: str | None = None) -> Tracker:
    entities = [{"entity": "red_flag_tier", "value": tier}]
    entities += [{"entity": "red_flag_screen", "value": screen}] if screen else []
    if tier != "none":
        entities.append({"entity": "red_flag_reason", "value": "a reason"})
    return Tracker(sender_id=patient_id, slots={"requested_slot": None, "checkin_id": None,
                                                **(slots or {})},
                   latest_message={"text": text, "intent": {"name": "red_flag"},
                                   "entities": entities},
                   events=[], paused=False, followup_action=None,
                   active_loop={"name": loop} if loop else {}, latest_action_name="action_listen")


def reply(patient_id: str, text: str, intent: str = "deny") -> Tracker:
    return Tracker(sender_id=patient_id, slots={"requested_slot": "screen_reply",
                                                "screen_reply": text},
                   latest_message={"text": text, "intent": {"name": intent}, "entities": []},
                   events=[], paused=False, followup_action=None,
                   active_loop={"name": "screen_form"}, latest_action_name="action_listen")


def screen_row(patient_id: str) -> SafetyScreen:
    with new_session() as session:
        return session.execute(select(SafetyScreen).where(
            SafetyScreen.patient_id == patient_id).order_by(SafetyScreen.id.desc())).scalars().first()


async def test_a_screen_alone_asks_without_an_escalation(patient_id: str) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionHandleRedFlag().run(
        dispatcher, flagged(patient_id, "my legs feel weird", "none", "neuro"), {})
    assert events == [SlotSet("red_flag_stop", False), SlotSet("screen_asked", True),
                      SlotSet("screen_reply", None)]
    assert dispatcher.messages == []  # the form asks the question itself
    row = screen_row(patient_id)
    assert (row.screen_id, row.status, row.interrupted) == ("neuro", "pending", None)
    with new_session() as session:
        assert session.execute(select(Escalation)).first() is None
    asker = CollectingDispatcher()
    await ActionAskScreenReply().run(asker, reply(patient_id, "", "red_flag"), {})
    assert asker.messages[0]["text"].startswith("Is the weakness or numbness new")


async def test_a_crisis_mid_checkin_gives_988_then_asks_asq5(patient_id: str) -> None:
    with new_session() as session, session.begin():
        checkin = checkins.next_checkin(session, patient_id)
        checkins.begin(session, checkin)
        checkin_id = checkin.id
    dispatcher = CollectingDispatcher()
    events = await ActionHandleRedFlag().run(dispatcher, flagged(
        patient_id, "i cant go on like this", "crisis", "asq5",
        {"checkin_id": checkin_id, "requested_slot": "pain_now"}, "checkin_form"), {})
    assert events == [SlotSet("red_flag_stop", True), SlotSet("screen_asked", True),
                      SlotSet("screen_reply", None), ActiveLoop(None),
                      SlotSet("requested_slot", None)]
    assert [m["text"][:40] for m in dispatcher.messages] == \
        ["I'm really glad you told me, and I'm sor"]
    row = screen_row(patient_id)
    assert (row.screen_id, row.flag_tier, row.interrupted) == ("asq5", "crisis", None)
    with new_session() as session:
        assert session.get(CheckIn, checkin_id).status == "paused"
        assert row.escalation_id == session.execute(select(Escalation.id)).scalar_one()


async def test_a_crisis_without_a_screen_asks_the_followup(patient_id: str) -> None:
    await ActionHandleRedFlag().run(CollectingDispatcher(), flagged(
        patient_id, "i want to die", "crisis", None), {})
    assert screen_row(patient_id).screen_id == "crisis_followup"


async def test_an_emergency_asks_nothing_more(patient_id: str) -> None:
    events = await ActionHandleRedFlag().run(CollectingDispatcher(), flagged(
        patient_id, "cant feel my legs", "emergency", "neuro"), {})
    assert SlotSet("screen_asked", False) in events and screen_row(patient_id) is None


async def test_no_to_a_screen_mid_checkin_reopens_the_checkin(patient_id: str) -> None:
    with new_session() as session, session.begin():
        checkin = checkins.next_checkin(session, patient_id)
        checkins.begin(session, checkin)
        checkin_id = checkin.id
    await ActionHandleRedFlag().run(CollectingDispatcher(), flagged(
        patient_id, "my foot feels a bit weird", "none", "neuro",
        {"checkin_id": checkin_id, "requested_slot": "pain_now"}, "checkin_form"), {})
    assert screen_row(patient_id).interrupted == "checkin"
    dispatcher = CollectingDispatcher()
    slots = await ValidateScreenForm().validate_screen_reply("no", dispatcher,
                                                             reply(patient_id, "no"), {})
    assert slots == {"screen_reply": "answered", "screen_outcome": "checkin"}
    assert dispatcher.messages[0]["text"].startswith("Thanks, noted")
    done = await ActionScreenDone().run(CollectingDispatcher(), Tracker(
        sender_id=patient_id, slots={"screen_outcome": "checkin"}, latest_message={},
        events=[], paused=False, followup_action=None, active_loop={},
        latest_action_name="screen_form"), {})
    assert done[0] == SlotSet("screen_resume", "checkin")


async def test_no_to_a_screen_mid_exercise_resumes_the_exercise(patient_id: str) -> None:
    with new_session() as session, session.begin():
        exercise_id = programs.start(session, patient_id, "breathing").id
    await ActionHandleRedFlag().run(CollectingDispatcher(), flagged(
        patient_id, "my hand feels strange", "none", "neuro",
        {"exercise_session": exercise_id}, "exercise_form"), {})
    with new_session() as session:
        assert session.get(ExerciseSession, exercise_id).status == "paused"
    slots = await ValidateScreenForm().validate_screen_reply(
        "nope", CollectingDispatcher(), reply(patient_id, "nope"), {})
    assert slots == {"screen_reply": "answered", "screen_outcome": "exercise",
                     "exercise_session": exercise_id, "exercise_reply": None}
    with new_session() as session:
        assert session.get(ExerciseSession, exercise_id).status == "active"


async def test_yes_to_asq5_keeps_the_form_open_for_the_followup(patient_id: str) -> None:
    await ActionHandleRedFlag().run(CollectingDispatcher(), flagged(
        patient_id, "i cant go on like this", "crisis", "asq5"), {})
    dispatcher = CollectingDispatcher()
    slots = await ValidateScreenForm().validate_screen_reply(
        "yes", dispatcher, reply(patient_id, "yes", "affirm"), {})
    assert slots == {"screen_reply": None}  # the follow-up is asked next
    assert "call or text 988 now" in dispatcher.messages[0]["text"]
    assert screen_row(patient_id).screen_id == "crisis_followup"


async def test_held_outreach_does_not_repeat_the_question(patient_id: str) -> None:
    await ActionHandleRedFlag().run(CollectingDispatcher(), flagged(
        patient_id, "my legs feel weird", "none", "neuro"), {})
    dispatcher = CollectingDispatcher()
    await ActionAskScreenReply().run(dispatcher, reply(patient_id, "", "EXTERNAL_start_checkin"),
                                     {})
    assert dispatcher.messages == []
