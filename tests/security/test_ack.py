"""Acknowledging an alert by SMS (security issue, item 3).

From numbers can be spoofed and alert ids are sequential, so "ACK 12" alone must not
silence the paging ladder. Each alert carries a short random code ("Reply ACK 12
KX7"); an SMS ACK counts only with that code and only from a clinician who was
paged for that alert. Anything else leaves the alert open and is audited. The
dashboard's ACK (a signed-in nurse) is unchanged.
"""
from __future__ import annotations

import re
import secrets
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.escalation import ACK_CODE_ALPHABET, raise_flag
from painpath.messaging import SendResult, set_gateway
from painpath.models import AuditLog, Clinic, Clinician, Escalation, EscalationEvent, Message
from painpath.settings import load_settings
from painpath.sms import route_inbound
from web.app import create_app

PRIMARY, BACKUP = "+14155550177", "+14155550178"  # the conftest clinic's on-call nurse, + backup
PATIENT = "+14155550117"
PASSWORD = "correct horse battery"


class RecordingGateway:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, body: str, from_: str | None = None) -> SendResult:
        self.sent.append((to, body))
        return SendResult(sid="SM" + secrets.token_hex(16), status="queued")


@pytest.fixture
def gateway(clinic: str) -> RecordingGateway:
    gw = RecordingGateway()
    set_gateway(gw)
    return gw


@pytest.fixture
def alert(clinic: str, gateway: RecordingGateway) -> tuple[int, str]:
    """An emergency alert paged to the primary nurse only: (escalation id, its code)."""
    with new_session() as session, session.begin():
        c = session.execute(select(Clinic)).scalar_one()
        session.add(Clinician(clinic_id=c.id, name="Bo Backup", phone=BACKUP, on_call="backup"))
        pid = enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone=PATIENT, procedure="scs_implant",
            procedure_at="2026-11-20T09:30:00-06:00", name="Ada Byrne")).id
        raised = raise_flag(session, pid, "emergency", ["chest pain"])
        page = session.get(Message, raised.alert_message_ids[0])
        assert page.to == PRIMARY
        match = re.search(rf"Reply ACK {raised.escalation_id} ([A-Z0-9]+) ", page.body)
        assert match, page.body
        return raised.escalation_id, match.group(1)


def status(eid: int) -> str:
    with new_session() as session:
        return session.get(Escalation, eid).status


def refusals(eid: int) -> tuple[int, int]:
    """(audit-log rows, escalation-history rows) recording refused SMS ACKs."""
    with new_session() as session:
        audited = session.execute(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "sms_ack_refused", AuditLog.detail.like(f"%#{eid}%"))).scalar_one()
        history = session.execute(select(func.count()).select_from(EscalationEvent).where(
            EscalationEvent.escalation_id == eid,
            EscalationEvent.action == "ack_refused")).scalar_one()
    return audited, history


def sid() -> str:
    return "SM" + secrets.token_hex(16)


def test_the_alert_carries_a_short_random_code(alert: tuple[int, str]) -> None:
    eid, code = alert
    assert len(code) == 3 and set(code) <= set(ACK_CODE_ALPHABET)
    assert not set("0O1I") & set(ACK_CODE_ALPHABET)
    with new_session() as session:
        assert session.get(Escalation, eid).ack_code == code


def test_codes_differ_between_alerts(alert: tuple[int, str]) -> None:
    with new_session() as session, session.begin():
        pid = session.execute(select(Escalation.patient_id)).scalar_one()
        codes = {raise_flag(session, pid, "urgent", [f"r{i}"]).escalation_id for i in range(30)}
        got = {session.get(Escalation, eid).ack_code for eid in codes}
    assert len(got) > 20  # 32**3 codes: 30 draws almost never collide much


def test_a_spoofed_ack_from_an_unpaged_clinician_is_ignored_and_audited(
        alert: tuple[int, str]) -> None:
    eid, code = alert
    # the backup was not paged (yet): even with the right code it is not an ACK
    assert route_inbound(BACKUP, f"ACK {eid} {code}", sid()).patient_id is None
    assert status(eid) == "open"
    assert refusals(eid) == (1, 1)


def test_a_wrong_or_missing_code_leaves_the_alert_open(alert: tuple[int, str],
                                                       gateway: RecordingGateway) -> None:
    eid, code = alert
    wrong = next(c for c in ("ABC", "XYZ") if c != code)
    route_inbound(PRIMARY, f"ACK {eid} {wrong}", sid())
    route_inbound(PRIMARY, f"ACK {eid}", sid())
    assert status(eid) == "open"
    assert refusals(eid) == (2, 2)
    assert "not acknowledged" in gateway.sent[-1][1].lower() and gateway.sent[-1][0] == PRIMARY


def test_the_right_code_from_the_paged_clinician_acknowledges(
        alert: tuple[int, str], gateway: RecordingGateway) -> None:
    eid, code = alert
    assert route_inbound(PRIMARY, f" ack #{eid} {code.lower()} ", sid()).patient_id is None
    with new_session() as session:
        esc = session.get(Escalation, eid)
        assert esc.status == "acknowledged"
        assert session.get(Clinician, esc.acknowledged_by).phone == PRIMARY
    assert gateway.sent[-1][0] == PRIMARY and f"Acknowledged alert #{eid}" in gateway.sent[-1][1]
    assert refusals(eid) == (0, 0)


def test_the_backup_paged_by_the_ladder_may_acknowledge(alert: tuple[int, str]) -> None:
    from painpath.escalation import repage_due
    from painpath.models import utcnow

    eid, code = alert
    with new_session() as session, session.begin():
        repage_due(session, utcnow() + timedelta(minutes=6))  # the backup's page
    route_inbound(BACKUP, f"ACK {eid} {code}", sid())
    assert status(eid) == "acknowledged"


def test_guessing_stops_after_a_few_wrong_codes(alert: tuple[int, str]) -> None:
    eid, code = alert
    wrong = [c for c in ("ABC", "XYZ", "DEF", "GHJ", "KMN", "PQR") if c != code][:5]
    for guess in wrong:
        route_inbound(PRIMARY, f"ACK {eid} {guess}", sid())
    route_inbound(PRIMARY, f"ACK {eid} {code}", sid())
    assert status(eid) == "open"  # the dashboard still works; the ladder keeps paging
    assert refusals(eid) == (6, 6)


def test_the_patient_texting_ack_is_still_a_patient_message(alert: tuple[int, str]) -> None:
    eid, code = alert
    routed = route_inbound(PATIENT, f"ACK {eid} {code}", sid())
    assert routed.patient_id is not None and routed.forward_text == f"ACK {eid} {code}"
    assert status(eid) == "open"


def test_the_dashboard_ack_by_a_signed_in_nurse_still_works(alert: tuple[int, str],
                                                            database_url: str) -> None:
    eid, _ = alert
    with new_session() as session, session.begin():
        c = session.execute(select(Clinic)).scalar_one()
        nurse = Clinician(clinic_id=c.id, name="Nora Nurse", phone="+14155550150",
                          username="nora", password_hash=PasswordHasher().hash(PASSWORD))
        session.add(nurse)
        session.flush()
        nurse_id = nurse.id
    client = TestClient(create_app(load_settings()), base_url="http://testserver")
    page = client.get("/login?next=/queue")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert client.post("/login", data={"username": "nora", "password": PASSWORD,
                                       "csrf_token": token, "next": "/queue"},
                       follow_redirects=False).status_code == 303
    pid = client.get("/queue.json").json()["items"][0]
    page = client.get(f"/escalations/{eid}", follow_redirects=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    resp = client.post(f"/escalations/{eid}/acknowledge", data={"csrf_token": token},
                       follow_redirects=False)
    assert resp.status_code == 303 and pid
    with new_session() as session:
        esc = session.get(Escalation, eid)
        assert esc.status == "acknowledged" and esc.acknowledged_by == nurse_id
