"""Due check-ins start once, the overtaken ones are missed, quiet hours defer."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.models import CheckIn
from painpath.scheduling import in_quiet_hours, next_window_open, start_due_checkins


def enrolled(clinic: str, tz: str = "America/Chicago") -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550114", procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:00:00-06:00", timezone=tz, baseline_pain=5)).id


def statuses(patient_id: str) -> dict[str, str]:
    with new_session() as session:
        rows = session.execute(select(CheckIn).where(CheckIn.patient_id == patient_id)).scalars()
        return {c.key: c.status for c in rows}


def test_due_checkin_starts_once_and_older_ones_are_missed(clinic: str) -> None:
    patient_id = enrolled(clinic)
    calls: list[str] = []
    now = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)  # 10:00 in Chicago, day 4
    result = start_due_checkins(now, starter=calls.append)
    assert calls == [patient_id]
    assert statuses(patient_id) == {"6h": "missed", "1d": "missed", "4d": "starting",
                                    "7d": "scheduled", "14d": "scheduled", "21d": "scheduled"}
    assert len(result.started) == 1 and len(result.missed) == 2
    # a second sweep (or a sweep after a restart) starts nothing again
    assert start_due_checkins(now, starter=calls.append).started == []
    assert calls == [patient_id]


def test_quiet_hours_defer_until_the_window_opens(clinic: str) -> None:
    patient_id = enrolled(clinic)
    night = datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc)  # 22:00 in Chicago
    calls: list[str] = []
    result = start_due_checkins(night, starter=calls.append)
    assert calls == [] and len(result.deferred) == 1
    assert next_window_open(night, "America/Chicago") == datetime(
        2026, 11, 24, 14, 0, tzinfo=timezone.utc)
    assert in_quiet_hours(night, "America/Chicago")
    assert not in_quiet_hours(datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc), "America/Chicago")


def test_a_failed_start_is_retried_next_sweep(clinic: str) -> None:
    patient_id = enrolled(clinic)
    now = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)

    def broken(_: str) -> None:
        raise RuntimeError("Rasa is down")

    assert start_due_checkins(now, starter=broken).started == []
    assert statuses(patient_id)["4d"] == "scheduled"
    assert len(start_due_checkins(now, starter=lambda _: None).started) == 1


def test_one_reminder_after_four_quiet_hours_never_at_night(clinic: str) -> None:
    from datetime import timedelta

    from painpath.messaging import ConsoleGateway, set_gateway
    from painpath.models import Message
    from painpath.scheduling import send_reminders

    set_gateway(ConsoleGateway())
    patient_id = enrolled(clinic)
    started = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)  # 09:00 in Chicago
    with new_session() as session, session.begin():
        checkin = session.execute(select(CheckIn).where(CheckIn.key == "4d")).scalar_one()
        checkin.status, checkin.started_at = "in_progress", started
    assert send_reminders(started + timedelta(hours=3)) == []
    assert len(send_reminders(started + timedelta(hours=4, minutes=1))) == 1
    assert send_reminders(started + timedelta(hours=6)) == []  # only one
    with new_session() as session:
        bodies = [m.body for m in session.execute(select(Message)).scalars()
                  if m.purpose != "welcome"]
    assert len(bodies) == 1 and "still open" in bodies[0]
    # a paused one whose 4 hours end at night waits for the morning
    with new_session() as session, session.begin():
        checkin = session.execute(select(CheckIn).where(CheckIn.key == "7d")).scalar_one()
        checkin.status, checkin.started_at = "paused", started + timedelta(hours=9)  # 18:00
    night = started + timedelta(hours=13, minutes=30)  # 22:30 in Chicago
    assert send_reminders(night) == []
    morning = started + timedelta(hours=23, minutes=30)  # 08:30 next day
    assert len(send_reminders(morning)) == 1


def test_clinic_send_window_and_daily_cap(clinic: str) -> None:
    from painpath.models import Clinic

    patient_id = enrolled(clinic)
    with new_session() as session, session.begin():
        c = session.execute(select(Clinic)).scalar_one()
        c.send_from, c.send_until, c.daily_contact_cap = "10:00", "18:00", 1
    nine = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)  # 09:00 in Chicago
    assert start_due_checkins(nine, starter=lambda _: None).started == []
    ten = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)
    assert len(start_due_checkins(ten, starter=lambda _: None).started) == 1
    with new_session() as session, session.begin():  # the patient finished it
        started = session.execute(select(CheckIn).where(CheckIn.status == "starting")).scalar_one()
        started.status = "completed"
        later = session.execute(select(CheckIn).where(CheckIn.key == "7d")).scalar_one()
        later.due_at = ten  # another one due the same day
    assert start_due_checkins(ten.replace(hour=20), starter=lambda _: None).started == []  # cap
    next_day = datetime(2026, 11, 25, 16, 0, tzinfo=timezone.utc)
    assert len(start_due_checkins(next_day, starter=lambda _: None).started) == 1
    assert statuses(patient_id)["7d"] == "starting"


def test_opted_out_patients_are_not_started(clinic: str) -> None:
    from painpath.models import Patient

    patient_id = enrolled(clinic)
    with new_session() as session, session.begin():
        session.get(Patient, patient_id).sms_opted_out = True
    calls: list[str] = []
    now = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)
    assert start_due_checkins(now, starter=calls.append).started == []
    assert calls == []
