"""The nurse dashboard (web.dashboard) with FastAPI's TestClient against a real database."""
from __future__ import annotations

import re
from urllib.parse import quote
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import web.dashboard as dashboard
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll, ensure_clinic, get_clinic
from painpath.escalation import raise_flag
from painpath.models import (
    AuditLog,
    Clinician,
    Escalation,
    EscalationEvent,
    Message,
    utcnow,
)
from painpath.settings import load_settings
from web.app import create_app

PASSWORD = "correct horse battery"
XSS = "<script>alert(1)</script>"


def add_clinician(clinic_slug: str, username: str, role: str = "nurse",
                  name: str = "Nora Nurse", active: bool = True) -> int:
    with new_session() as session, session.begin():
        clinic = get_clinic(session, clinic_slug)
        c = Clinician(clinic_id=clinic.id, name=name, phone="+14155550150", role=role,
                      username=username, password_hash=PasswordHasher().hash(PASSWORD),
                      active=active)
        session.add(c)
        session.flush()
        return c.id


def add_patient(clinic_slug: str, phone: str, name: str = "Pat Example") -> str:
    with new_session() as session, session.begin():
        patient = enroll(session, EnrollmentRequest(
            clinic_slug=clinic_slug, phone=phone, procedure="epidural_steroid_injection",
            procedure_at=utcnow() - timedelta(days=2), timezone="America/Chicago", name=name))
        return patient.id


def add_flag(patient_id: str, tier: str, text: str = "help", minutes_ago: float = 0,
             kind: str = "red_flag") -> int:
    with new_session() as session, session.begin():
        raised = raise_flag(session, patient_id, tier, [f"{tier} reason"], text=text, kind=kind,
                            now=utcnow() - timedelta(minutes=minutes_ago))
        return raised.escalation_id


def escalation(escalation_id: int) -> Escalation:
    with new_session() as session:
        return session.get(Escalation, escalation_id)


def count(model: Any, *where: Any) -> int:
    with new_session() as session:
        return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


@pytest.fixture
def client(database_url: str, clinic: str) -> TestClient:
    return TestClient(create_app(load_settings()), base_url="http://testserver")


def login(client: TestClient, username: str = "nora", password: str = PASSWORD,
          next_url: str = "/queue") -> Any:
    page = client.get(f"/login?next={next_url}")
    assert page.status_code == 200
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_of(page.text), "next": next_url},
                       follow_redirects=False)


@pytest.fixture
def nurse(client: TestClient) -> int:
    nurse_id = add_clinician("test", "nora")
    assert login(client).status_code == 303
    return nurse_id


# ----------------------------------------------------------------- sessions


def test_no_session_redirects_to_login(client: TestClient) -> None:
    for path in ("/", "/queue", "/patients/abc"):
        resp = client.get(path, follow_redirects=False)
        assert resp.status_code == 303
        assert resp.headers["location"].startswith("/login")
    assert client.get("/queue.json").status_code == 401


def test_wrong_password_gives_the_same_error_as_an_unknown_user(client: TestClient) -> None:
    add_clinician("test", "nora")
    wrong = login(client, password="not the password")
    unknown = login(client, username="nobody-here")
    for resp in (wrong, unknown):
        assert resp.status_code == 401
        assert "Wrong username or password." in resp.text
        assert dashboard.SESSION_COOKIE not in resp.cookies
    assert client.get("/queue", follow_redirects=False).status_code == 303
    assert count(AuditLog, AuditLog.action == "login_failed") == 2


def test_login_sets_a_secure_session_and_returns_to_next(client: TestClient) -> None:
    add_clinician("test", "nora")
    resp = login(client, next_url="/queue")
    assert resp.status_code == 303 and resp.headers["location"] == "/queue"
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    queue = client.get("/queue")
    assert queue.status_code == 200
    assert "Nora Nurse" in queue.text
    assert queue.headers["cache-control"] == "no-store"
    assert client.get("/", follow_redirects=False).headers["location"] == "/queue"


def test_secure_cookie_when_the_dashboard_is_served_over_https(database_url: str,
                                                               clinic: str,
                                                               monkeypatch) -> None:
    monkeypatch.setenv("WEB_BASE_URL", "https://care.example.org")
    client = TestClient(create_app(load_settings()), base_url="https://testserver")
    add_clinician("test", "nora")
    resp = login(client)
    assert resp.status_code == 303
    assert "secure" in resp.headers["set-cookie"].lower()


def test_login_needs_the_csrf_token(client: TestClient) -> None:
    add_clinician("test", "nora")
    client.get("/login")
    resp = client.post("/login", data={"username": "nora", "password": PASSWORD},
                       follow_redirects=False)
    assert resp.status_code == 403
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_next_never_leaves_the_site(client: TestClient) -> None:
    add_clinician("test", "nora")
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        client.cookies.clear()
        resp = login(client, next_url=quote(evil, safe=""))
        assert resp.headers["location"] == "/queue"


def test_inactive_clinician_cannot_log_in(client: TestClient) -> None:
    add_clinician("test", "gone", active=False)
    assert login(client, username="gone").status_code == 401


def test_failed_logins_make_that_client_wait(client: TestClient) -> None:
    add_clinician("test", "nora")
    for _ in range(dashboard.LoginThrottle().limit):
        assert login(client, password="guess-guess").status_code == 401
    waiting = login(client)  # the right password, but this client must wait first
    assert waiting.status_code == 429 and int(waiting.headers["retry-after"]) > 0
    assert dashboard.SESSION_COOKIE not in waiting.cookies


def test_logout_ends_the_session_even_for_a_copied_cookie(client: TestClient, nurse: int) -> None:
    stolen = client.cookies.get(dashboard.SESSION_COOKIE)
    page = client.get("/queue")
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    resp = client.post("/logout", data={"csrf_token": csrf_of(page.text)},
                       follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/login"
    assert client.get("/queue", follow_redirects=False).status_code == 303
    client.cookies.set(dashboard.SESSION_COOKIE, stolen)
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_idle_and_absolute_expiry_redirect_to_login(client: TestClient, nurse: int,
                                                    monkeypatch) -> None:
    start = datetime.now(timezone.utc)
    monkeypatch.setattr(dashboard, "_now", lambda: start + timedelta(minutes=20))
    assert client.get("/queue").status_code == 200  # activity: slides the idle timer
    monkeypatch.setattr(dashboard, "_now", lambda: start + timedelta(minutes=45))
    assert client.get("/queue").status_code == 200
    monkeypatch.setattr(dashboard, "_now", lambda: start + timedelta(minutes=80))
    resp = client.get("/queue", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")

    start = start + timedelta(minutes=80)
    monkeypatch.setattr(dashboard, "_now", lambda: start)
    assert login(client).status_code == 303
    for minutes in range(25, 12 * 60, 25):  # busy all day, never idle …
        monkeypatch.setattr(dashboard, "_now", lambda m=minutes: start + timedelta(minutes=m))
        assert client.get("/queue").status_code == 200
    monkeypatch.setattr(dashboard, "_now", lambda: start + timedelta(hours=12, minutes=5))
    assert client.get("/queue", follow_redirects=False).status_code == 303  # … but 12 h is up


def test_queue_polling_does_not_keep_an_idle_session_alive(client: TestClient, nurse: int,
                                                           monkeypatch) -> None:
    start = datetime.now(timezone.utc)
    for minutes in (10, 20, 29):
        monkeypatch.setattr(dashboard, "_now", lambda m=minutes: start + timedelta(minutes=m))
        assert client.get("/queue.json").status_code == 200
    monkeypatch.setattr(dashboard, "_now", lambda: start + timedelta(minutes=31))
    assert client.get("/queue.json").status_code == 401


def test_tampered_cookie_is_refused(client: TestClient, nurse: int) -> None:
    value = client.cookies.get(dashboard.SESSION_COOKIE)
    assert client.get("/queue", follow_redirects=False).status_code == 200
    client.cookies.clear()
    client.cookies.set(dashboard.SESSION_COOKIE,
                       value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert client.get("/queue", follow_redirects=False).status_code == 303


# -------------------------------------------------------------------- queue


def test_queue_is_ordered_by_tier_then_age(client: TestClient, nurse: int) -> None:
    a = add_patient("test", "+14155550111", "Ann Alpha")
    b = add_patient("test", "+14155550112", "Ben Beta")
    urgent_new = add_flag(a, "urgent", minutes_ago=1)
    emergency_new = add_flag(b, "emergency", minutes_ago=2)
    urgent_old = add_flag(b, "urgent", minutes_ago=30)
    crisis = add_flag(a, "crisis", minutes_ago=5)
    emergency_old = add_flag(a, "emergency", minutes_ago=12)
    task = add_flag(a, "routine", kind="missed_checkin", minutes_ago=90)
    noted = add_flag(b, "routine", text="a bit sore", minutes_ago=3)
    done = add_flag(b, "emergency", minutes_ago=60)
    with new_session() as session, session.begin():
        dashboard.resolve(session, done, nurse, "sent_to_ed")

    data = client.get("/queue.json").json()
    assert [i["id"] for i in data["items"]] == [emergency_old, emergency_new, crisis,
                                                urgent_old, urgent_new, task]
    assert [i["id"] for i in data["noted"]] == [noted]
    assert data["items"][0]["waiting_label"] == "waiting 12 min"
    assert data["items"][-1]["kind"] == "missed_checkin"

    html = client.get("/queue").text
    shown = [int(x) for x in re.findall(r'<li class="qitem[^"]*" data-id="(\d+)"', html)]
    assert shown == [emergency_old, emergency_new, crisis, urgent_old, urgent_new, task, noted]
    assert "waiting 30 min" in html


# --------------------------------------------------------- patient + actions


def test_escalation_link_goes_to_the_patient_page_via_login(client: TestClient) -> None:
    add_clinician("test", "nora")
    pid = add_patient("test", "+14155550113")
    eid = add_flag(pid, "emergency")
    resp = client.get(f"/escalations/{eid}", follow_redirects=False)
    assert resp.headers["location"] == f"/login?next=/escalations/{eid}"
    after = login(client, next_url=f"/escalations/{eid}")
    assert after.headers["location"] == f"/escalations/{eid}"
    hop = client.get(after.headers["location"], follow_redirects=False)
    assert hop.headers["location"] == f"/patients/{pid}#escalation-{eid}"


def test_patient_page_shows_the_record_and_is_audited(client: TestClient, nurse: int) -> None:
    pid = add_patient("test", "+14155550114", "Paula Page")
    with new_session() as session, session.begin():
        from painpath.models import Answer, CheckIn

        checkin = session.execute(select(CheckIn).where(CheckIn.patient_id == pid)
                                  .order_by(CheckIn.due_at)).scalars().first()
        checkin.status, checkin.completed_at = "completed", checkin.due_at
        session.add_all([
            Answer(checkin_id=checkin.id, item="pain_now", value=3, raw_text="a 3",
                   status="answered"),
            Answer(checkin_id=checkin.id, item="percent_relief", value=60, raw_text="60%",
                   status="answered"),
            Answer(checkin_id=checkin.id, item="safety_headache", value=None, raw_text="hmm",
                   status="unclear", attempts=2),
            Answer(checkin_id=checkin.id, item="safety_neuro_change", value=0,
                   raw_text="same", status="answered"),
        ])
    resp = client.get(f"/patients/{pid}")
    assert resp.status_code == 200
    html = resp.text
    assert "Paula Page" in html and "Epidural steroid injection" in html
    assert "Pain now" in html and "3 / 10" in html and "Relief since the procedure" in html
    assert "60%" in html
    assert "unclear twice (escalated one tier up)" in html and "Same or better" in html
    assert "<svg" in html and "dot-pain" in html
    assert count(AuditLog, AuditLog.action == "view_patient", AuditLog.patient_id == pid,
                 AuditLog.clinician_id == nurse) == 1


def test_acknowledge_and_resolve(client: TestClient, nurse: int) -> None:
    pid = add_patient("test", "+14155550115")
    eid = add_flag(pid, "emergency", text="cant feel my legs")
    page = client.get(f"/patients/{pid}")
    token = csrf_of(page.text)
    assert f'action="/escalations/{eid}/acknowledge"' in page.text

    resp = client.post(f"/escalations/{eid}/acknowledge", data={"csrf_token": token},
                       follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/patients/{pid}#escalation-{eid}"
    e = escalation(eid)
    assert e.status == "acknowledged" and e.acknowledged_by == nurse
    assert count(EscalationEvent, EscalationEvent.escalation_id == eid,
                 EscalationEvent.action == "acknowledged",
                 EscalationEvent.clinician_id == nurse) == 1
    assert count(AuditLog, AuditLog.action == "acknowledge", AuditLog.patient_id == pid) == 1
    assert client.get("/queue.json").json()["items"][0]["status"] == "acknowledged"

    bad = client.post(f"/escalations/{eid}/resolve",
                      data={"csrf_token": token, "outcome": "made_up"})
    assert bad.status_code == 409 and escalation(eid).status == "acknowledged"

    resp = client.post(f"/escalations/{eid}/resolve",
                       data={"csrf_token": token, "outcome": "sent_to_ed",
                             "note": "Told to go to the ED; husband driving."},
                       follow_redirects=False)
    assert resp.status_code == 303
    e = escalation(eid)
    assert (e.status, e.outcome, e.resolved_by) == ("resolved", "sent_to_ed", nurse)
    assert e.resolution_note == "Told to go to the ED; husband driving."
    assert count(EscalationEvent, EscalationEvent.escalation_id == eid,
                 EscalationEvent.action == "resolved") == 1
    assert count(AuditLog, AuditLog.action == "resolve", AuditLog.patient_id == pid,
                 AuditLog.clinician_id == nurse) == 1
    assert client.get("/queue.json").json()["items"] == []
    page = client.get(f"/patients/{pid}").text
    assert "Sent to the emergency department" in page and "husband driving" in page

    again = client.post(f"/escalations/{eid}/resolve",
                        data={"csrf_token": token, "outcome": "called_patient"})
    assert again.status_code == 409 and "already resolved" in again.text
    assert escalation(eid).outcome == "sent_to_ed"


def test_missing_or_wrong_csrf_is_refused_and_changes_nothing(client: TestClient,
                                                              nurse: int) -> None:
    pid = add_patient("test", "+14155550116")
    eid = add_flag(pid, "urgent")
    events = count(EscalationEvent)
    for data in ({}, {"csrf_token": "forged"}):
        assert client.post(f"/escalations/{eid}/acknowledge", data=data).status_code == 403
        assert client.post(f"/escalations/{eid}/resolve",
                           data={**data, "outcome": "called_patient"}).status_code == 403
    e = escalation(eid)
    assert e.status == "open" and e.acknowledged_at is None
    assert count(EscalationEvent) == events
    assert count(AuditLog, AuditLog.action.in_(("acknowledge", "resolve"))) == 0


def test_another_clinics_nurse_gets_404(client: TestClient) -> None:
    with new_session() as session, session.begin():
        ensure_clinic(session, "other", "Other Clinic")
    add_clinician("other", "otto", name="Otto Other")
    pid = add_patient("test", "+14155550117")
    eid = add_flag(pid, "emergency")
    assert login(client, username="otto").status_code == 303
    token = csrf_of(client.get("/queue").text)
    assert client.get(f"/patients/{pid}").status_code == 404
    assert client.get(f"/escalations/{eid}", follow_redirects=False).status_code == 404
    assert client.post(f"/escalations/{eid}/acknowledge",
                       data={"csrf_token": token}).status_code == 404
    assert client.post(f"/escalations/{eid}/resolve",
                       data={"csrf_token": token, "outcome": "called_patient"}).status_code == 404
    assert escalation(eid).status == "open"
    assert client.get("/queue.json").json()["items"] == []
    assert count(AuditLog, AuditLog.patient_id == pid) == 0


def test_patient_text_is_escaped(client: TestClient, nurse: int) -> None:
    pid = add_patient("test", "+14155550118", name=f"Eve {XSS}")
    with new_session() as session, session.begin():
        session.add(Message(patient_id=pid, direction="in", channel="sms",
                            from_="+14155550118", to="+14155550100", body=f"hi {XSS}",
                            status="received"))
    add_flag(pid, "urgent", text=f"fever {XSS}")
    for html in (client.get(f"/patients/{pid}").text, client.get("/queue").text):
        assert XSS not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # the JSON carries the raw text; dashboard.js inserts it with textContent only
    item = client.get("/queue.json").json()["items"][0]
    assert item["text"] == f"fever {XSS}"
    js = (dashboard.Path(dashboard.__file__).parent / "static" / "dashboard.js").read_text()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js


def test_admin_role_can_work_the_queue(client: TestClient) -> None:
    add_clinician("test", "ada", role="admin", name="Ada Admin")
    pid = add_patient("test", "+14155550119")
    add_flag(pid, "crisis")
    assert login(client, username="ada").status_code == 303
    html = client.get("/queue").text
    assert "Clinic admin" in html and "Crisis" in html


def test_patient_page_shows_self_management_progress_escaped(client: TestClient, nurse: int) -> None:
    from painpath import programs
    from painpath.models import ExerciseSession

    patient_id = add_patient("test", "+14155550166")
    with new_session() as session, session.begin():
        row = programs.start(session, patient_id, "thought_record")
        for reply in ("no", "at work", "<script>alert(1)</script> it never ends", "70",
                      "months of this", "I had a good day on Friday",
                      "Even though it's hard, I've had better days", "40"):
            programs.advance(session, row.id, reply)
        setup = programs.start(session, patient_id, "pacing_setup")
        for reply in ("no", "ok", "2", "20"):
            programs.advance(session, setup.id, reply)
        assert session.get(ExerciseSession, row.id).status == "completed"
    html = client.get(f"/patients/{patient_id}").text
    assert "Self-management" in html and "Thought record ×1" in html
    assert "Activity pacing: standing" in html and "being measured" in html
    assert "Even though it&#39;s hard" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_a_form_with_a_nul_is_refused_not_stored(client: TestClient, nurse: int) -> None:
    """PostgreSQL cannot store NUL in text: a note with one is refused with 400 on every
    database (it used to be a 500 on PostgreSQL), and the escalation stays open."""
    pid = add_patient("test", "+14155550116")
    eid = add_flag(pid, "urgent", text="fever since last night")
    token = csrf_of(client.get(f"/patients/{pid}").text)
    for note in ("called back\x00", "%00 in the middle"):
        raw = f"csrf_token={token}&outcome=called_patient&note=" + (
            "called%20back%00" if "\x00" in note else "%2500%20kept")
        resp = client.post(f"/escalations/{eid}/resolve", content=raw.encode(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"},
                           follow_redirects=False)
        if "\x00" in note:
            assert resp.status_code == 400 and escalation(eid).status == "open"
        else:  # "%00" typed as text is sent as %2500: stored as typed
            assert resp.status_code == 303
            assert escalation(eid).resolution_note == "%00 kept"


def test_a_nul_split_across_body_chunks_is_still_found() -> None:
    import asyncio

    from web.limits import BodySizeLimit

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def run(chunks: list[bytes]) -> int:
        pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                   for i, c in enumerate(chunks)]
        sent: list[dict] = []

        async def receive():  # type: ignore[no-untyped-def]
            return pending.pop(0)

        async def send(message):  # type: ignore[no-untyped-def]
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/escalations/1/resolve",
                 "headers": [(b"content-type", b"application/x-www-form-urlencoded")]}
        await BodySizeLimit(app)(scope, receive, send)
        return sent[0]["status"]

    assert asyncio.run(run([b"note=a%0", b"0b"])) == 400
    assert asyncio.run(run([b"note=a%", b"00b"])) == 400
    assert asyncio.run(run([b"note=a%2", b"500"])) == 200  # "%00" typed as text


def test_picture_and_mood_screen_tasks_are_in_the_queue(client: TestClient, nurse: int) -> None:
    """Tasks for the care team that are not red flags still reach the queue: a
    picture nobody can see, a positive PHQ-2 (CLINICAL.md: a routine note)."""
    from painpath.sms import PICTURE_NOTE

    pid = add_patient("test", "+14155550117")
    other = add_patient("test", "+14155550118", name="Moe Mood")
    with new_session() as session, session.begin():
        raise_flag(session, pid, "routine", [PICTURE_NOTE], kind="picture")
        raise_flag(session, other, "routine", ["PHQ-2 score 4 of 6"], kind="mood_screen")
    page = client.get("/queue").text
    assert "Picture sent" in page and "does not show pictures" in page
    assert "Mood screen (PHQ-2)" in page and "PHQ-2 score 4 of 6" in page
    assert len(client.get("/queue.json").json()["items"]) == 2
