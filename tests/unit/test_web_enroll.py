"""Enrolment in the dashboard (web/enroll.py): the form, the patient page's
enrolment panel (procedure time, cancel, diary consent) and the diary summary."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import select

from painpath import checkins
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll, ensure_clinic
from painpath.models import AuditLog, CheckIn, Consent, Enrollment, Patient
from tests.unit.test_dashboard import add_clinician, client, count, csrf_of, login  # noqa: F401

CHICAGO = ZoneInfo("America/Chicago")


def tomorrow_local(hour: int = 9, minute: int = 30) -> datetime:
    """Tomorrow at hour:minute in Chicago, naive (as a datetime-local input sends it)."""
    day = (datetime.now(CHICAGO) + timedelta(days=1)).date()
    return datetime(day.year, day.month, day.day, hour, minute)


def good_form(**changes: str) -> dict[str, str]:
    form = {"name": "Mia Block", "phone": "(415) 555-0171", "timezone": "America/Chicago",
            "procedure": "medial_branch_block",
            "procedure_at": tomorrow_local().strftime("%Y-%m-%dT%H:%M"),
            "baseline_pain": "8", "channel": "sms", "diary_consent": "yes"}
    form.update(changes)
    return form


def nurse_token(client: TestClient) -> str:  # noqa: F811
    add_clinician("test", "nora")
    assert login(client).status_code == 303
    page = client.get("/enroll")
    assert page.status_code == 200
    return csrf_of(page.text)


def field_error(html: str, field_id: str) -> str:
    match = re.search(rf'<p class="field-error" id="{field_id}-error">([^<]*)</p>', html)
    assert match, f"no error shown for {field_id}"
    return match.group(1)


def patient_ids() -> list[str]:
    with new_session() as session:
        return list(session.execute(select(Patient.id)).scalars())


def schedule(patient_id: str) -> dict[str, tuple[datetime, str]]:
    with new_session() as session:
        return {c.key: (c.due_at, c.status) for c in session.execute(
            select(CheckIn).where(CheckIn.patient_id == patient_id)).scalars()}


# ------------------------------------------------------------------ the form


def test_signed_out_goes_to_login(client: TestClient) -> None:  # noqa: F811
    resp = client.get("/enroll", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/login?next=/enroll"
    resp = client.post("/enroll", data=good_form(), follow_redirects=False)
    assert resp.status_code == 303 and patient_ids() == []


def test_a_nurse_enrols_a_patient_as_the_cli_would(client: TestClient) -> None:  # noqa: F811
    token = nurse_token(client)
    page = client.get("/queue").text
    assert 'href="/enroll"' in page and 'href="/admin/protocols"' not in page
    resp = client.post("/enroll", data={"csrf_token": token, **good_form()},
                       follow_redirects=False)
    assert resp.status_code == 303
    [patient_id] = patient_ids()
    assert resp.headers["location"] == f"/patients/{patient_id}#enrollment"
    with new_session() as session:
        patient = session.get(Patient, patient_id)
        assert (patient.name, patient.phone, patient.timezone, patient.channel) == (
            "Mia Block", "+14155550171", "America/Chicago", "sms")
        enrollment = session.execute(select(Enrollment)).scalar_one()
        assert enrollment.baseline_pain == 8
        assert enrollment.procedure_at == tomorrow_local().replace(tzinfo=CHICAGO).astimezone(
            timezone.utc)
        kinds = [k for (k,) in session.execute(select(Consent.kind).order_by(Consent.id))]
        assert kinds == ["sms", "diary"]
    # the very schedule `painpath enroll` gives the same request (another clinic)
    with new_session() as session, session.begin():
        ensure_clinic(session, "twin", "Twin Clinic", tz_name="America/Chicago")
        twin = enroll(session, EnrollmentRequest(
            clinic_slug="twin", phone="+14155550171", procedure="medial_branch_block",
            procedure_at=tomorrow_local().isoformat(), timezone="America/Chicago",
            baseline_pain=8, diary_consent=True)).id
    assert schedule(patient_id) == schedule(twin) and len(schedule(patient_id)) == 25
    assert count(AuditLog, AuditLog.action == "enroll", AuditLog.patient_id == patient_id) == 1
    html = client.get(resp.headers["location"]).text
    assert 'id="enrollment"' in html and "Pain diary consent" in html


def test_every_bad_field_is_shown_next_to_it_and_the_values_are_kept(
        client: TestClient) -> None:  # noqa: F811
    token = nurse_token(client)
    resp = client.post("/enroll", data={
        "csrf_token": token, "name": " ", "phone": "555-01", "timezone": "Mars/Olympus",
        "procedure": "knee_scope", "procedure_at": "next tuesday", "baseline_pain": "eleven",
        "channel": "pigeon", "diary_night_consent": "yes"})
    assert resp.status_code == 422
    html = resp.text
    assert "The patient was not enrolled" in html
    assert field_error(html, "f-name") == "Enter the patient&#39;s name."
    assert "not a valid phone number" in field_error(html, "f-phone")
    assert "IANA name" in field_error(html, "f-timezone")
    assert field_error(html, "f-procedure") == "Choose the procedure."
    assert "0 (no pain) to 10" in field_error(html, "f-baseline_pain")
    assert "SMS" in field_error(html, "f-channel")
    assert "consent to the diary itself" in field_error(html, "f-diary")
    assert 'id="f-phone" name="phone" type="tel" required autocomplete="off" ' \
           'placeholder="+1 415 555 0123" value="555-01" aria-invalid="true"' in html
    assert patient_ids() == [] and count(AuditLog, AuditLog.action == "enroll") == 0
    # with a good zone, the time itself is checked
    resp = client.post("/enroll", data={"csrf_token": token,
                                        **good_form(procedure_at="next tuesday")})
    assert resp.status_code == 422
    assert "YYYY-MM-DD HH:MM" in field_error(resp.text, "f-procedure_at")
    assert 'value="next tuesday"' in resp.text


def test_procedure_times_that_cannot_be_right_are_refused(client: TestClient) -> None:  # noqa: F811
    token = nurse_token(client)
    now = datetime.now(CHICAGO)
    for when, fragment in (
            ((now - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M"), "more than 7 days ago"),
            ((now + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M"), "more than a year"),
    ):
        resp = client.post("/enroll", data={"csrf_token": token, **good_form(procedure_at=when)})
        assert resp.status_code == 422 and fragment in field_error(resp.text, "f-procedure_at")
    # a wall-clock time the clocks skip (spring forward) in the patient's zone
    with time_machine.travel(datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc), tick=True):
        client.cookies.clear()
        assert login(client).status_code == 303
        token = csrf_of(client.get("/enroll").text)
        resp = client.post("/enroll", data={"csrf_token": token,
                                            **good_form(procedure_at="2027-03-14T02:30")})
    assert resp.status_code == 422
    assert "does not exist in America/Chicago" in field_error(resp.text, "f-procedure_at")
    assert patient_ids() == []


def test_a_phone_with_an_active_enrolment_and_a_diary_for_the_wrong_procedure(
        client: TestClient) -> None:  # noqa: F811
    token = nurse_token(client)
    assert client.post("/enroll", data={"csrf_token": token, **good_form()},
                       follow_redirects=False).status_code == 303
    resp = client.post("/enroll", data={"csrf_token": token, **good_form(name="Again")})
    assert resp.status_code == 422
    assert "already belongs to patient" in field_error(resp.text, "f-phone")
    assert "+14155550171" not in field_error(resp.text, "f-phone")  # masked
    resp = client.post("/enroll", data={"csrf_token": token, **good_form(
        phone="+14155550172", procedure="epidural_steroid_injection")})
    assert resp.status_code == 422
    assert "has no pain diary" in field_error(resp.text, "f-diary")
    assert len(patient_ids()) == 1


def test_the_form_needs_its_csrf_token(client: TestClient) -> None:  # noqa: F811
    nurse_token(client)
    resp = client.post("/enroll", data={"csrf_token": "forged", **good_form()})
    assert resp.status_code == 403 and patient_ids() == []


# ---------------------------------------------------------- the patient page


def enrolled_via_web(client: TestClient, **changes: str) -> tuple[str, str]:  # noqa: F811
    token = nurse_token(client)
    resp = client.post("/enroll", data={"csrf_token": token, **good_form(**changes)},
                       follow_redirects=False)
    assert resp.status_code == 303
    return patient_ids()[0], token


def test_change_the_procedure_time_from_the_patient_page(client: TestClient) -> None:  # noqa: F811
    patient_id, token = enrolled_via_web(client, diary_consent="")
    before = schedule(patient_id)
    later = tomorrow_local() + timedelta(days=2, hours=1)
    resp = client.post(f"/patients/{patient_id}/procedure-time",
                       data={"csrf_token": token,
                             "procedure_at": later.strftime("%Y-%m-%dT%H:%M")},
                       follow_redirects=False)
    assert resp.status_code == 303
    after = schedule(patient_id)
    assert set(after) == set(before)
    assert after["1d"][0] == (later + timedelta(days=1)).replace(tzinfo=CHICAGO).astimezone(
        timezone.utc)
    assert count(AuditLog, AuditLog.action == "enrollment_change") == 1
    resp = client.post(f"/patients/{patient_id}/procedure-time",
                       data={"csrf_token": token, "procedure_at": "soon"})
    assert resp.status_code == 422
    assert "Procedure time not changed" in resp.text and 'value="soon"' in resp.text
    assert schedule(patient_id) == after


def test_cancel_needs_a_tick_then_cancels_every_pending_checkin(
        client: TestClient) -> None:  # noqa: F811
    patient_id, token = enrolled_via_web(client)
    resp = client.post(f"/patients/{patient_id}/cancel-enrollment", data={"csrf_token": token})
    assert resp.status_code == 422 and "Nothing was cancelled" in resp.text
    assert {s for _, s in schedule(patient_id).values()} == {"scheduled"}
    resp = client.post(f"/patients/{patient_id}/cancel-enrollment",
                       data={"csrf_token": token, "confirm": "yes"}, follow_redirects=False)
    assert resp.status_code == 303
    assert {s for _, s in schedule(patient_id).values()} == {"cancelled"}
    html = client.get(f"/patients/{patient_id}").text
    assert "Cancelled" in html and "Change procedure time" not in html
    assert count(AuditLog, AuditLog.action == "enrollment_cancel") == 1


def test_another_clinics_patient_is_not_found(client: TestClient) -> None:  # noqa: F811
    token = nurse_token(client)
    with new_session() as session, session.begin():
        ensure_clinic(session, "other", "Other Clinic")
        other = enroll(session, EnrollmentRequest(
            clinic_slug="other", phone="+14155550181", procedure="prp_injection",
            procedure_at=tomorrow_local().isoformat(), timezone="America/Chicago")).id
    before = schedule(other)
    for path, data in (("procedure-time", {"procedure_at": "2030-01-01T09:00"}),
                       ("cancel-enrollment", {"confirm": "yes"}),
                       ("diary-consent/withdraw", {})):
        resp = client.post(f"/patients/{other}/{path}", data={"csrf_token": token, **data})
        assert resp.status_code == 404
    assert schedule(other) == before


def test_the_diary_summary_and_withdrawing_consent(client: TestClient) -> None:  # noqa: F811
    patient_id, token = enrolled_via_web(client)
    with new_session() as session:
        procedure_at = session.execute(select(Enrollment.procedure_at)).scalar_one()
    pain = {"diary-15m": 2, "diary-30m": 1, "diary-45m": 1, "diary-1h": 1, "diary-2h": 1,
            "diary-3h": 3, "4h": 6}
    for key, value in pain.items():
        with new_session() as session:
            c = session.execute(select(CheckIn).where(CheckIn.key == key)).scalar_one()
        with time_machine.travel(c.due_at + timedelta(minutes=2), tick=False), \
                new_session() as session, session.begin():
            checkin = session.get(CheckIn, c.id)
            checkins.begin(session, checkin)
            checkins.submit(session, c.id, "diary_pain", str(value))
    html = client.get(f"/patients/{patient_id}").text
    peak = re.search(r'id="diary-peak">([^<]*)<', html).group(1)
    assert peak.strip() == "87.5%"
    run80 = re.sub(r"<[^>]+>", "", html.split('id="diary-run-80">', 1)[1].split("</dd>", 1)[0])
    assert run80.startswith("1 h 30 min") and "below at 3 h 2 min" in run80
    run50 = re.sub(r"<[^>]+>", "", html.split('id="diary-run-50">', 1)[1].split("</dd>", 1)[0])
    assert run50.startswith("2 h 45 min") and "below at 4 h 2 min" in run50
    assert "qualif" not in html.lower() and procedure_at is not None
    # the patient no longer wants the diary: its pending prompts go, check-ins stay
    resp = client.post(f"/patients/{patient_id}/diary-consent/withdraw",
                       data={"csrf_token": token}, follow_redirects=False)
    assert resp.status_code == 303
    pending = [k for k, (_, s) in schedule(patient_id).items() if s == "scheduled"]
    assert pending and not any(k.startswith("diary-") for k in pending)
    assert count(AuditLog, AuditLog.action == "diary_consent_withdrawn") == 1
    html = client.get(f"/patients/{patient_id}").text
    assert 'id="diary-consent">No' in html and 'id="diary-peak"' in html  # ratings kept
