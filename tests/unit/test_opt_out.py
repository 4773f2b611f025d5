"""Opting out: a real opt-out (STOP, or the carrier refusing because the number opted
out) ends every text, so it puts an "opted out of monitoring" task in the nurse queue;
QUIT, CANCEL or END in the middle of an exercise only leave the exercise."""
from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from painpath import programs
from painpath.db import new_session
from painpath.dispatch import drain
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.messaging import SendResult, apply_status_callback
from painpath.models import Clinic, Escalation, ExerciseSession, Message, Patient, utcnow
from painpath.sms import route_inbound
from web.dashboard import queue_data

PHONE = "+14155550181"


@pytest.fixture
def patient_id(clinic: str) -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone=PHONE, procedure="radiofrequency_ablation",
            procedure_at="2026-11-20T09:30:00-06:00", name="Otto Out")).id


def sid() -> str:
    return "SM" + secrets.token_hex(16)


def tasks(patient_id: str) -> list[Escalation]:
    with new_session() as session:
        return list(session.execute(select(Escalation).where(
            Escalation.patient_id == patient_id, Escalation.kind == "opted_out")).scalars())


def opted_out(patient_id: str) -> bool:
    with new_session() as session:
        return session.get(Patient, patient_id).sms_opted_out


def in_an_exercise(patient_id: str, minutes_ago: float = 1) -> int:
    with new_session() as session, session.begin():
        row = programs.start(session, patient_id, "breathing",
                             now=utcnow() - timedelta(minutes=minutes_ago))
        return row.id


def test_stop_puts_an_opted_out_task_in_the_nurse_queue(patient_id: str) -> None:
    routed = route_inbound(PHONE, "STOP", sid())
    assert routed.forward_text is None and opted_out(patient_id)
    [task] = tasks(patient_id)
    assert (task.tier, task.status) == ("routine", "open")
    assert "Opted out of monitoring: replied STOP" in task.reasons[0]
    with new_session() as session:
        clinic = session.execute(select(Clinic)).scalar_one()
        queue = queue_data(session, clinic.id, clinic.timezone, utcnow())
    assert [(i["kind_label"], i["patient_id"]) for i in queue["items"]] == [
        ("Opted out of monitoring", patient_id)]
    with new_session() as session:  # a task waits in the queue: nobody is paged for it
        assert session.execute(select(Message).where(
            Message.clinician_id.isnot(None))).first() is None
    route_inbound(PHONE, "STOP", sid())  # already opted out: no second task
    assert len(tasks(patient_id)) == 1


def test_a_carrier_opt_out_reported_by_twilio_is_a_task_too(patient_id: str,
                                                            database_url: str) -> None:
    with new_session() as session, session.begin():
        session.add(Message(patient_id=patient_id, direction="out", channel="sms", to=PHONE,
                            body="Hi", status="sent", provider_sid="SM" + "b" * 32))
    assert apply_status_callback(database_url, "SM" + "b" * 32, "undelivered", "21610")
    assert opted_out(patient_id)
    assert "carrier reports the number opted out" in tasks(patient_id)[0].reasons[0]


def test_a_send_refused_with_21610_is_a_task(patient_id: str) -> None:
    class OptedOutCarrier:
        def send(self, to: str, body: str, from_: str | None = None) -> SendResult:
            return SendResult(sid=None, status="failed", error="21610: unsubscribed",
                              error_code=21610)

    drain(gateway=OptedOutCarrier(), now=utcnow() + timedelta(seconds=1))  # the welcome
    assert opted_out(patient_id) and len(tasks(patient_id)) == 1


@pytest.mark.parametrize("word", ["QUIT", "cancel", "End", "quit."])
def test_quit_cancel_or_end_inside_an_exercise_only_leave_it(patient_id: str, word: str) -> None:
    session_id = in_an_exercise(patient_id)
    routed = route_inbound(PHONE, word, sid())
    assert routed.forward_text == word  # the exercise form gets it
    assert not opted_out(patient_id) and tasks(patient_id) == []
    with new_session() as session, session.begin():
        turn = programs.advance(session, session_id, word)
    assert turn.done and turn.status == "stopped"
    assert "stopped the exercise" in turn.replies[0]
    assert "reply STOP" in turn.replies[0] and "SKIP" in turn.replies[0]
    with new_session() as session:
        assert session.get(ExerciseSession, session_id).status == "stopped"


@pytest.mark.parametrize("word", ["QUIT", "CANCEL", "END", "STOPALL", "unsubscribe"])
def test_outside_an_exercise_they_are_opt_outs(patient_id: str, word: str) -> None:
    route_inbound(PHONE, word, sid())
    assert opted_out(patient_id) and len(tasks(patient_id)) == 1


def test_stop_is_an_opt_out_even_inside_an_exercise(patient_id: str) -> None:
    in_an_exercise(patient_id)
    assert route_inbound(PHONE, "STOP", sid()).forward_text is None
    assert opted_out(patient_id) and len(tasks(patient_id)) == 1


def test_an_exercise_left_hours_ago_is_not_in_progress(patient_id: str) -> None:
    in_an_exercise(patient_id, minutes_ago=180)
    route_inbound(PHONE, "QUIT", sid())
    assert opted_out(patient_id) and len(tasks(patient_id)) == 1


def test_exercise_prompts_advertise_skip_not_an_opt_out_word(patient_id: str) -> None:
    with new_session() as session, session.begin():
        first = programs.prompt(programs.start(session, patient_id, "sleep"))
    assert "Reply SKIP any time to leave it" in first
    for word in ("QUIT", "CANCEL", "END", "STOP "):
        assert f"Reply {word}" not in first
