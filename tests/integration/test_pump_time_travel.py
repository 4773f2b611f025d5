"""Time travel across 28 days of an intrathecal pump patient (CLINICAL.md §1.8, §5):
daily then weekly check-ins, the refill reminder a week before the refill date, the
refill recorded by the nurse, the safety check-in 24 h after it, and no missed-refill
question once the refill is done."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import time_machine
from sqlalchemy import select

from painpath import pumps
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.models import CheckIn
from painpath.scheduling import start_due_checkins

CHICAGO = ZoneInfo("America/Chicago")


def test_28_days_of_a_pump_patient_with_a_refill(clinic: str) -> None:
    clock = datetime(2027, 3, 1, 15, 0, tzinfo=timezone.utc)  # 09:00 CST, pump implanted
    with time_machine.travel(clock, tick=False):
        with new_session() as session, session.begin():
            patient_id = enroll(session, EnrollmentRequest(
                clinic_slug=clinic, phone="+14155550161", procedure="intrathecal_pump",
                procedure_at="2027-03-01T09:00:00-06:00", baseline_pain=7, pump_drug="opioid",
                pump_refill_due="2027-03-22")).id
    starts: list[tuple[str, datetime, list[str]]] = []

    def patient_answers(pid: str) -> None:
        """The check-in is started and the patient completes it at once."""
        now = datetime.now(timezone.utc)
        with new_session() as session, session.begin():
            checkin = session.execute(select(CheckIn).where(
                CheckIn.patient_id == pid, CheckIn.status == "starting")).scalar_one()
            checkin.status, checkin.completed_at = "completed", now
            starts.append((checkin.key, now, list(checkin.items)))

    refill_at = datetime(2027, 3, 22, 16, 0, tzinfo=timezone.utc)  # 11:00 CDT, on the day
    end = clock + timedelta(days=28)
    with time_machine.travel(clock, tick=False) as traveller:
        while clock < end:
            if clock == refill_at:  # the nurse records it on the dashboard, with the next date
                with new_session() as session, session.begin():
                    pumps.record_change(session, patient_id, "refill", clock,
                                        next_refill=date(2027, 5, 17))
            start_due_checkins(starter=patient_answers)  # the real clock, travelled
            clock += timedelta(minutes=30)
            traveller.move_to(clock)

    keys = [k for k, _, _ in starts]
    assert len(keys) == len(set(keys)), "a check-in started twice"
    for key, when, _ in starts:
        assert 8 <= when.astimezone(CHICAGO).hour < 21, (key, when)
    started = {k: (when, items) for k, when, items in starts}
    # daily for the first week, then weekly (§5)
    assert {"1d", "2d", "3d", "4d", "5d", "6d", "7d", "14d", "21d"} <= set(started)
    # every check-in: overdose first, then the opioid pump's own withdrawal question
    for key, (_, items) in started.items():
        if key.startswith("pump-due-"):
            continue
        assert items[:2] == ["safety_pump", "safety_pump_opioid_withdrawal"], key
        assert "safety_pump_withdrawal" not in items, key
    # the reminder, 10:00 local a week before the refill date (CDT from 14 March)
    when, items = started["pump-due-20270322"]
    assert when == datetime(2027, 3, 15, 15, 0, tzinfo=timezone.utc)
    assert items == ["pump_refill_reminder"]
    # the safety check-in 24 h after the refill
    when, items = started["pump-refill-202703231600"]
    assert when == refill_at + timedelta(hours=24)
    assert items == ["safety_pump", "safety_pump_opioid_withdrawal", "pain_now"]
    # the refill was done: no missed-refill question; the next refill's reminders wait
    with new_session() as session:
        status = {c.key: c.status for c in session.execute(
            select(CheckIn).where(CheckIn.patient_id == patient_id)).scalars()}
    assert "pump-missed-20270322" not in status
    assert status["pump-due-20270517"] == "scheduled"
    assert status["pump-missed-20270517"] == "scheduled"
