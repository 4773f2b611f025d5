"""The outreach hold (painpath/outreach.py): while an emergency or crisis escalation is
open no routine outreach reaches the patient — check-ins, reminders, exercise
prompts, weekly summaries, queued outbox rows — and what was held is recorded and
resumed or skipped when a clinician resolves it. Replies and alerts are never held."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from painpath import channels, outreach, programs, scheduling
from painpath.db import new_session
from painpath.dispatch import drain
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.escalation import acknowledge, raise_flag, resolve
from painpath.messaging import record_outbound, set_gateway
from painpath.models import (
    CheckIn,
    Clinic,
    Clinician,
    Escalation,
    EscalationEvent,
    ExerciseSession,
    Message,
    OutreachHold,
)
from tests.unit.test_escalation_lifecycle import RecordingGateway
from tests.unit.test_programs import run

NOW = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)  # 10:00 in Chicago, day 4
PHONE = "+14155550131"


def enrolled(clinic: str) -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone=PHONE, procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:00:00-06:00", timezone="America/Chicago",
            baseline_pain=5, name="Hana Held")).id


def flag(patient_id: str, tier: str = "emergency", at: datetime = NOW) -> int:
    with new_session() as session, session.begin():
        return raise_flag(session, patient_id, tier, [f"{tier} reason"], text="help",
                          now=at).escalation_id


def nurse_id() -> int:
    with new_session() as session:
        return session.execute(select(Clinician.id)).scalars().first()


def close(escalation_id: int, at: datetime) -> None:
    with new_session() as session, session.begin():
        resolve(session, escalation_id, nurse_id(), "sent_to_ed", now=at)


def statuses(patient_id: str) -> dict[str, str]:
    with new_session() as session:
        rows = session.execute(select(CheckIn).where(CheckIn.patient_id == patient_id)).scalars()
        return {c.key: c.status for c in rows}


def holds(patient_id: str) -> list[tuple[str, str | None]]:
    """(what was held, its outcome) in the order held."""
    with new_session() as session:
        return [(h.detail, h.outcome) for h in session.execute(
            select(OutreachHold).where(OutreachHold.patient_id == patient_id)
            .order_by(OutreachHold.id)).scalars()]


def history(escalation_id: int) -> list[tuple[str, str | None]]:
    with new_session() as session:
        return [(e.action, e.detail) for e in session.execute(
            select(EscalationEvent).where(EscalationEvent.escalation_id == escalation_id)
            .order_by(EscalationEvent.id)).scalars()]


def test_an_open_emergency_holds_due_checkins_until_it_is_resolved(clinic: str) -> None:
    pid = enrolled(clinic)
    eid = flag(pid, at=NOW - timedelta(hours=1))
    calls: list[str] = []
    result = scheduling.start_due_checkins(NOW, starter=calls.append)
    assert calls == [] and result.started == [] and result.missed == []
    # nothing is marked missed while held: it was never sent
    assert statuses(pid)["6h"] == statuses(pid)["1d"] == statuses(pid)["4d"] == "scheduled"
    held = [("check-in 6h", None), ("check-in 1d", None), ("check-in 4d", None)]
    assert holds(pid) == held
    assert [a for a, _ in history(eid)].count("outreach_held") == 3
    # later sweeps and an acknowledgement change nothing: acknowledged is not resolved
    with new_session() as session, session.begin():
        acknowledge(session, eid, nurse_id(), now=NOW + timedelta(minutes=5))
    assert scheduling.start_due_checkins(NOW + timedelta(minutes=30),
                                         starter=calls.append).started == []
    assert calls == [] and holds(pid) == held
    close(eid, NOW + timedelta(hours=1))
    # the latest is resumed, the overtaken ones skipped (missed, but no nurse task:
    # the patient never had them)
    assert holds(pid) == [("check-in 6h", "skipped"), ("check-in 1d", "skipped"),
                          ("check-in 4d", "resumed")]
    assert ("outreach_released", "check-in 6h skipped; check-in 1d skipped; "
                                 "check-in 4d resumed") in history(eid)
    result = scheduling.start_due_checkins(NOW + timedelta(hours=1), starter=calls.append)
    assert calls == [pid] and len(result.started) == 1
    assert statuses(pid)["4d"] == "starting" and statuses(pid)["1d"] == "missed"
    with new_session() as session:
        kinds = session.execute(select(Escalation.kind)).scalars().all()
    assert kinds == ["red_flag"]  # no "missed check-in" task for what was held


@pytest.mark.parametrize("tier,held", [("crisis", True), ("urgent", False), ("routine", False)])
def test_crisis_holds_outreach_but_urgent_and_routine_do_not(clinic: str, tier: str,
                                                             held: bool) -> None:
    pid = enrolled(clinic)
    flag(pid, tier, at=NOW - timedelta(minutes=10))
    calls: list[str] = []
    scheduling.start_due_checkins(NOW, starter=calls.append)
    assert calls == ([] if held else [pid])


def test_a_held_checkin_whose_moment_passed_is_skipped(clinic: str) -> None:
    pid = enrolled(clinic)
    eid = flag(pid, at=NOW - timedelta(hours=1))
    scheduling.start_due_checkins(NOW, starter=lambda _: None)
    later = NOW + timedelta(days=2, hours=1)  # the day-4 check-in is 50 h overdue
    close(eid, later)
    assert holds(pid)[-1] == ("check-in 4d", "skipped")
    calls: list[str] = []
    assert scheduling.start_due_checkins(later, starter=calls.append).started == []
    assert calls == [] and statuses(pid)["4d"] == "missed" and statuses(pid)["7d"] == "scheduled"


def test_no_reminder_while_held_then_the_usual_rule(clinic: str) -> None:
    """The review's case: "your check-in is paused… it only takes a minute" four
    hours after a 911 message."""
    set_gateway(RecordingGateway())
    pid = enrolled(clinic)
    with new_session() as session, session.begin():
        checkin = session.execute(select(CheckIn).where(CheckIn.key == "4d")).scalar_one()
        checkin.status, checkin.started_at = "paused", NOW
    eid = flag(pid, at=NOW + timedelta(minutes=10))
    assert scheduling.send_reminders(NOW + timedelta(hours=4, minutes=1)) == []
    assert scheduling.send_reminders(NOW + timedelta(hours=4, minutes=30)) == []
    assert holds(pid) == [("reminder for check-in 4d", None)]
    with new_session() as session:
        assert session.execute(select(Message).where(
            Message.idempotency_key.like("reminder:%"))).first() is None
    close(eid, NOW + timedelta(hours=5))
    assert holds(pid) == [("reminder for check-in 4d", "resumed")]
    assert len(scheduling.send_reminders(NOW + timedelta(hours=5))) == 1


def test_scheduled_exercise_prompts_wait_while_held(clinic: str) -> None:
    pid = enrolled(clinic)
    with new_session() as session, session.begin():
        row_id = programs.schedule(session, pid, "activation_review", NOW,
                                   {"activity": "a walk"}).id
    eid = flag(pid, at=NOW - timedelta(minutes=5))
    started: list[int] = []
    assert programs.due_sessions(now=NOW, starter=lambda p, s: started.append(s)) == []
    with new_session() as session:
        assert session.get(ExerciseSession, row_id).status == "scheduled"
    assert holds(pid) == [("exercise prompt (activation_review)", None)]
    close(eid, NOW + timedelta(hours=1))
    assert holds(pid) == [("exercise prompt (activation_review)", "resumed")]
    assert programs.due_sessions(now=NOW + timedelta(hours=1),
                                 starter=lambda p, s: started.append(s)) == [row_id]


def test_weekly_summary_waits_while_held(clinic: str) -> None:
    set_gateway(RecordingGateway())
    pid = enrolled(clinic)
    run(pid, "breathing", ["no", "ok", "7", "ok", "done", "3"], now=NOW)
    week = NOW + timedelta(days=7, minutes=1)
    eid = flag(pid, "crisis", at=week - timedelta(hours=2))
    assert programs.send_weekly_summaries(now=week) == []
    assert holds(pid) == [("weekly summary", None)]
    close(eid, week + timedelta(hours=1))
    assert programs.send_weekly_summaries(now=week + timedelta(hours=1)) == [pid]


def test_the_dispatcher_holds_queued_outreach_but_never_replies_or_alerts(clinic: str) -> None:
    gateway = RecordingGateway()
    set_gateway(gateway)
    pid = enrolled(clinic)
    with new_session() as session, session.begin():
        queued = record_outbound(session, to=PHONE, body="Hi, time for your check-in.",
                                 patient_id=pid, idempotency_key="checkin-start:1:0",
                                 purpose=outreach.OUTREACH).id
        record_outbound(session, to=PHONE, body="A reply to the patient.", patient_id=pid)
    eid = flag(pid, at=NOW)  # its page to the nurse is queued in the same way
    drain(gateway=gateway, now=NOW + timedelta(minutes=1))
    bodies = [body for _, body in gateway.sent]
    assert "Hi, time for your check-in." not in bodies
    assert "A reply to the patient." in bodies
    assert any(b.startswith(f"PainPath alert #{eid}: EMERGENCY") for b in bodies)
    assert any(b.startswith("Welcome to Test Pain Clinic") for b in bodies)  # not outreach
    with new_session() as session:
        assert session.get(Message, queued).status == "held"
    assert holds(pid) == [(f"queued message #{queued}", None)]
    close(eid, NOW + timedelta(hours=1))
    assert holds(pid) == [(f"queued message #{queued}", "skipped")]  # never sent late
    assert drain(gateway=gateway, now=NOW + timedelta(hours=2)) == []


def test_starting_a_checkin_by_hand_is_refused_while_held(clinic: str) -> None:
    pid = enrolled(clinic)
    eid = flag(pid, at=NOW)
    with pytest.raises(LookupError, match=f"held while escalation #{eid} is open"):
        scheduling.start_checkin_queued(pid)
    with pytest.raises(LookupError, match="held"):
        channels.start_checkin(pid)
    with pytest.raises(LookupError, match="held"):
        scheduling.trigger_and_record(pid, "EXTERNAL_start_exercise", {}, key_prefix="x")


def test_a_resolution_made_elsewhere_is_released_by_the_next_sweep(clinic: str) -> None:
    pid = enrolled(clinic)
    eid = flag(pid, at=NOW - timedelta(hours=1))
    scheduling.start_due_checkins(NOW, starter=lambda _: None)
    with new_session() as session, session.begin():
        session.execute(update(Escalation).where(Escalation.id == eid).values(status="resolved"))
    calls: list[str] = []
    scheduling.start_due_checkins(NOW + timedelta(minutes=1), starter=calls.append)
    assert calls == [pid] and holds(pid)[-1] == ("check-in 4d", "resumed")


def test_the_hold_lasts_until_the_last_open_emergency_or_crisis_is_resolved(clinic: str) -> None:
    pid = enrolled(clinic)
    first = flag(pid, "emergency", at=NOW - timedelta(hours=2))
    second = flag(pid, "crisis", at=NOW - timedelta(hours=1))
    scheduling.start_due_checkins(NOW, starter=lambda _: None)
    close(first, NOW + timedelta(minutes=10))
    assert all(outcome is None for _, outcome in holds(pid))  # the crisis still holds
    calls: list[str] = []
    assert scheduling.start_due_checkins(NOW + timedelta(minutes=11),
                                         starter=calls.append).started == []
    close(second, NOW + timedelta(minutes=20))
    assert holds(pid)[-1] == ("check-in 4d", "resumed")
    scheduling.start_due_checkins(NOW + timedelta(minutes=21), starter=calls.append)
    assert calls == [pid]


def test_the_send_window_and_when_it_opens(clinic: str) -> None:
    with new_session() as session, session.begin():
        c = session.execute(select(Clinic)).scalar_one()
        c.send_from, c.send_until = "10:00", "18:00"
        session.flush()
        night = datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc)  # 22:00 Chicago
        assert outreach.window_opens(night, "America/Chicago", c) == datetime(
            2026, 11, 24, 16, 0, tzinfo=timezone.utc)  # 10:00 the next morning
        early = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)  # 09:00
        assert outreach.window_opens(early, "America/Chicago", c) == NOW
        assert outreach.window_opens(NOW, "America/Chicago", c) == NOW  # inside: now
        c.send_from, c.send_until = "20:00", "06:00"  # an overnight window
        assert outreach.window_opens(NOW, "America/Chicago", c) == datetime(
            2026, 11, 25, 2, 0, tzinfo=timezone.utc)  # 20:00 the same day
