"""Time travel across a whole protocol: every check-in starts once, in the send
window of the patient's own day, across a daylight-saving change, with STOP and START."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import time_machine
from sqlalchemy import select

from painpath import consent
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.models import CheckIn
from painpath.scheduling import start_due_checkins

CHICAGO = ZoneInfo("America/Chicago")


def test_28_days_across_dst_with_stop_and_start(clinic: str) -> None:
    # 14:00 on Thu 29 Oct 2026 in Chicago; DST ends on Sun 1 Nov
    with new_session() as session, session.begin():
        patient_id = enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550151", procedure="epidural_steroid_injection",
            procedure_at="2026-10-29T14:00:00-05:00", baseline_pain=6)).id
    starts: list[tuple[str, datetime]] = []

    def patient_answers(pid: str) -> None:
        """The check-in is started and the patient completes it at once."""
        now = datetime.now(timezone.utc)
        with new_session() as session, session.begin():
            checkin = session.execute(select(CheckIn).where(
                CheckIn.patient_id == pid, CheckIn.status == "starting")).scalar_one()
            checkin.status, checkin.completed_at = "completed", now
            starts.append((checkin.key, now))

    clock = datetime(2026, 10, 29, 19, 0, tzinfo=timezone.utc)
    end = clock + timedelta(days=28)
    stop_at = datetime(2026, 11, 12, 15, 0, tzinfo=timezone.utc)
    start_at = datetime(2026, 11, 19, 15, 0, tzinfo=timezone.utc)
    with time_machine.travel(clock, tick=False) as traveller:
        while clock < end:
            if clock == stop_at:
                with new_session() as session, session.begin():
                    consent.record_opt_out(session, patient_id, source="keyword")
            if clock == start_at:
                with new_session() as session, session.begin():
                    consent.record_opt_in(session, patient_id, source="keyword")
            start_due_checkins(starter=patient_answers)  # the real clock, travelled
            clock += timedelta(minutes=30)
            traveller.move_to(clock)

    keys = [k for k, _ in starts]
    assert len(keys) == len(set(keys)), "a check-in started twice"
    # every start inside 08:00-21:00 of the patient's own day, DST or not
    for key, when in starts:
        assert 8 <= when.astimezone(CHICAGO).hour < 21, (key, when)
    started = dict(starts)
    # 6h after 14:00 CDT is 20:00 CDT (01:00 UTC): inside the window, on time
    assert started["6h"] == datetime(2026, 10, 30, 1, 0, tzinfo=timezone.utc)
    # +4d keeps 14:00 local across the DST change (14:00 CST = 20:00 UTC)
    assert started["4d"] == datetime(2026, 11, 2, 20, 0, tzinfo=timezone.utc)
    assert started["7d"] == datetime(2026, 11, 5, 20, 0, tzinfo=timezone.utc)
    # the 14d check-in fell due while opted out: never sent; after START the next one goes
    with new_session() as session:
        status = {c.key: c.status for c in session.execute(
            select(CheckIn).where(CheckIn.patient_id == patient_id)).scalars()}
    assert "14d" not in started and status["14d"] == "missed"  # a week late: not relevant
    assert started["21d"] == datetime(2026, 11, 19, 20, 0, tzinfo=timezone.utc)
    assert all(s in ("completed", "missed", "scheduled") for s in status.values())
