"""A patient's data on request: export (JSON) and deletion, in painpath.privacy, the
CLI (`painpath patient export|delete`) and the dashboard (clinic admins only)."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, func, or_, select, text

from painpath import cli
from painpath.db import get_engine, new_session
from painpath.enrollment import ensure_clinic
from painpath.logsafety import RedactPhones, install_phone_redaction
from painpath.models import (
    Answer,
    AuditLog,
    CheckIn,
    Clinician,
    Consent,
    Enrollment,
    Escalation,
    EscalationEvent,
    Message,
    Patient,
)
from painpath.privacy import (
    RETAINED,
    PatientNotFound,
    TrackerStoreUnavailable,
    audit_pseudonym,
    delete_patient,
    delete_tracker,
    export_patient,
    patient_tables,
    tracker_store_url,
)
from tests.unit.test_dashboard import (  # noqa: F401
    add_clinician,
    add_flag,
    add_patient,
    client,
    csrf_of,
    login,
)

PAT_PHONE = "+14155550131"
PAT_NAME = "Priya Private"
PAT_WORDS = "my leg went numb after the shot \U0001F622"
OTHER_PHONE = "+14155550132"
OTHER_NAME = "Olaf Other"
OTHER_WORDS = "feeling fine today"


def seed(phone: str, name: str, words: str, clinic: str = "test") -> str:
    """A patient with a message each way, an answer, a consent event, an escalation
    with its events, an unlinked earlier text from their number and an audit row."""
    pid = add_patient(clinic, phone, name=name)
    with new_session() as session, session.begin():
        checkin = session.execute(select(CheckIn).where(CheckIn.patient_id == pid)
                                  .order_by(CheckIn.due_at)).scalars().first()
        session.add(Answer(checkin_id=checkin.id, item="pain_now", value=6, raw_text=words,
                           status="answered"))
        session.add_all([
            Message(patient_id=pid, direction="in", channel="sms", from_=phone,
                    to="+14155550000", body=words, status="received"),
            Message(patient_id=pid, direction="out", channel="sms", from_="+14155550000",
                    to=phone, body="Thanks, we noted that.", status="delivered"),
            # texted before enrolment: stored without a patient id
            Message(patient_id=None, direction="in", channel="sms", from_=phone,
                    to="+14155550000", body=f"hello? {words}", status="received"),
            Consent(patient_id=pid, kind="sms", event="help", source="keyword"),
            AuditLog(patient_id=pid, action="view_patient", detail=None),
        ])
    add_flag(pid, "urgent", text=words)
    return pid


def rows_of(pid: str) -> dict[str, int]:
    """How many rows each table holds for patient `pid`."""
    with new_session() as session:
        checkins = select(CheckIn.id).where(CheckIn.patient_id == pid)
        escalations = select(Escalation.id).where(Escalation.patient_id == pid)
        counts = {
            "patient": select(func.count()).select_from(Patient).where(Patient.id == pid),
            "enrollment": select(func.count()).select_from(Enrollment)
            .where(Enrollment.patient_id == pid),
            "checkin": select(func.count()).select_from(CheckIn).where(CheckIn.patient_id == pid),
            "answer": select(func.count()).select_from(Answer)
            .where(Answer.checkin_id.in_(checkins)),
            # their own, and the alert pages about them (linked by the escalation)
            "message": select(func.count()).select_from(Message)
            .where(or_(Message.patient_id == pid, Message.escalation_id.in_(escalations))),
            "consent": select(func.count()).select_from(Consent).where(Consent.patient_id == pid),
            "escalation": select(func.count()).select_from(Escalation)
            .where(Escalation.patient_id == pid),
            "escalation_event": select(func.count()).select_from(EscalationEvent)
            .where(EscalationEvent.escalation_id.in_(escalations)),
        }
        return {name: session.execute(q).scalar_one() for name, q in counts.items()}


def unlinked_from(phone: str) -> int:
    with new_session() as session:
        return session.execute(select(func.count()).select_from(Message).where(
            Message.patient_id.is_(None), Message.from_ == phone)).scalar_one()


def audit_rows(action: str) -> list[AuditLog]:
    with new_session() as session:
        return list(session.execute(select(AuditLog).where(AuditLog.action == action)
                                    .order_by(AuditLog.id)).scalars())


@pytest.fixture
def two(clinic: str) -> tuple[str, str]:
    return seed(PAT_PHONE, PAT_NAME, PAT_WORDS), seed(OTHER_PHONE, OTHER_NAME, OTHER_WORDS)


# --------------------------------------------------------------------------- export


def test_export_holds_every_table_of_the_patient_and_nothing_of_another(
        two: tuple[str, str]) -> None:
    pid, other = two
    data = export_patient(pid)
    assert data["format"] == "painpath.patient-export/1"
    assert data["patient"]["id"] == pid and data["patient"]["phone"] == PAT_PHONE
    tables = data["tables"]
    for name in ("enrollment", "checkin", "answer", "message", "consent", "escalation",
                 "escalation_event", "audit_log"):
        assert tables[name], f"{name} missing from the export"
    bodies = {m["body"] for m in tables["message"]}
    assert PAT_WORDS in bodies and f"hello? {PAT_WORDS}" in bodies  # the unlinked text too
    assert tables["answer"][0]["raw_text"] == PAT_WORDS
    assert tables["escalation"][0]["text"] == PAT_WORDS
    assert tables["escalation"][0]["reasons"] == ["urgent reason"]  # JSON stays JSON
    assert tables["checkin"][0]["due_at"].endswith("Z")  # UTC, ISO 8601
    counts = rows_of(pid)
    for name in counts:
        if name != "patient" and name != "message":
            assert len(tables[name]) == counts[name], name
    assert len(tables["message"]) == counts["message"] + 1
    dumped = json.dumps(data, ensure_ascii=False)
    for leak in (other, OTHER_PHONE, OTHER_NAME, OTHER_WORDS):
        assert leak not in dumped


def test_export_is_audited_without_health_information(two: tuple[str, str]) -> None:
    pid, _ = two
    export_patient(pid, clinician_id=None, via="cli")
    (entry,) = audit_rows("export_patient")
    assert entry.patient_id == pid and entry.clinician_id is None
    assert "via cli" in entry.detail
    for phi in (PAT_PHONE, PAT_NAME, PAT_WORDS):
        assert phi not in entry.detail


def test_export_and_delete_are_scoped_to_the_clinic(two: tuple[str, str]) -> None:
    pid, _ = two
    with new_session() as session, session.begin():
        other_clinic = ensure_clinic(session, "elsewhere", "Elsewhere Clinic").id
    with pytest.raises(PatientNotFound):
        export_patient(pid, clinic_id=other_clinic)
    with pytest.raises(PatientNotFound):
        delete_patient(pid, clinic_id=other_clinic)
    with pytest.raises(PatientNotFound):
        export_patient("no-such-patient")
    assert rows_of(pid)["patient"] == 1
    assert audit_rows("export_patient") == [] and audit_rows("delete_patient") == []


# --------------------------------------------------------------------------- delete


def test_delete_removes_every_row_of_the_patient_and_only_theirs(two: tuple[str, str]) -> None:
    pid, other = two
    before_other = rows_of(other)
    before = rows_of(pid)
    assert all(before.values())
    result = delete_patient(pid, via="cli")
    assert rows_of(pid) == {name: 0 for name in before_other}
    assert unlinked_from(PAT_PHONE) == 0
    assert rows_of(other) == before_other and unlinked_from(OTHER_PHONE) == 1
    assert result.rows["patient"] == 1 and result.rows["answer"] == 1
    assert result.rows["message"] == before["message"] + 1  # and the unlinked one
    assert {k: result.rows[k] for k in before} == {**before, "message": before["message"] + 1}
    assert result.tracker_events is None and "not reached" in result.tracker_note


def test_delete_keeps_the_audit_log_and_adds_an_entry_without_phi(
        two: tuple[str, str]) -> None:
    pid, _ = two
    add_clinician("test", "ada", role="admin", name="Ada Admin")
    with new_session() as session:
        ada = session.execute(select(Clinician.id).where(Clinician.username == "ada")
                              ).scalar_one()
    delete_patient(pid, clinician_id=ada, via="dashboard")
    (entry,) = audit_rows("delete_patient")
    # the kept entries carry a keyed pseudonym, not the id (tests/security/test_deletion.py)
    assert entry.patient_id == audit_pseudonym(pid) and entry.clinician_id == ada
    assert "patient 1" in entry.detail and "via dashboard" in entry.detail
    with new_session() as session:
        details = " ".join(a.detail or "" for a in session.execute(select(AuditLog)).scalars())
        kept = session.execute(select(func.count()).select_from(AuditLog).where(
            AuditLog.patient_id == audit_pseudonym(pid),
            AuditLog.action == "view_patient")).scalar_one()
        named = session.execute(select(func.count()).select_from(AuditLog).where(
            AuditLog.patient_id == pid)).scalar_one()
    assert kept == 1 and named == 0  # who saw the record before it was deleted
    for phi in (PAT_PHONE, PAT_NAME, PAT_WORDS, "numb"):
        assert phi not in details


def test_an_unlinked_text_from_a_shared_number_is_not_deleted(clinic: str) -> None:
    with new_session() as session, session.begin():
        ensure_clinic(session, "second", "Second Clinic")
    pid = seed(PAT_PHONE, PAT_NAME, PAT_WORDS)
    seed(PAT_PHONE, "Same Number", "other words", clinic="second")  # same phone, other clinic
    delete_patient(pid)
    assert rows_of(pid)["patient"] == 0
    assert unlinked_from(PAT_PHONE) == 2  # whose they are is unknown: both kept


def test_a_table_added_later_is_exported_and_deleted_without_code_changes(
        two: tuple[str, str]) -> None:
    """A new feature's table (e.g. a pain diary) that references the patient or one of
    their rows is found from the schema."""
    pid, other = two
    engine = get_engine()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE diary_entry (id INTEGER PRIMARY KEY, "
                          "patient_id VARCHAR(32) REFERENCES patient(id), note TEXT)"))
        conn.execute(text("CREATE TABLE diary_tag (id INTEGER PRIMARY KEY, "
                          "entry_id INTEGER REFERENCES diary_entry(id), tag TEXT)"))
        for entry_id, who, note in ((1, pid, "walked 10 min"), (2, other, "swam")):
            conn.execute(text("INSERT INTO diary_entry (id, patient_id, note) "
                              "VALUES (:i, :p, :n)"), {"i": entry_id, "p": who, "n": note})
            conn.execute(text("INSERT INTO diary_tag (id, entry_id, tag) "
                              "VALUES (:i, :i, 'walk')"), {"i": entry_id})
    try:
        data = export_patient(pid)
        assert [r["note"] for r in data["tables"]["diary_entry"]] == ["walked 10 min"]
        assert len(data["tables"]["diary_tag"]) == 1
        result = delete_patient(pid)
        assert result.rows["diary_entry"] == 1 and result.rows["diary_tag"] == 1
        with engine.connect() as conn:
            assert conn.execute(text("SELECT note FROM diary_entry")).scalars().all() == ["swam"]
            assert conn.execute(text("SELECT count(*) FROM diary_tag")).scalar_one() == 1
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE diary_tag"))
            conn.execute(text("DROP TABLE diary_entry"))


def test_every_table_with_patient_rows_in_the_schema_is_covered(two: tuple[str, str]) -> None:
    """Guards the discovery itself against the real, migrated schema."""
    pid, _ = two
    meta = MetaData()
    with get_engine().connect() as conn:
        meta.reflect(bind=conn)
        with new_session() as session:
            patient = session.get(Patient, pid)
        covered = {pt.name for pt in patient_tables(conn, patient)}
    with_patient_id = {t.name for t in meta.sorted_tables if "patient_id" in t.c}
    assert with_patient_id - RETAINED <= covered
    assert {"patient", "answer", "escalation_event"} <= covered
    assert not covered & {"clinic", "clinician", "protocol", "alembic_version"}


# --------------------------------------------------------------------- Rasa tracker


def test_tracker_store_url_from_the_endpoints_file(tmp_path: Path) -> None:
    url = tracker_store_url()  # bot/endpoints.yml: SQLite under var/
    assert url is not None and url.get_backend_name() == "sqlite"
    assert url.database.endswith("var/rasa_tracker.db") and os.path.isabs(url.database)
    pg = tmp_path / "pg.yml"
    pg.write_text("tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: db.internal\n"
                  "  port: 5433\n  db: rasa\n  username: rasa\n  password: ${PP_TEST_PW}\n")
    os.environ["PP_TEST_PW"] = "s3cret"
    try:
        url = tracker_store_url(pg)
    finally:
        del os.environ["PP_TEST_PW"]
    assert (url.get_backend_name(), url.host, url.port, url.database, url.username,
            url.password) == ("postgresql", "db.internal", 5433, "rasa", "rasa", "s3cret")
    redis = tmp_path / "redis.yml"
    redis.write_text("tracker_store:\n  type: redis\n  url: localhost\n")
    assert tracker_store_url(redis) is None
    assert tracker_store_url(tmp_path / "missing.yml") is None
    # the production file with its variables unset here: refused, naming them
    with pytest.raises(TrackerStoreUnavailable, match="TRACKER_DB_HOST"):
        tracker_store_url("bot/endpoints.production.yml")
    resilient = tmp_path / "resilient.yml"
    resilient.write_text("tracker_store:\n  type: bot.painpath_rasa.tracker_store."
                         "ResilientSQLTrackerStore\n  dialect: postgresql\n  url: db.internal\n"
                         "  db: rasa\n")
    assert tracker_store_url(resilient).host == "db.internal"  # PainPath's own SQL store


def test_delete_removes_the_rasa_conversation_from_a_sql_tracker_store(
        two: tuple[str, str], tmp_path: Path) -> None:
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    pid, other = two
    db = tmp_path / "tracker.db"
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(db))
    for sender, words in ((pid, PAT_WORDS), (other, OTHER_WORDS)):
        tracker = DialogueStateTracker.from_events(sender, [
            ActionExecuted("action_listen"), UserUttered(words, {"name": "inform"})])
        asyncio.run(store.save(tracker))
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {db}\n")

    result = delete_patient(pid, tracker_url=tracker_store_url(endpoints))
    assert result.tracker_events == 2 and result.tracker_note == "2 events deleted"
    assert asyncio.run(store.retrieve(pid)) is None
    kept = asyncio.run(store.retrieve(other))
    assert kept is not None and kept.latest_message.text == OTHER_WORDS
    (entry,) = audit_rows("delete_patient")
    assert "rasa conversation: 2 events deleted" in entry.detail


def test_an_unreachable_tracker_store_stops_the_deletion(two: tuple[str, str]) -> None:
    """A deletion that left the conversation behind would look complete: nothing is
    deleted, and the caller is told to try again."""
    pid, _ = two
    with pytest.raises(TrackerStoreUnavailable, match="nothing was deleted"):
        delete_tracker("postgresql://nobody@127.0.0.1:1/none", pid)
    with pytest.raises(TrackerStoreUnavailable):
        delete_patient(pid, tracker_url="postgresql://nobody@127.0.0.1:1/none")
    assert rows_of(pid)["patient"] == 1
    assert audit_rows("delete_patient") == []


# ------------------------------------------------------------------------------ CLI


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_export_to_a_new_private_file(two: tuple[str, str], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    pid, _ = two
    out = tmp_path / "export.json"
    code, stdout, _ = run_cli(capsys, "patient", "export", pid, "--out", str(out), "--json")
    assert code == 0
    assert json.loads(stdout)["out"] == str(out)
    data = json.loads(out.read_text())
    assert data["patient_id"] == pid and data["tables"]["answer"][0]["raw_text"] == PAT_WORDS
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    code, _, err = run_cli(capsys, "patient", "export", pid, "--out", str(out))
    assert code == 2 and "cannot write" in err  # never overwrites
    code, stdout, _ = run_cli(capsys, "patient", "export", pid)  # stdout
    assert code == 0 and json.loads(stdout)["patient"]["name"] == PAT_NAME
    code, _, err = run_cli(capsys, "patient", "export", "nobody")
    assert code == 2 and "no patient" in err


def test_cli_delete_needs_yes(two: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    pid, other = two
    code, _, err = run_cli(capsys, "patient", "delete", pid)
    assert code == 2 and "--yes" in err
    assert rows_of(pid)["patient"] == 1 and audit_rows("delete_patient") == []
    code, stdout, _ = run_cli(capsys, "patient", "delete", pid, "--yes", "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["deleted_rows"]["patient"] == 1 and report["audit_id"]
    assert rows_of(pid)["patient"] == 0 and rows_of(other)["patient"] == 1
    code, _, err = run_cli(capsys, "patient", "delete", pid, "--yes")
    assert code == 2 and "no patient" in err


# ------------------------------------------------------------------------ dashboard


def patient_page(client: TestClient, pid: str) -> str:  # noqa: F811
    page = client.get(f"/patients/{pid}")
    assert page.status_code == 200
    return page.text


@pytest.fixture
def admin(client: TestClient) -> int:  # noqa: F811
    admin_id = add_clinician("test", "ada", role="admin", name="Ada Admin")
    assert login(client, username="ada").status_code == 303
    return admin_id


def test_admin_downloads_the_export(client: TestClient, admin: int,  # noqa: F811
                                    two: tuple[str, str]) -> None:
    pid, _ = two
    html = patient_page(client, pid)
    assert f'action="/patients/{pid}/export"' in html and 'id="patient-data"' in html
    resp = client.post(f"/patients/{pid}/export", data={"csrf_token": csrf_of(html)})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["content-disposition"] == \
        f'attachment; filename="painpath-patient-{pid}.json"'
    assert resp.headers["cache-control"] == "no-store"
    data = resp.json()
    assert data["patient_id"] == pid and data["patient"]["name"] == PAT_NAME
    (entry,) = audit_rows("export_patient")
    assert entry.clinician_id == admin and "via dashboard" in entry.detail


def test_admin_deletes_after_typing_the_id(client: TestClient, admin: int,  # noqa: F811
                                           two: tuple[str, str]) -> None:
    pid, other = two
    token = csrf_of(patient_page(client, pid))
    wrong = client.post(f"/patients/{pid}/delete", data={"csrf_token": token, "confirm": "yes"})
    assert wrong.status_code == 422 and "Nothing was deleted" in wrong.text
    assert rows_of(pid)["patient"] == 1
    done = client.post(f"/patients/{pid}/delete", data={"csrf_token": token, "confirm": pid})
    assert done.status_code == 200 and "Patient data deleted" in done.text
    assert rows_of(pid) == {name: 0 for name in rows_of(pid)}
    assert rows_of(other)["patient"] == 1
    (entry,) = audit_rows("delete_patient")
    assert entry.clinician_id == admin and f"#{entry.id}" in done.text
    assert client.get(f"/patients/{pid}").status_code == 404


def test_a_nurse_gets_403_and_no_controls(client: TestClient,  # noqa: F811
                                          two: tuple[str, str]) -> None:
    pid, _ = two
    add_clinician("test", "nora")
    assert login(client).status_code == 303
    html = patient_page(client, pid)
    assert "/export" not in html and "/delete" not in html and "patient-data" not in html
    token = csrf_of(html)
    assert client.post(f"/patients/{pid}/export", data={"csrf_token": token}).status_code == 403
    assert client.post(f"/patients/{pid}/delete",
                       data={"csrf_token": token, "confirm": pid}).status_code == 403
    assert rows_of(pid)["patient"] == 1
    assert audit_rows("export_patient") == [] and audit_rows("delete_patient") == []


def test_another_clinics_patient_is_404(client: TestClient, admin: int,  # noqa: F811
                                        clinic: str) -> None:
    with new_session() as session, session.begin():
        ensure_clinic(session, "elsewhere", "Elsewhere Clinic")
    theirs = seed(PAT_PHONE, PAT_NAME, PAT_WORDS, clinic="elsewhere")
    mine = add_patient("test", OTHER_PHONE)
    token = csrf_of(patient_page(client, mine))
    assert client.post(f"/patients/{theirs}/export", data={"csrf_token": token}).status_code == 404
    for confirm in (theirs, "wrong"):
        assert client.post(f"/patients/{theirs}/delete",
                           data={"csrf_token": token, "confirm": confirm}).status_code == 404
    assert rows_of(theirs)["patient"] == 1
    assert audit_rows("export_patient") == [] and audit_rows("delete_patient") == []


def test_missing_or_wrong_csrf_is_refused(client: TestClient, admin: int,  # noqa: F811
                                          two: tuple[str, str]) -> None:
    pid, _ = two
    patient_page(client, pid)
    for token in ("", "forged"):
        assert client.post(f"/patients/{pid}/export",
                           data={"csrf_token": token}).status_code == 403
        assert client.post(f"/patients/{pid}/delete",
                           data={"csrf_token": token, "confirm": pid}).status_code == 403
    assert rows_of(pid)["patient"] == 1 and audit_rows("export_patient") == []


def test_signed_out_goes_to_login(client: TestClient, two: tuple[str, str]) -> None:  # noqa: F811
    pid, _ = two
    resp = client.post(f"/patients/{pid}/delete", data={"confirm": pid}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
    assert rows_of(pid)["patient"] == 1


# ---------------------------------------------------------------------- log safety


def test_phone_numbers_are_masked_in_log_lines_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactPhones())
    log = logging.getLogger("test.privacy.redact")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        log.warning("SMS to %s refused", PAT_PHONE)
        try:  # what Twilio's client raises for a bad number
            raise RuntimeError(f"Unable to create record: The 'To' number {PAT_PHONE} is "
                               "not a valid phone number.")
        except RuntimeError:
            log.exception("message 7: gateway error")
        log.info("escalation %s tier=%s", 12, "urgent")  # nothing to mask: unchanged
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert PAT_PHONE not in out and PAT_PHONE[1:] not in out
    assert out.count("+1******0131") == 2
    assert "message 7: gateway error" in out and "Traceback" in out and "RuntimeError" in out
    assert "escalation 12 tier=urgent" in out


def test_redaction_is_installed_on_the_root_handlers_once() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        install_phone_redaction()
        install_phone_redaction()
        assert sum(isinstance(f, RedactPhones) for f in handler.filters) == 1
    finally:
        root.removeHandler(handler)
