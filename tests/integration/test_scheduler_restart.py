"""Re-page timers survive a SIGKILL of the scheduler: the real `painpath scheduler`
process, the real twilio client and a fake Twilio server on 127.0.0.1."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll, ensure_clinic
from painpath.escalation import raise_flag
from painpath.migrate import upgrade
from painpath.models import Clinician, Escalation, utcnow
from tests.fakes.fake_twilio import FakeTwilio

ROOT = Path(__file__).resolve().parents[2]
BACKUP = "+14155550178"


def start_scheduler(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "painpath"), "scheduler"],
                            cwd=ROOT, env={**os.environ, **env}, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_repage_survives_a_scheduler_kill(tmp_path: Path) -> None:
    twilio = FakeTwilio().start()
    url = f"sqlite:///{tmp_path / 'pp.db'}"
    upgrade(url)
    env = {**twilio.env(), "DATABASE_URL": url, "PAINPATH_SECRET_KEY": "k",
           "PUBLIC_BASE_URL": "http://127.0.0.1:9", "RASA_URL": "http://127.0.0.1:9"}
    with new_session(url) as session, session.begin():
        clinic = ensure_clinic(session, "r", "Restart Clinic")
        clinic.ack_minutes_emergency = 1
        session.add(Clinician(clinic_id=clinic.id, name="P", phone="+14155550177", on_call="primary"))
        session.add(Clinician(clinic_id=clinic.id, name="B", phone=BACKUP, on_call="backup"))
        patient = enroll(session, EnrollmentRequest(
            clinic_slug="r", phone="+14155550118", procedure="scs_trial",
            procedure_at="2030-01-01T09:00:00Z"))  # no check-in due during the test
        # raised 45 s ago: the backup page falls due ~15 s from now
        raised = raise_flag(session, patient.id, "emergency", ["chest pain"],
                            now=utcnow() - timedelta(seconds=45))
    log = tmp_path / "scheduler.log"
    first = start_scheduler(env, log)
    try:
        time.sleep(4)
        os.killpg(first.pid, signal.SIGKILL)  # before the page is due
        first.wait()
        assert twilio.sent_to(BACKUP) == []
        second = start_scheduler(env, log)
        try:
            twilio.wait_for_count(BACKUP, 1, timeout=60)
            time.sleep(20)  # several more job runs: still exactly one backup page
            pages = twilio.sent_to(BACKUP)
            assert len(pages) == 1, [p.body for p in pages]
            assert f"alert #{raised.escalation_id}" in pages[0].body
            with new_session(url) as session:
                esc = session.execute(select(Escalation)).scalar_one()
                assert esc.page_level == 2 and esc.status == "open"
        finally:
            os.killpg(second.pid, signal.SIGINT)
            second.wait(timeout=20)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        twilio.stop()
        print(log.read_text(errors="replace")[-3000:])


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell's background job inherits it


def test_the_scheduler_stops_on_sigint_even_when_it_inherited_it_ignored(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pp.db'}"
    upgrade(url)
    env = {"DATABASE_URL": url, "PAINPATH_SECRET_KEY": "k", "RASA_URL": "http://127.0.0.1:9",
           "PUBLIC_BASE_URL": "http://127.0.0.1:9"}
    log = tmp_path / "scheduler.log"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "painpath"), "scheduler"],
                            cwd=ROOT, env={**os.environ, **env}, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_ignore_sigint)
    try:
        deadline = time.monotonic() + 60
        while "scheduler running" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert "scheduler stopping" in log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
