"""What an urgent patient is told, honestly: within the care team's on-call hours who
calls and by when, outside them the clinic's out-of-hours route; always the clinic's
number and 911 if it gets worse. With nobody on shift the clinic's fallback number is
paged, never nobody. Where a clinic sets its number and route: CLI and dashboard."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from painpath import checkins
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.escalation import handle_red_flag, repage_due
from painpath.models import AuditLog, Clinic, Clinician, Escalation, EscalationEvent, Message
from tests.unit.test_cli import run
from tests.unit.test_dashboard import add_clinician, client, count, csrf_of, login  # noqa: F401

DAY = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)  # 10:00 in Chicago
NIGHT = datetime(2026, 11, 25, 4, 0, tzinfo=timezone.utc)  # 22:00 in Chicago
NURSE, FALLBACK = "+14155550177", "+14155550179"  # the conftest clinic's on-call nurse
ROUTE = "call +14155550100 and choose the doctor on call"


@pytest.fixture
def patient_id(clinic: str) -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550151", procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:30:00-06:00", name="Uma Urgent")).id


def configure(start: str | None = None, end: str | None = None, fallback: str | None = None,
              route: str | None = None) -> None:
    """The nurse's on-call hours (clinic time), the fallback number, the route."""
    with new_session() as session, session.begin():
        nurse = session.execute(select(Clinician)).scalars().one()
        nurse.on_call_start, nurse.on_call_end = start, end
        clinic = session.execute(select(Clinic)).scalar_one()
        clinic.fallback_phone, clinic.out_of_hours = fallback, route


def urgent(patient_id: str, now: datetime) -> tuple[str, Escalation]:
    with new_session() as session, session.begin():
        reply = handle_red_flag(session, patient_id, "urgent", ["fever"], "temp 101.5",
                                now=now).replies[0]
    with new_session() as session:
        return reply, session.execute(select(Escalation)).scalars().one()


def pages() -> list[str]:
    with new_session() as session:
        return [m.to for m in session.execute(select(Message).where(
            Message.body.like("PainPath alert%")).order_by(Message.id)).scalars()]


def test_in_hours_a_call_is_promised_by_a_time_with_the_clinic_number(patient_id: str) -> None:
    configure("08:00", "17:00", FALLBACK, ROUTE)
    reply, escalation = urgent(patient_id, DAY)
    assert "a nurse from Test Pain Clinic will call you by 12:00 PM" in reply
    assert "call us at +14155550198" in reply and "call 911" in reply
    assert "off duty" not in reply
    assert escalation.call_by == DAY + timedelta(hours=2)
    assert pages() == [NURSE]


def test_out_of_hours_no_promise_but_the_route_the_number_and_911(patient_id: str) -> None:
    configure("08:00", "17:00", FALLBACK, ROUTE)
    reply, escalation = urgent(patient_id, NIGHT)
    assert "off duty" in reply and "don't wait for a call" in reply
    assert ROUTE in reply and "+14155550198" in reply and "call 911" in reply
    assert "will call you by" not in reply
    assert escalation.call_by is None
    assert pages() == [FALLBACK]  # nobody on shift: the fallback number, not nobody
    with new_session() as session, session.begin():  # no broken promise to apologise for
        repage_due(session, NIGHT + timedelta(hours=3))
        assert not session.execute(select(Message).where(
            Message.body.like("%hasn't reached you%"))).first()


def test_a_shift_ending_before_the_call_by_time_is_out_of_hours(patient_id: str) -> None:
    configure("08:00", "11:00", FALLBACK)  # 10:00 now, the call would be due at 12:00
    reply, escalation = urgent(patient_id, DAY)
    assert escalation.call_by is None and "off duty" in reply
    # no route set: the default names the clinic's after-hours line and urgent care
    assert "call that number for the after-hours line" in reply and "+14155550198" in reply


def test_nobody_on_shift_pages_the_fallback_number(patient_id: str) -> None:
    configure("08:00", "17:00", FALLBACK)
    with new_session() as session, session.begin():
        raised = handle_red_flag(session, patient_id, "emergency", ["chest pain"], "chest",
                                 now=NIGHT).raised
    assert pages() == [FALLBACK]
    with new_session() as session:
        paged = session.execute(select(EscalationEvent).where(
            EscalationEvent.escalation_id == raised.escalation_id,
            EscalationEvent.action == "paged")).scalar_one()
    assert paged.clinician_id is None and paged.detail == "level 1"


def test_nobody_on_shift_and_no_fallback_pages_the_on_call_nurse_anyway(patient_id: str) -> None:
    configure("08:00", "17:00", None)
    with new_session() as session, session.begin():
        handle_red_flag(session, patient_id, "emergency", ["chest pain"], "chest", now=NIGHT)
    assert pages() == [NURSE]  # rather than nobody


def test_a_safety_answer_gets_the_same_honest_reply(clinic: str) -> None:
    local = datetime.now(ZoneInfo("America/Chicago"))
    start, end = (local + timedelta(hours=3)).strftime("%H:00"), \
        (local + timedelta(hours=4)).strftime("%H:00")
    configure(start, end, FALLBACK, ROUTE)  # off shift right now
    with new_session() as session, session.begin():
        patient = enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550152", procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:30:00-06:00"))
        checkin = checkins.next_checkin(session, patient.id)
        checkins.begin(session, checkin)
        reply = checkins.submit(session, checkin.id, "safety_headache", "yes").replies[0]
    assert ROUTE in reply and "+14155550198" in reply and "call 911" in reply


def test_the_cli_sets_the_clinic_number_and_out_of_hours_route(clinic: str, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "clinic", "set", "--clinic", clinic, "--phone", "415 555 0190",
                       "--out-of-hours", f"  {ROUTE}.  ", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["phone"] == "+14155550190" and data["out_of_hours"] == f"{ROUTE}."
    code, _, err = run(capsys, "clinic", "set", "--clinic", clinic, "--out-of-hours", "x" * 161)
    assert code == 2 and "at most 160 characters" in err
    code, _, err = run(capsys, "clinic", "set", "--clinic", clinic, "--out-of-hours",
                       "call " + "the on-call doctor through the hospital switchboard " * 3)
    assert code == 2 and "fit two text messages" in err
    assert run(capsys, "clinic", "set", "--clinic", clinic, "--out-of-hours", "")[0] == 0
    with new_session() as session:
        clinic_row = session.execute(select(Clinic)).scalar_one()
        assert clinic_row.out_of_hours is None and clinic_row.phone == "+14155550190"


def test_a_clinic_admin_sets_them_on_the_roster_page(client: TestClient) -> None:  # noqa: F811
    add_clinician("test", "ada", role="admin", name="Ada Admin")
    assert login(client, username="ada", next_url="/admin/roster").status_code == 303
    page = client.get("/admin/roster")
    assert "What patients are told" in page.text and "call that number" in page.text
    token = csrf_of(page.text)
    bad = client.post("/admin/roster/contact", data={"csrf_token": token, "clinic_phone": "",
                                                      "out_of_hours": "x" * 161})
    assert bad.status_code == 422
    assert 'id="clinic-phone-error"' in bad.text and 'id="out-of-hours-error"' in bad.text
    resp = client.post("/admin/roster/contact",
                       data={"csrf_token": token, "clinic_phone": "(415) 555-0191",
                             "out_of_hours": ROUTE}, follow_redirects=False)
    assert resp.status_code == 303
    with new_session() as session:
        clinic_row = session.execute(select(Clinic)).scalar_one()
    assert (clinic_row.phone, clinic_row.out_of_hours) == ("+14155550191", ROUTE)
    assert count(AuditLog, AuditLog.action == "clinic_contact") == 1
    assert ROUTE in client.get(resp.headers["location"]).text
