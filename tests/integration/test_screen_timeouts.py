"""The screen-timeout job in the real `painpath scheduler` process: a screen with no
reply by its due time pages once and tells the patient once, also when the
scheduler is killed and started again."""
from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select, text

from painpath import screening
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll, ensure_clinic
from painpath.migrate import upgrade
from painpath.models import Clinician, Escalation, SafetyScreen, utcnow
from scheduler.service import SCREENS_JOB_ID, SCREENS_SECONDS
from tests.fakes.fake_twilio import FakeTwilio
from tests.integration.test_scheduler_restart import start_scheduler

NURSE = "+14155550177"
PHONE = "+14155550119"
INTERVAL = timedelta(seconds=SCREENS_SECONDS)


def job_next_run(url: str) -> datetime | None:
    """When the scheduler will next run the screen-timeout job (its job store row)."""
    with new_session(url) as session:
        value = session.execute(text("SELECT next_run_time FROM apscheduler_jobs WHERE id = :id"),
                                {"id": SCREENS_JOB_ID}).scalar()
    return datetime.fromtimestamp(value, timezone.utc) if value is not None else None


def wait_until(condition, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_a_timed_out_screen_pages_once_across_a_restart(tmp_path: Path) -> None:
    twilio = FakeTwilio().start()
    url = f"sqlite:///{tmp_path / 'pp.db'}"
    upgrade(url)
    env = {**twilio.env(), "DATABASE_URL": url, "PAINPATH_SECRET_KEY": "k",
           "PUBLIC_BASE_URL": "http://127.0.0.1:9", "RASA_URL": "http://127.0.0.1:9"}
    with new_session(url) as session, session.begin():
        clinic = ensure_clinic(session, "t", "Timeout Clinic")
        session.add(Clinician(clinic_id=clinic.id, name="P", phone=NURSE, on_call="primary"))
        patient = enroll(session, EnrollmentRequest(
            clinic_slug="t", phone=PHONE, procedure="scs_trial",
            procedure_at="2030-01-01T09:00:00Z"))  # no check-in due during the test
        screening.ask(session, patient.id, "chest", "none", now=utcnow() - timedelta(minutes=11))
        patient_id = patient.id
    log = tmp_path / "scheduler.log"
    first = start_scheduler(env, log)
    second = None
    try:
        twilio.wait_for_count(NURSE, 1, timeout=90)
        told = twilio.wait_for_count(PHONE, 2)  # the welcome at enrolment, then the net
        assert "call 911" in told[-1].body
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        restarted = utcnow()
        second = start_scheduler(env, log)
        # the new process schedules its first run a full interval after it starts (the
        # old one's next run was due earlier); once that run is done, the next moves on
        wait_until(lambda: (job_next_run(url) or restarted) >= restarted + INTERVAL)
        first_run = job_next_run(url)
        assert first_run is not None
        wait_until(lambda: (job_next_run(url) or first_run) > first_run + timedelta(seconds=1))
        assert len(twilio.sent_to(NURSE)) == 1 and len(twilio.sent_to(PHONE)) == 2
        with new_session(url) as session:
            esc = session.execute(select(Escalation)).scalar_one()
            assert (esc.tier, esc.reasons) == ("emergency", ["screen chest: no reply within 10 min"])
            row = session.execute(select(SafetyScreen)).scalar_one()
            assert (row.patient_id, row.status, row.escalation_id) == (patient_id, "timeout", esc.id)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        twilio.stop()
        print(log.read_text(errors="replace")[-3000:])
