"""Deleting a patient leaves nothing that names them (security item 4).

The whole path a real patient takes is played out with the real components: the
dashboard enrols them (an audit entry), their SMS is recorded, a red flag pages the
on-call nurse through the real twilio client (a fake Twilio on loopback), the nurse
ACKs by SMS and gets a confirmation, the admin opens the record, and their Rasa
conversation is stored by the tracker store the deployment runs. Then the admin
deletes the patient from the dashboard, and every column of every row of every table
(Rasa's `events` included) is searched for the patient's id (Rasa's sender id),
number, name, procedure, words and alert text. The same search finds them all
before the deletion, and still finds the other patient after it.

- production: bot/endpoints.production.yml, i.e. PainPath's ResilientSQLTrackerStore
  on PostgreSQL, filled in from the environment as on a Rasa server. PostgreSQL only:
  `make test-pg` runs it (PAINPATH_TEST_DATABASE_URL); the SQLite pass skips it.
- development: bot/endpoints.yml's SQL store on SQLite (`make run`), every pass.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from rasa.core.tracker_store import TrackerStore
from rasa.core.utils import AvailableEndpoints
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.engine import make_url

from painpath import messaging, sms
from painpath.db import new_session
from painpath.escalation import handle_red_flag
from painpath.models import AuditLog, Escalation, Patient
from painpath.privacy import PSEUDONYM_PREFIX, TrackerStoreUnavailable, audit_pseudonym
from painpath.settings import get_settings
from painpath.triage import triage
from painpath.weblink import chat_url
from tests.conftest import PG_URL
from tests.fakes.fake_twilio import FakeTwilio
from tests.unit.test_dashboard import add_clinician, csrf_of, login
from web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
NURSE_PHONE = "+14155550177"  # the `clinic` fixture's on-call nurse
PATIENT = {"name": "Rosalind Quixley", "phone": "+14155550163",
           "procedure": "radiofrequency_ablation"}
OTHER = {"name": "Bartholomew Ostrander", "phone": "+14155550164",
         "procedure": "medial_branch_block"}
WORDS = "I cannot feel my legs and I wet myself, zebrafinch"
OTHER_WORDS = "I have a fever of 102 and the site is oozing pus, kingfisher"


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[FakeTwilio]:
    fake = FakeTwilio().start()
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    messaging.set_gateway(None)
    yield fake
    messaging.set_gateway(None)
    fake.stop()


def production_tracker(monkeypatch: pytest.MonkeyPatch) -> TrackerStore:
    """Rasa's tracker store as a production Rasa server builds it from
    bot/endpoints.production.yml, and the same variables in this process (the web app
    of a deployment has them too)."""
    if not PG_URL:
        pytest.skip("PostgreSQL only: set PAINPATH_TEST_DATABASE_URL (make test-pg)")
    url = make_url(PG_URL)
    for key, value in {"TRACKER_DB_HOST": url.host or "127.0.0.1",
                       "TRACKER_DB_PORT": str(url.port or 5432),
                       "TRACKER_DB_NAME": url.database or "",
                       "TRACKER_DB_USER": url.username or "",
                       "TRACKER_DB_PASSWORD": url.password or "",
                       "ACTION_ENDPOINT_URL": "http://127.0.0.1:9/webhook",
                       "ACTION_SERVER_TOKEN": "t" * 32,
                       "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379", "REDIS_PASSWORD": "",
                       "REDIS_LOCK_DB": "7", "REDIS_LOCK_PREFIX": "pp-del",
                       "RASA_ENDPOINTS": "bot/endpoints.production.yml"}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    endpoints = AvailableEndpoints.read_endpoints(str(ROOT / "bot/endpoints.production.yml"))
    store = TrackerStore.create(endpoints.tracker_store, Domain.load(str(ROOT / "bot/domain")))
    assert type(store).__name__ == "ResilientSQLTrackerStore"
    return store


def development_tracker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> TrackerStore:
    """The `make run` tracker store: Rasa's SQL store on a SQLite file."""
    path = tmp_path / "endpoints.yml"
    path.write_text("tracker_store:\n  type: SQL\n  dialect: sqlite\n"
                    f"  db: {tmp_path / 'rasa_tracker.db'}\n")
    monkeypatch.setenv("RASA_ENDPOINTS", str(path))
    get_settings.cache_clear()
    endpoints = AvailableEndpoints.read_endpoints(str(path))
    return TrackerStore.create(endpoints.tracker_store, Domain.load(str(ROOT / "bot/domain")))


@pytest.fixture(params=["production", "development"])
def tracker_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path, twilio: FakeTwilio) -> TrackerStore:
    if request.param == "production":
        return production_tracker(monkeypatch)
    return development_tracker(monkeypatch, tmp_path)


# --------------------------------------------------------------------------- the scan


def database_urls(store: TrackerStore) -> list[str]:
    urls = [get_settings().database_url]
    tracker_url = store.engine.url.render_as_string(hide_password=False)
    if tracker_url != make_url(urls[0]).render_as_string(hide_password=False):
        urls.append(tracker_url)
    return urls


def as_text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def scan(urls: list[str], needles: list[str]) -> dict[str, list[str]]:
    """needle → ["table.column", …] of every cell (any table, any column) holding it."""
    found: dict[str, list[str]] = {n: [] for n in needles}
    for url in urls:
        engine = create_engine(url, future=True)
        try:
            meta = MetaData()
            with engine.connect() as conn:
                meta.reflect(bind=conn)
                for table in meta.sorted_tables:
                    for row in conn.execute(select(table)):
                        for column, value in row._mapping.items():
                            if value is None:
                                continue
                            cell = as_text(value).lower()
                            for needle in needles:
                                if needle.lower() in cell:
                                    found[needle].append(f"{table.name}.{column}")
        finally:
            engine.dispose()
    return found


def needles_of(person: dict[str, str], patient_id: str, words: str) -> list[str]:
    first, last = person["name"].split()
    return [patient_id, person["phone"], person["phone"][2:], person["name"], first, last,
            person["procedure"], words.split(", ")[-1],
            f"patient {first[0]}.{last[0]}."]  # the initials in the alert SMS


# ------------------------------------------------------------------------ the journey


def enrol_from_dashboard(web: TestClient, person: dict[str, str]) -> str:
    page = web.get("/enroll")
    tomorrow = (datetime.now(ZoneInfo("America/Chicago")) + timedelta(days=1)).strftime(
        "%Y-%m-%dT10:00")
    form = {"csrf_token": csrf_of(page.text), "name": person["name"],
            "phone": person["phone"], "timezone": "America/Chicago",
            "procedure": person["procedure"], "procedure_at": tomorrow,
            "baseline_pain": "7", "channel": "sms", "diary_consent": ""}
    resp = web.post("/enroll", data=form, follow_redirects=False)
    assert resp.status_code == 303, resp.text[:500]
    return resp.headers["location"].split("/")[2].split("#")[0]


def record_conversation(store: TrackerStore, patient_id: str, person: dict[str, str],
                        words: str, sid: str) -> None:
    tracker = DialogueStateTracker.from_events(patient_id, [
        ActionExecuted("action_session_start"), SessionStarted(),
        ActionExecuted("action_listen"),
        UserUttered(words, {"name": "report_symptom", "confidence": 1.0},
                    metadata={"message_sid": sid, "procedure": person["procedure"]},
                    input_channel="twilio"),
        ActionExecuted("action_handle_red_flag"),
        BotUttered(f"Thanks {person['name'].split()[0]}, I've alerted your care team."),
    ])
    asyncio.run(store.save(tracker))


def red_flag_pages_the_nurse(patient_id: str, person: dict[str, str], words: str) -> int:
    """What the Twilio channel and the red-flag action do with the patient's SMS."""
    sid = "SM" + secrets.token_hex(16)
    routed = sms.route_inbound(person["phone"], words, sid)
    assert routed.patient_id == patient_id
    flag = triage(words, person["procedure"])
    assert flag.tier in ("emergency", "urgent")
    with new_session() as session, session.begin():
        response = handle_red_flag(session, patient_id, flag.tier, flag.reasons, words)
        assert response.raised is not None
        alerts, replies = list(response.raised.alert_message_ids), response.replies
        escalation_id = response.raised.escalation_id
    messaging.deliver_now(alerts)
    for reply in replies:
        sms.send_to_patient(patient_id, reply)
    return escalation_id


def test_nothing_that_names_the_patient_is_left(
        tracker_store: TrackerStore, twilio: FakeTwilio, clinic: str) -> None:
    add_clinician("test", "ada", role="admin", name="Ada Admin")
    web = TestClient(create_app(get_settings()), base_url="http://testserver")
    assert login(web, username="ada").status_code == 303
    ids = {}
    for person, words in ((PATIENT, WORDS), (OTHER, OTHER_WORDS)):
        pid = ids[person["name"]] = enrol_from_dashboard(web, person)
        escalation_id = red_flag_pages_the_nurse(pid, person, words)
        record_conversation(tracker_store, pid, person, words, "SM" + secrets.token_hex(16))
        with new_session() as session:  # the alert's code, as the page gave it
            code = session.get(Escalation, escalation_id).ack_code
        ack = sms.route_inbound(NURSE_PHONE, f"ACK {escalation_id} {code}",
                                "SM" + secrets.token_hex(16))
        assert ack.patient_id is None and ack.forward_text is None
        chat_url(pid)
        assert web.get(f"/patients/{pid}").status_code == 200  # audited view
    pid, other = ids[PATIENT["name"]], ids[OTHER["name"]]
    alert_text = f"patient {PATIENT['name'][0]}.{PATIENT['name'].split()[1][0]}."
    twilio.wait_for(lambda sent: sum(alert_text in m.body for m in sent) >= 1
                    and sum("Acknowledged alert" in m.body for m in sent) >= 2)
    urls = database_urls(tracker_store)
    mine, theirs = needles_of(PATIENT, pid, WORDS), needles_of(OTHER, other, OTHER_WORDS)
    before = scan(urls, mine + theirs)
    assert all(before.values()), {n: w for n, w in before.items() if not w}  # the scan sees
    assert "events.sender_id" in before[pid]

    page = web.get(f"/patients/{pid}")
    resp = web.post(f"/patients/{pid}/delete",
                    data={"csrf_token": csrf_of(page.text), "confirm": pid})
    assert resp.status_code == 200, resp.text[:500]

    after = scan(urls, mine + theirs)
    left = {n: where for n, where in after.items() if n in mine and where}
    assert not left, f"the deleted patient is still named in {left}"
    assert all(after[n] for n in theirs)  # the other patient is untouched
    assert asyncio.run(tracker_store.retrieve(pid)) is None
    assert asyncio.run(tracker_store.retrieve(other)) is not None
    with new_session() as session:  # the audit trail is kept, under a pseudonym
        kept = session.execute(select(AuditLog.action).where(
            AuditLog.patient_id == audit_pseudonym(pid))).scalars().all()
        assert session.get(Patient, pid) is None
    assert {"enroll", "view_patient", "delete_patient"} <= set(kept)
    assert audit_pseudonym(pid).startswith(PSEUDONYM_PREFIX)


def test_an_unresolvable_production_tracker_store_deletes_nothing(
        database_url: str, clinic: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The web app without the tracker store's variables cannot reach the
    conversation: it refuses, rather than deleting the rest and leaving the
    conversation behind."""
    from painpath.privacy import delete_patient, tracker_store_url
    from tests.unit.test_dashboard import add_patient

    for var in ("TRACKER_DB_HOST", "TRACKER_DB_PORT", "TRACKER_DB_NAME", "TRACKER_DB_USER",
                "TRACKER_DB_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    pid = add_patient("test", PATIENT["phone"], name=PATIENT["name"])
    with pytest.raises(TrackerStoreUnavailable, match="TRACKER_DB_HOST"):
        delete_patient(pid, tracker_url=tracker_store_url("bot/endpoints.production.yml"))
    with pytest.raises(TrackerStoreUnavailable):
        delete_patient(pid, tracker_url="postgresql://nobody@127.0.0.1:1/none")
    with new_session() as session:
        assert session.get(Patient, pid) is not None
    assert os.environ.get("TRACKER_DB_HOST") is None
