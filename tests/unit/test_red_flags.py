"""Red flags in the conversation: escalation, alert, wording, dedupe, the action."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.escalation import ActionHandleRedFlag
from painpath import checkins
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.escalation import handle_red_flag
from painpath.messaging import ConsoleGateway, set_gateway
from painpath.models import CheckIn, Escalation, Message
from painpath.triage import BYSTANDER_REASON


@pytest.fixture
def patient_id(clinic: str) -> str:
    set_gateway(ConsoleGateway())
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550115", procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:30:00-05:00", name="Lee Quinn", baseline_pain=7)).id


def test_emergency_wording_and_alert(patient_id: str) -> None:
    with new_session() as session, session.begin():
        r = handle_red_flag(session, patient_id, "emergency", ["new leg weakness"],
                            "my leg is giving out")
    assert r.stop_checkin and r.raised is not None
    assert "call 911" in r.replies[0] and "Do not wait" in r.replies[0]
    with new_session() as session:
        alert = session.execute(select(Message).where(Message.clinician_id.isnot(None))).scalar_one()
    assert alert.body.startswith(f"PainPath alert #{r.raised.escalation_id}: EMERGENCY")
    assert "L.Q." in alert.body and "leg" not in alert.body


def test_crisis_gives_988_at_once(patient_id: str) -> None:
    with new_session() as session, session.begin():
        r = handle_red_flag(session, patient_id, "crisis", ["suicidal thoughts"], "…")
    # one message: the question that follows (ASQ item 5, or the follow-up) is asked
    # on its own (painpath/screening.py, tests/unit/test_screening.py)
    assert r.replies == [r.replies[0]] and "call or text 988 now" in r.replies[0]
    assert r.stop_checkin and r.escalation_id == r.raised.escalation_id


def test_urgent_says_who_calls_and_by_when(patient_id: str) -> None:
    now = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)  # 09:00 in Chicago (clinic zone)
    with new_session() as session, session.begin():
        r = handle_red_flag(session, patient_id, "urgent", ["fever"], "temp 101", now=now)
    assert not r.stop_checkin
    assert "a nurse from Test Pain Clinic will call you by 11:00 AM" in r.replies[0]
    assert "call 911" in r.replies[0]


def test_routine_is_noted_without_paging(patient_id: str) -> None:
    with new_session() as session, session.begin():
        r = handle_red_flag(session, patient_id, "routine", ["steroid flushing"], "face is red")
    with new_session() as session:
        esc = session.execute(select(Escalation)).scalar_one()
        assert (esc.tier, esc.status) == ("routine", "noted")
        pages = select(Message).where(Message.clinician_id.isnot(None))
        assert session.execute(pages).first() is None
    assert r.replies == ["Thanks for letting me know. I've noted it for your care team to review."]


def test_someone_elses_emergency_gets_911_for_them_and_a_note(patient_id: str) -> None:
    with new_session() as session, session.begin():
        r = handle_red_flag(session, patient_id, "routine", [BYSTANDER_REASON],
                            "my neighbour collapsed, not me")
    with new_session() as session:
        esc = session.execute(select(Escalation)).scalar_one()
        assert (esc.tier, esc.status) == ("routine", "noted")
        assert session.execute(select(Message).where(Message.clinician_id.isnot(None))).first() is None
    assert len(r.replies) == 1 and "call 911 now for them" in r.replies[0]


def test_a_second_message_adds_to_the_open_escalation(patient_id: str) -> None:
    with new_session() as session, session.begin():
        handle_red_flag(session, patient_id, "emergency", ["chest pain"], "chest hurts")
        again = handle_red_flag(session, patient_id, "urgent", ["fever"], "and a fever")
    assert again.raised is None
    with new_session() as session:
        esc = session.execute(select(Escalation)).scalar_one()
        assert esc.reasons == ["chest pain", "fever"]
        pages = session.execute(select(Message).where(Message.clinician_id.isnot(None))).scalars()
        assert len(pages.all()) == 1  # one page only


def _tracker(patient_id: str, text: str, tier: str, reasons: list[str],
             slots: dict[str, Any] | None = None, form: bool = False) -> Tracker:
    entities = [{"entity": "red_flag_tier", "value": tier}] + [
        {"entity": "red_flag_reason", "value": r} for r in reasons]
    return Tracker(sender_id=patient_id, slots={"requested_slot": None, "checkin_id": None,
                                                **(slots or {})},
                   latest_message={"text": text, "intent": {"name": "red_flag"},
                                   "entities": entities},
                   events=[], paused=False, followup_action=None,
                   active_loop={"name": "checkin_form"} if form else {},
                   latest_action_name="action_listen")


async def test_action_emergency_mid_checkin_stops_the_form(patient_id: str) -> None:
    with new_session() as session, session.begin():
        checkin = checkins.next_checkin(session, patient_id)
        checkins.begin(session, checkin)
        checkin_id = checkin.id
    dispatcher = CollectingDispatcher()
    events = await ActionHandleRedFlag().run(dispatcher, _tracker(
        patient_id, "cant feel my legs since this morning", "emergency", ["new leg numbness"],
        {"checkin_id": checkin_id, "requested_slot": "pain_now"}, form=True), {})
    assert events == [SlotSet("red_flag_stop", True), SlotSet("screen_asked", False),
                      ActiveLoop(None), SlotSet("requested_slot", None)]
    assert "call 911" in dispatcher.messages[0]["text"]
    with new_session() as session:
        assert session.get(CheckIn, checkin_id).status == "paused"
        assert session.execute(select(Escalation.tier)).scalar_one() == "emergency"


async def test_action_urgent_answer_counts_and_form_goes_on(patient_id: str) -> None:
    with new_session() as session, session.begin():
        checkin = checkins.next_checkin(session, patient_id)
        checkins.begin(session, checkin)
        checkin_id = checkin.id
    dispatcher = CollectingDispatcher()
    events = await ActionHandleRedFlag().run(dispatcher, _tracker(
        patient_id, "yes, my headache is way worse sitting up", "urgent", ["positional headache"],
        {"checkin_id": checkin_id, "requested_slot": "safety_headache",
         "checkin_items": ["safety_headache"]}, form=True), {})
    assert events == [SlotSet("safety_headache", True), SlotSet("safety_headache_severe", None),
                      SlotSet("checkin_items", ["safety_headache", "safety_headache_severe"]),
                      SlotSet("red_flag_stop", False), SlotSet("screen_asked", False),
                      ActiveLoop(None),
                      SlotSet("requested_slot", None)]
    with new_session() as session:
        assert checkins.final_answer(session, checkin_id, "safety_headache") == (True, True)
        assert session.execute(select(Escalation.tier)).scalars().all() == ["urgent"]


async def test_yes_to_a_higher_tier_safety_question_raises_the_tier(patient_id: str) -> None:
    with new_session() as session, session.begin():
        checkin = checkins.next_checkin(session, patient_id)
        checkins.begin(session, checkin)
        checkin_id = checkin.id
        checkins.submit(session, checkin_id, "safety_neuro", "yes")  # urgent; follow-up next
    dispatcher = CollectingDispatcher()
    await ActionHandleRedFlag().run(dispatcher, _tracker(
        patient_id, "worse, the tingling is spreading up my leg", "urgent", ["tingling"],
        {"checkin_id": checkin_id, "requested_slot": "safety_neuro_change"}, form=True), {})
    with new_session() as session:
        assert session.execute(select(Escalation.tier).order_by(Escalation.id)).scalars().all() \
            == ["urgent", "emergency"]
    assert "call 911" in dispatcher.messages[0]["text"]
