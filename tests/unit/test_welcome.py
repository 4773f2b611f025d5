"""The welcome SMS at enrolment (painpath/enrollment.py `queue_welcome`): what it says,
quiet hours (queued for the morning, never lost), once per enrolment, every way of
enrolling (CLI, CSV import, the dashboard's form)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastapi.testclient import TestClient
from sqlalchemy import select

from painpath.db import new_session
from painpath.dispatch import drain
from painpath.enrollment import EnrollmentRequest, enroll, import_csv, queue_welcome
from painpath.messaging import retry_due, set_gateway
from painpath.models import Clinic, Enrollment, Message, Patient
from painpath.protocols import reschedule_patient
from painpath.sms import route_inbound
from painpath.sms_text import segments
from tests.unit.test_escalation_lifecycle import RecordingGateway
from tests.unit.test_web_enroll import client, good_form, nurse_token  # noqa: F401

DAY = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)  # 10:00 in Chicago
NIGHT = datetime(2026, 11, 25, 4, 30, tzinfo=timezone.utc)  # 22:30 in Chicago
MORNING = datetime(2026, 11, 25, 14, 0, tzinfo=timezone.utc)  # 08:00 the next day
PHONE = "+14155550161"


def enrolled(clinic: str, now: datetime, channel: str = "sms", phone: str = PHONE) -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone=phone, procedure="epidural_steroid_injection",
            procedure_at="2026-11-24T09:00:00-06:00", timezone="America/Chicago",
            channel=channel, name="Willa Welcome"), now=now).id


def welcomes(patient_id: str | None = None) -> list[Message]:
    with new_session() as session:
        query = select(Message).where(Message.purpose == "welcome").order_by(Message.id)
        if patient_id is not None:
            query = query.where(Message.patient_id == patient_id)
        return list(session.execute(query).scalars())


def test_the_welcome_says_what_painpath_is_and_when_to_call_911_or_988(clinic: str) -> None:
    gateway = RecordingGateway()
    set_gateway(gateway)
    pid = enrolled(clinic, DAY)
    [welcome] = welcomes(pid)
    body = welcome.body
    assert welcome.status == "queued" and welcome.next_attempt_at is None  # goes at once
    assert body.startswith("Welcome to Test Pain Clinic's follow-up texts")
    for words in ("automated", "not watched around the clock", "emergency call 911",
                  "call or text 988", "+14155550198", "HELP", "STOP to end all texts"):
        assert words in body, words
    assert segments(body) <= 2
    drain(gateway=gateway, now=DAY + timedelta(seconds=5))
    assert gateway.sent == [(PHONE, body)]


def test_at_night_it_waits_for_the_morning_and_is_not_lost(clinic: str) -> None:
    gateway = RecordingGateway()
    set_gateway(gateway)
    pid = enrolled(clinic, NIGHT)
    [welcome] = welcomes(pid)
    assert welcome.next_attempt_at == MORNING  # the send window opens at 08:00
    assert drain(gateway=gateway, now=NIGHT + timedelta(minutes=1)) == []
    assert retry_due(now=MORNING - timedelta(minutes=1), gateway=gateway) == []
    assert gateway.sent == []
    assert drain(gateway=gateway, now=MORNING) == [welcome.id]
    assert drain(gateway=gateway, now=MORNING + timedelta(hours=1)) == []
    assert [to for to, _ in gateway.sent] == [PHONE]


def test_once_per_enrolment(clinic: str) -> None:
    pid = enrolled(clinic, DAY)
    with new_session() as session, session.begin():
        patient = session.get(Patient, pid)
        enrollment = session.execute(select(Enrollment)).scalar_one()
        assert queue_welcome(session, patient, enrollment, DAY) == []  # already written
        reschedule_patient(session, pid, cancel=True)
    enrolled(clinic, DAY + timedelta(days=1))  # a new enrolment is welcomed again
    assert len(welcomes(pid)) == 2
    assert len({m.idempotency_key for m in welcomes(pid)}) == 2


def test_web_chat_patients_get_no_welcome_sms(clinic: str) -> None:
    enrolled(clinic, DAY, channel="web")
    assert welcomes() == []


def test_a_long_clinic_name_makes_two_short_messages(clinic: str) -> None:
    with new_session() as session, session.begin():
        session.execute(select(Clinic)).scalar_one().name = (
            "The Northern California Interventional Pain, Spine and Sports Medicine Specialists")
    pid = enrolled(clinic, DAY)
    texts = [m.body for m in welcomes(pid)]
    assert len(texts) == 2 and all(segments(t) <= 2 for t in texts)
    assert "911" in texts[1] and "988" in texts[1] and "STOP" in texts[1]


def test_a_patient_who_opts_out_before_the_morning_is_not_welcomed(clinic: str) -> None:
    gateway = RecordingGateway()
    set_gateway(gateway)
    pid = enrolled(clinic, NIGHT)
    route_inbound(PHONE, "STOP", "SM" + "a" * 32)
    drain(gateway=gateway, now=MORNING)
    assert gateway.sent == []
    assert welcomes(pid)[0].status == "cancelled"


def test_csv_import_welcomes_every_patient(clinic: str) -> None:
    report = import_csv("phone,procedure,procedure_at\n"
                        "+14155550162,facet_injection,2026-11-24T09:00:00-06:00\n"
                        "+14155550163,facet_injection,2026-11-24T09:00:00-06:00\n",
                        clinic, new_session)
    assert len(report["enrolled"]) == 2
    assert sorted(m.to for m in welcomes()) == ["+14155550162", "+14155550163"]


def test_the_dashboard_enrolment_form_welcomes_the_patient(client: TestClient) -> None:  # noqa: F811
    token = nurse_token(client)
    resp = client.post("/enroll", data={"csrf_token": token, **good_form()},
                       follow_redirects=False)
    assert resp.status_code == 303
    [welcome] = welcomes()
    assert welcome.to == "+14155550171" and "988" in welcome.body
