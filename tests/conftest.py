"""Shared fixtures.

- `database_url`: a migrated, empty database per test: SQLite in a temp dir, or
  the PostgreSQL server named by PAINPATH_TEST_DATABASE_URL (`make test-pg`).
- `stack`: the real Rasa server, action server and web app (started once per
  session) on free ports, with a fake Twilio server on 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from painpath import db as pp_db  # noqa: E402
from painpath import messaging  # noqa: E402
from painpath.migrate import upgrade  # noqa: E402
from painpath.settings import get_settings  # noqa: E402
from tests.fakes.fake_twilio import FakeTwilio, sign  # noqa: E402

PG_URL = os.environ.get("PAINPATH_TEST_DATABASE_URL")


def _reset_postgres(url: str) -> None:
    engine = pp_db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Point every `get_settings()` / `new_session()` in this process at `url`."""
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    messaging.set_gateway(None)


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if PG_URL:
        _reset_postgres(PG_URL)
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path / 'test.db'}"
    for var in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER", "TWILIO_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PAINPATH_SECRET_KEY", "test-secret-key")
    use_database(monkeypatch, url)
    upgrade(url)
    yield url
    for engine in list(pp_db._engines.values()):
        engine.dispose()
    pp_db._engines.clear()
    pp_db._factories.clear()
    get_settings.cache_clear()
    messaging.set_gateway(None)


@pytest.fixture
def clinic(database_url: str) -> str:
    """A clinic `test` with an on-call nurse; returns its slug."""
    from painpath.db import new_session
    from painpath.enrollment import ensure_clinic
    from painpath.models import Clinician

    with new_session() as session, session.begin():
        c = ensure_clinic(session, "test", "Test Pain Clinic", phone="+14155550198",
                          tz_name="America/Chicago")
        session.add(Clinician(clinic_id=c.id, name="Olive Oncall", phone="+14155550177",
                              role="nurse", on_call="primary"))
    return "test"


@dataclass
class RunningStack:
    stack: Any
    twilio: FakeTwilio
    database_url: str
    env: dict[str, str]

    @property
    def webhook_url(self) -> str:
        return f"{self.stack.rasa_url}/webhooks/twilio/webhook"

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(Path(sys.executable).parent / "painpath"), *args],
                                cwd=ROOT, env={**os.environ, **self.env}, input=stdin,
                                capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"painpath {' '.join(args)} failed: {result.stderr}")
        return result

    def show(self, patient_id: str) -> dict[str, Any]:
        return json.loads(self.cli("patient", "show", patient_id, "--json").stdout)

    def sms(self, from_number: str, body: str, signature: str | None = None,
            sid: str | None = None) -> httpx.Response:
        """POST an inbound SMS to the webhook as Twilio would, signed unless told otherwise."""
        import secrets

        params = {"From": from_number, "To": self.twilio.from_number, "Body": body,
                  "MessageSid": sid or "SM" + secrets.token_hex(16),
                  "AccountSid": self.twilio.account_sid, "NumMedia": "0"}
        sig = signature if signature is not None else sign(
            self.twilio.auth_token, self.webhook_url, params)
        return httpx.post(self.webhook_url, data=params, headers={"X-Twilio-Signature": sig},
                          timeout=60)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    from stack import Stack, free_port  # tools/stack.py

    tmp = tmp_path_factory.mktemp("stack")
    twilio = FakeTwilio().start()
    url = f"sqlite:///{tmp / 'painpath.db'}"
    upgrade(url)
    rasa_port = free_port()
    env = {**twilio.env(), "DATABASE_URL": url, "PAINPATH_SECRET_KEY": "stack-secret",
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{rasa_port}"}
    st = Stack(env=env, rasa_port=rasa_port, actions_port=free_port(), web_port=free_port(),
               log_dir=tmp, tracker_db=str(tmp / "tracker.db"))
    env["RASA_URL"] = st.rasa_url
    env["WEB_BASE_URL"] = st.web_url
    try:
        st.start()
    except Exception:
        for name in ("actions", "rasa", "web"):
            print(f"--- {name} log ---\n{st.tail(name)}")
        st.stop()
        twilio.stop()
        raise
    running = RunningStack(stack=st, twilio=twilio, database_url=url, env=env)
    running.cli("migrate")
    running.cli("clinician", "add", "--clinic", "e2e", "--name", "x", "--phone", "+14155550101",
                check=False)  # clinic does not exist yet: must fail cleanly
    from painpath.db import new_session
    from painpath.enrollment import ensure_clinic
    from painpath.models import Clinician

    with new_session(url) as session, session.begin():
        c = ensure_clinic(session, "e2e", "E2E Pain Clinic", phone="+14155550198")
        session.add(Clinician(clinic_id=c.id, name="Ned Nurse", phone="+14155550166",
                              role="nurse", on_call="primary"))
    yield running
    st.stop()
    twilio.stop()
