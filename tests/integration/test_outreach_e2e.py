"""Outreach safety over signed SMS through the real stack: honest urgent replies with
the clinic's number in and out of on-call hours, the fallback page with nobody on
shift, no check-in while an emergency is open (and one once it is resolved), the
welcome SMS at enrolment, QUIT inside an exercise, STOP as a nurse task."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from painpath import scheduling
from painpath.db import new_session
from painpath.enrollment import ensure_clinic
from painpath.escalation import resolve
from painpath.messaging import deliver
from painpath.models import (
    CheckIn,
    Clinician,
    Escalation,
    Message,
    OutreachHold,
    Patient,
)
from painpath.sms_text import segments
from tests.integration.test_programs_e2e import daytime_zone, in_stack_db  # noqa: F401
from tests.integration.test_sms_checkin_e2e import enroll, reply_to

pytestmark = pytest.mark.stack

CLINIC_PHONE = "+14155550198"  # the e2e clinic's number (tests/conftest.py)
NIGHT_PHONE, NIGHT_FALLBACK = "+14155550197", "+14155550196"
ROUTE = "call +14155550195 and choose the doctor on call"


def night_zone() -> str:
    """A time zone where it is between 23:00 and 06:00 now."""
    now = datetime.now(timezone.utc)
    for name in ("Pacific/Kiritimati", "Pacific/Auckland", "Asia/Tokyo", "Asia/Kolkata",
                 "Europe/London", "America/New_York", "America/Los_Angeles",
                 "Pacific/Honolulu", "Pacific/Pago_Pago"):
        if now.astimezone(ZoneInfo(name)).hour in (23, 0, 1, 2, 3, 4, 5):
            return name
    raise AssertionError("no night-time zone found")


@pytest.fixture
def night_clinic(stack, in_stack_db) -> str:  # noqa: F811
    """A clinic whose only nurse is off shift now, with a fallback number and its own
    out-of-hours route."""
    with new_session() as session, session.begin():
        clinic = ensure_clinic(session, "e2e-night", "Night Pain Clinic", phone=NIGHT_PHONE,
                               tz_name="America/Chicago")
        clinic.fallback_phone, clinic.out_of_hours = NIGHT_FALLBACK, ROUTE
        if session.execute(select(Clinician).where(Clinician.clinic_id == clinic.id)).first() \
                is None:
            local = datetime.now(ZoneInfo("America/Chicago"))
            session.add(Clinician(
                clinic_id=clinic.id, name="Dee Dayshift", phone="+14155550194", role="nurse",
                on_call="primary", on_call_start=(local + timedelta(hours=3)).strftime("%H:00"),
                on_call_end=(local + timedelta(hours=5)).strftime("%H:00")))
    return "e2e-night"


def only(patient_id: str) -> Any:
    """A sweep starter that starts this patient's check-in (the real start) and leaves
    everyone else's in the shared stack database alone."""
    def start(pid: str) -> Any:
        if pid != patient_id:
            raise LookupError("another test's patient")
        return scheduling.start_checkin_queued(pid)
    return start


def test_urgent_in_hours_promises_a_call_and_gives_the_clinic_number(stack) -> None:
    phone = "+14155558301"
    enroll(stack, phone)
    reply = reply_to(stack, phone, "my temp is 101.8 this morning")[0]
    assert "will call you by" in reply
    assert f"call us at {CLINIC_PHONE}" in reply and "call 911" in reply


def test_out_of_hours_the_route_and_number_and_the_fallback_is_paged(stack,
                                                                     night_clinic: str) -> None:
    phone = "+14155558302"
    when = (datetime.now(timezone.utc) - timedelta(hours=7)).isoformat()
    stack.cli("enroll", "--clinic", night_clinic, "--phone", phone, "--procedure",
              "epidural_steroid_injection", "--procedure-at", when, "--name", "Nia Night")
    reply = reply_to(stack, phone, "my temp is 101.8 this morning")[0]
    assert "off duty" in reply and "will call you by" not in reply
    assert ROUTE in reply and NIGHT_PHONE in reply and "call 911" in reply
    page = stack.twilio.wait_for_count(NIGHT_FALLBACK, 1)[-1].body
    assert "URGENT" in page and "/escalations/" in page  # nobody on shift: not nobody
    emergency = reply_to(stack, phone, "ok but since lunch I cant feel my legs and I wet myself")
    assert "call 911" in emergency[0]
    assert "EMERGENCY" in stack.twilio.wait_for_count(NIGHT_FALLBACK, 2)[-1].body


def test_no_checkin_while_an_emergency_is_open_then_it_starts(stack, in_stack_db) -> None:  # noqa: F811
    phone = "+14155558303"
    patient_id = enroll(stack, phone)  # the 6 h check-in fell due an hour ago
    with new_session() as session, session.begin():
        session.get(Patient, patient_id).timezone = daytime_zone()  # inside the send window
    replies = reply_to(stack, phone, "ok but since lunch I cant feel my legs and I wet myself")
    assert "call 911" in replies[0]
    sent_after_911 = len(stack.twilio.sent_to(phone))
    scheduling.start_due_checkins(starter=only(patient_id))
    held = stack.cli("checkin", "start", "--patient", patient_id, check=False)
    assert held.returncode == 2 and "held while escalation" in held.stderr
    with new_session() as session:
        checkin = session.execute(select(CheckIn).where(
            CheckIn.patient_id == patient_id).order_by(CheckIn.due_at)).scalars().first()
        assert checkin.status == "scheduled"
        assert session.execute(select(OutreachHold.detail).where(
            OutreachHold.patient_id == patient_id)).scalars().all() == ["check-in 6h"]
        escalation = session.execute(select(Escalation).where(
            Escalation.patient_id == patient_id)).scalars().one()
        nurse = session.execute(select(Clinician.id).where(
            Clinician.phone == "+14155550166")).scalar_one()
    assert len(stack.twilio.sent_to(phone)) == sent_after_911  # nothing more was sent
    with new_session() as session, session.begin():  # the nurse resolves it (dashboard)
        resolve(session, escalation.id, nurse, "sent_to_ed", note="seen in the ED, home now")
    result = scheduling.start_due_checkins(starter=only(patient_id))
    assert result.started == [checkin.id]
    with new_session() as session:
        queued = session.execute(select(Message.id).where(
            Message.patient_id == patient_id, Message.status == "queued",
            Message.idempotency_key.like("checkin-start:%"))).scalars().all()
    for message_id in queued:
        deliver(message_id)
    started = stack.twilio.wait_for_count(phone, sent_after_911 + 2)[sent_after_911:]
    assert "check-in" in started[0].body and "weakness or numbness" in started[1].body
    assert any("headache" in b for b in reply_to(stack, phone, "no"))


def test_welcome_sms_on_enrolment(stack, in_stack_db) -> None:  # noqa: F811
    day, night = "+14155558304", "+14155558305"
    when = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    for phone, zone in ((day, daytime_zone()), (night, night_zone())):
        stack.cli("enroll", "--clinic", "e2e", "--phone", phone, "--procedure", "prp_injection",
                  "--procedure-at", when, "--timezone", zone, "--name", "Wes Welcome")
    stack.cli("dispatcher", "--once")  # what the dispatcher workers do
    [welcome] = stack.twilio.wait_for_count(day, 1)
    body = welcome.body
    assert body.startswith("Welcome to E2E Pain Clinic's follow-up texts")
    for words in ("not watched around the clock", "emergency call 911", "call or text 988",
                  CLINIC_PHONE, "HELP", "STOP"):
        assert words in body, words
    assert segments(body) <= 2
    # at night it waits in the outbox for the patient's morning (not lost, not sent)
    assert stack.twilio.sent_to(night) == []
    with new_session() as session:
        row = session.execute(select(Message).where(Message.to == night)).scalars().one()
    assert row.status == "queued" and row.purpose == "welcome"
    assert row.next_attempt_at > datetime.now(timezone.utc)
    # enrolment is idempotent per enrolment: one welcome each, however often it drains
    stack.cli("dispatcher", "--once")
    assert len(stack.twilio.sent_to(day)) == 1


def test_quit_inside_an_exercise_leaves_it_without_opting_out(stack, in_stack_db) -> None:  # noqa: F811
    phone = "+14155558306"
    patient_id = enroll(stack, phone)
    assert reply_to(stack, phone, "BREATHE")[0].startswith("Belly breathing (about 3 min)")
    assert "Reply OK when you're settled" in reply_to(stack, phone, "no")[0]
    left = reply_to(stack, phone, "QUIT")
    assert len(left) == 1 and "stopped the exercise" in left[0]
    assert "reply STOP" in left[0] and "SKIP" in left[0]
    with new_session() as session:
        assert session.get(Patient, patient_id).sms_opted_out is False
        assert session.execute(select(Escalation).where(
            Escalation.patient_id == patient_id)).first() is None
    assert "BREATHE" in reply_to(stack, phone, "MENU")[0]  # texts still reach the patient


def test_stop_puts_an_opted_out_task_in_the_nurse_queue(stack, in_stack_db) -> None:  # noqa: F811
    phone = "+14155558307"
    patient_id = enroll(stack, phone)
    assert reply_to(stack, phone, "STOP") == []  # Twilio itself confirms an opt-out
    record = stack.show(patient_id)
    assert [(e["tier"], e["status"]) for e in record["escalations"]] == [("routine", "open")]
    assert "Opted out of monitoring" in record["escalations"][0]["reasons"][0]
    with new_session() as session:
        task = session.execute(select(Escalation).where(
            Escalation.patient_id == patient_id)).scalars().one()
    assert task.kind == "opted_out"
