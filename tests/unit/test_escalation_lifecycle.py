"""The closed loop with a fake clock: page, re-page, acknowledge, resolve, overdue calls,
ACK by SMS, retries with backoff."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.escalation import (TransitionError, acknowledge, raise_flag, repage_due, resolve)
from painpath.messaging import SendResult, retry_due, set_gateway
from painpath.models import Clinic, Clinician, Escalation, EscalationEvent, Message
from painpath.sms import route_inbound

T0 = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)  # 10:00 in Chicago
PRIMARY, BACKUP, FALLBACK = "+14155550177", "+14155550178", "+14155550179"


class RecordingGateway:
    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail_first = fail_first

    def send(self, to: str, body: str, from_: str | None = None) -> SendResult:
        if self.fail_first:
            self.fail_first -= 1
            return SendResult(sid=None, status="failed", error="20500: boom", error_code=20500)
        self.sent.append((to, body))
        return SendResult(sid=f"SM{len(self.sent)}", status="queued")


@pytest.fixture
def gateway() -> RecordingGateway:
    gw = RecordingGateway()
    set_gateway(gw)
    return gw


@pytest.fixture
def patient_id(clinic: str) -> str:
    with new_session() as session, session.begin():
        c = session.execute(select(Clinic)).scalar_one()
        c.fallback_phone = FALLBACK
        session.add(Clinician(clinic_id=c.id, name="Bo Backup", phone=BACKUP, on_call="backup"))
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550117", procedure="scs_implant",
            procedure_at="2026-11-20T09:30:00-06:00", name="Ada Byrne")).id


def pages(session) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.to for m in session.execute(
        select(Message).where(Message.body.like("PainPath alert%")).order_by(Message.id)).scalars()]


def test_unacknowledged_emergency_goes_primary_backup_fallback(patient_id: str) -> None:
    with new_session() as session, session.begin():
        raised = raise_flag(session, patient_id, "emergency", ["chest pain"], now=T0)
    with new_session() as session, session.begin():
        assert repage_due(session, T0 + timedelta(minutes=4)) == []
        assert len(repage_due(session, T0 + timedelta(minutes=5))) == 1
        assert len(repage_due(session, T0 + timedelta(minutes=10))) == 1
    with new_session() as session:
        assert pages(session) == [PRIMARY, BACKUP, FALLBACK]
        esc = session.get(Escalation, raised.escalation_id)
        assert esc.page_level == 3 and esc.status == "open"
        assert "not yet acknowledged" in session.execute(
            select(Message.body).where(Message.to == FALLBACK)).scalar_one()


def test_acknowledgement_stops_repaging_and_resolution_is_recorded(patient_id: str) -> None:
    with new_session() as session, session.begin():
        raised = raise_flag(session, patient_id, "urgent", ["fever"], now=T0)
        nurse = session.execute(select(Clinician).where(Clinician.phone == PRIMARY)).scalar_one()
        acknowledge(session, raised.escalation_id, nurse.id, now=T0 + timedelta(minutes=3))
    with new_session() as session, session.begin():
        assert repage_due(session, T0 + timedelta(minutes=45)) == []
        with pytest.raises(TransitionError, match="outcome"):
            resolve(session, raised.escalation_id, nurse.id, "shrugged")
        resolve(session, raised.escalation_id, nurse.id, "called_patient", "advised ED if worse",
                now=T0 + timedelta(minutes=20))
    with new_session() as session:
        esc = session.get(Escalation, raised.escalation_id)
        assert (esc.status, esc.outcome, esc.resolved_by) == ("resolved", "called_patient", nurse.id)
        actions = [e.action for e in session.execute(
            select(EscalationEvent).where(EscalationEvent.escalation_id == esc.id)
            .order_by(EscalationEvent.id)).scalars()]
        assert actions == ["opened", "paged", "acknowledged", "resolved"]
        with pytest.raises(TransitionError, match="already resolved"):
            acknowledge(session, esc.id, nurse.id)


def test_overdue_promised_call_tells_the_patient_and_repages_once(patient_id: str) -> None:
    with new_session() as session, session.begin():
        raised = raise_flag(session, patient_id, "urgent", ["fever"], now=T0)
        nurse = session.execute(select(Clinician).where(Clinician.phone == PRIMARY)).scalar_one()
        acknowledge(session, raised.escalation_id, nurse.id, now=T0 + timedelta(minutes=1))
    with new_session() as session, session.begin():
        assert repage_due(session, T0 + timedelta(hours=1, minutes=59)) == []
        sent = repage_due(session, T0 + timedelta(hours=2, seconds=1))
        assert len(sent) == 2  # the patient's message and the page
        assert repage_due(session, T0 + timedelta(hours=2, minutes=1)) == []
    with new_session() as session:
        to_patient = session.execute(select(Message).where(  # not the welcome
            Message.to == "+14155550117", Message.purpose.is_(None))).scalar_one()
        assert "hasn't reached you yet" in to_patient.body
        assert pages(session) == [PRIMARY, BACKUP]


def test_first_page_goes_to_whoever_is_on_shift(patient_id: str) -> None:
    with new_session() as session, session.begin():
        primary = session.execute(select(Clinician).where(Clinician.phone == PRIMARY)).scalar_one()
        primary.on_call_start, primary.on_call_end = "08:00", "09:00"  # off shift at 10:00
        raise_flag(session, patient_id, "emergency", ["chest pain"], now=T0)
    with new_session() as session:
        assert pages(session) == [BACKUP]


def test_ack_by_sms_only_from_a_registered_clinician_number(patient_id: str, gateway) -> None:  # type: ignore[no-untyped-def]
    with new_session() as session, session.begin():
        raised = raise_flag(session, patient_id, "emergency", ["chest pain"])
    eid = raised.escalation_id
    # the patient texting "ACK n" is a patient message, not an acknowledgement
    routed = route_inbound("+14155550117", f"ACK {eid}", "SM-a")
    assert routed.patient_id == patient_id and routed.forward_text == f"ACK {eid}"
    # an unknown number
    route_inbound("+14155550999", f"ack {eid}", "SM-b")
    with new_session() as session:
        assert session.get(Escalation, eid).status == "open"
    # the paged nurse, from their registered number, with the alert's code
    # (tests/security/test_ack.py: the code, and who may use it)
    with new_session() as session:
        code = session.get(Escalation, eid).ack_code
    assert route_inbound(PRIMARY, f" ack #{eid} {code} ", "SM-c").patient_id is None
    with new_session() as session:
        esc = session.get(Escalation, eid)
        assert esc.status == "acknowledged"
        assert session.get(Clinician, esc.acknowledged_by).phone == PRIMARY
    assert gateway.sent[-1][0] == PRIMARY and f"Acknowledged alert #{eid}" in gateway.sent[-1][1]


def test_ack_from_another_clinics_nurse_is_refused(patient_id: str, gateway) -> None:  # type: ignore[no-untyped-def]
    from painpath.enrollment import ensure_clinic

    with new_session() as session, session.begin():
        other = ensure_clinic(session, "other", "Other Clinic")
        session.add(Clinician(clinic_id=other.id, name="Ole Other", phone="+14155550188"))
        raised = raise_flag(session, patient_id, "emergency", ["chest pain"])
    route_inbound("+14155550188", f"ACK {raised.escalation_id}", "SM-d")
    with new_session() as session:
        assert session.get(Escalation, raised.escalation_id).status == "open"
    assert "No open alert" in gateway.sent[-1][1]


def test_failed_alert_is_retried_with_backoff(patient_id: str) -> None:
    gw = RecordingGateway(fail_first=1)
    set_gateway(gw)
    from painpath.messaging import deliver

    with new_session() as session, session.begin():
        raised = raise_flag(session, patient_id, "emergency", ["chest pain"])
    deliver(raised.alert_message_ids[0])
    with new_session() as session:
        msg = session.get(Message, raised.alert_message_ids[0])
        assert msg.status == "failed" and msg.next_attempt_at is not None
        due = msg.next_attempt_at
    assert retry_due(now=due - timedelta(seconds=1)) == []
    assert retry_due(now=due + timedelta(seconds=1)) == [raised.alert_message_ids[0]]
    with new_session() as session:
        msg = session.get(Message, raised.alert_message_ids[0])
        assert (msg.status, msg.attempts, msg.next_attempt_at) == ("queued", 2, None)
    assert gw.sent[0][0] == PRIMARY


def test_missed_early_checkin_becomes_a_nurse_task_without_a_page(patient_id: str) -> None:
    from painpath.scheduling import start_due_checkins

    start_due_checkins(datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc), starter=lambda _: None)
    with new_session() as session:
        tasks = session.execute(select(Escalation).where(
            Escalation.kind == "missed_checkin")).scalars().all()
        assert [t.status for t in tasks] == ["open"]
        assert "1d" in tasks[0].reasons[0]
        assert pages(session) == []
