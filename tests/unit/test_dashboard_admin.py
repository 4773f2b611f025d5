"""The clinic admin's on-call roster page (/admin/roster) in web.dashboard."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import web.dashboard as dashboard
from painpath.db import new_session
from painpath.enrollment import ensure_clinic, get_clinic
from painpath.escalation import ack_minutes, on_call
from painpath.models import AuditLog, Clinic, Clinician
from tests.unit.test_dashboard import add_clinician, client, count, csrf_of, login  # noqa: F401

ROSTER = "/admin/roster"


def clinician(clinician_id: int) -> Clinician:
    with new_session() as session:
        return session.get(Clinician, clinician_id)


def clinic_row(slug: str = "test") -> Clinic:
    with new_session() as session:
        return get_clinic(session, slug)


def olive_id() -> int:
    """The conftest clinic's on-call nurse (primary, all day)."""
    with new_session() as session:
        return session.execute(select(Clinician.id).where(Clinician.name == "Olive Oncall")
                               ).scalar_one()


def roster_state() -> list[tuple[Any, ...]]:
    with new_session() as session:
        return [(c.id, c.name, c.phone, c.role, c.on_call, c.on_call_start, c.on_call_end,
                 c.active) for c in session.execute(select(Clinician).order_by(Clinician.id))
                .scalars()]


@pytest.fixture
def admin(client: TestClient) -> int:  # noqa: F811
    admin_id = add_clinician("test", "ada", role="admin", name="Ada Admin")
    assert login(client, username="ada", next_url=ROSTER).status_code == 303
    return admin_id


@pytest.fixture
def token(client: TestClient, admin: int) -> str:  # noqa: F811
    page = client.get(ROSTER)
    assert page.status_code == 200
    return csrf_of(page.text)


# ----------------------------------------------------------------- access


def test_no_session_goes_to_login(client: TestClient) -> None:  # noqa: F811
    resp = client.get(ROSTER, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == f"/login?next={ROSTER}"
    resp = client.post(f"{ROSTER}/settings", data={}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")


def test_a_nurse_gets_403_and_no_link(client: TestClient) -> None:  # noqa: F811
    add_clinician("test", "nora")
    assert login(client).status_code == 303
    queue = client.get("/queue").text
    assert 'href="/admin/roster"' not in queue
    token = csrf_of(queue)
    before = roster_state()
    assert client.get(ROSTER).status_code == 403
    oid = olive_id()
    for path, data in ((f"{ROSTER}/clinicians/{oid}/on-call", {"on_call_role": "backup"}),
                       (f"{ROSTER}/clinicians/{oid}/deactivate", {}),
                       (f"{ROSTER}/clinicians", {"name": "Sneaky", "phone": "+14155550140"}),
                       (f"{ROSTER}/settings", {"ack_minutes_emergency": "200",
                                               "ack_minutes_urgent": "200"})):
        assert client.post(path, data={"csrf_token": token, **data}).status_code == 403
    assert roster_state() == before
    assert clinic_row().ack_minutes_emergency == 5
    assert count(AuditLog, AuditLog.action.in_(("roster_change", "escalation_settings"))) == 0


def test_admin_sees_the_roster_and_who_is_on_call(client: TestClient, admin: int,  # noqa: F811
                                                  monkeypatch) -> None:
    with new_session() as session, session.begin():
        clinic = get_clinic(session, "test")
        session.add_all([
            Clinician(clinic_id=clinic.id, name="Bea Backup", phone="+14155550161",
                      role="nurse", on_call="backup", on_call_start="08:00",
                      on_call_end="18:00"),
            Clinician(clinic_id=clinic.id, name="Ivy Inactive", phone="+14155550162",
                      role="nurse", active=False),
        ])
        other = ensure_clinic(session, "other", "Other Clinic")
        session.add(Clinician(clinic_id=other.id, name="Otto Other", phone="+14155550163"))
    # 15:00 UTC = 10:00 in Chicago: Bea's shift
    monkeypatch.setattr(dashboard, "_now",
                        lambda: datetime(2025, 1, 15, 15, 0, tzinfo=timezone.utc))
    client.cookies.clear()  # a new session at the fake time
    assert login(client, username="ada").status_code == 303
    resp = client.get(ROSTER)
    assert resp.status_code == 200
    html = resp.text
    assert 'href="/admin/roster" aria-current="page"' in html
    for text in ("Olive Oncall", "+14155550177", "Bea Backup", "08:00–18:00", "Ivy Inactive",
                 "Inactive", "Ada Admin", "Clinic admin", "Primary", "Backup", "All day"):
        assert text in html, text
    assert "Otto Other" not in html
    primary_now = html.split('id="primary-now"', 1)[1].split("</dd>", 1)[0]
    backup_now = html.split('id="backup-now"', 1)[1].split("</dd>", 1)[0]
    assert "Olive Oncall" in primary_now and "Bea Backup" in backup_now

    monkeypatch.setattr(dashboard, "_now",  # 03:00 in Chicago: Bea is off shift
                        lambda: datetime(2025, 1, 15, 9, 0, tzinfo=timezone.utc))
    client.cookies.clear()
    assert login(client, username="ada").status_code == 303
    html = client.get(ROSTER).text
    backup_now = html.split('id="backup-now"', 1)[1].split("</dd>", 1)[0]
    assert "Bea Backup" not in backup_now and "No backup on shift" in backup_now


# ---------------------------------------------------------------- changes


def test_setting_a_new_primary_clears_the_old_one(client: TestClient, admin: int,  # noqa: F811
                                                  token: str) -> None:
    old = olive_id()
    new = add_clinician("test", "nick", name="Nick New")
    resp = client.post(f"{ROSTER}/clinicians/{new}/on-call",
                       data={"csrf_token": token, "on_call_role": "primary",
                             "on_call_start": "19:00", "on_call_end": "7:00"},
                       follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == f"{ROSTER}?saved=on_call#clinician-{new}"
    n, o = clinician(new), clinician(old)
    assert (n.on_call, n.on_call_start, n.on_call_end) == ("primary", "19:00", "07:00")
    assert o.on_call is None
    with new_session() as session:
        clinic_id = get_clinic(session, "test").id
        night = datetime(2025, 1, 15, 4, 0, tzinfo=timezone.utc)  # 22:00 in Chicago
        assert [c.id for c in on_call(session, clinic_id, "primary", night)] == [new]
    row = client.get(resp.headers["location"]).text
    assert "On-call role and hours saved." in row and "19:00–07:00 (overnight)" in row

    # the same for backup, and clearing a role
    for cid in (old, admin):
        assert client.post(f"{ROSTER}/clinicians/{cid}/on-call",
                           data={"csrf_token": token, "on_call_role": "backup"},
                           follow_redirects=False).status_code == 303
    assert clinician(admin).on_call == "backup" and clinician(old).on_call is None
    assert client.post(f"{ROSTER}/clinicians/{admin}/on-call",
                       data={"csrf_token": token, "on_call_role": ""},
                       follow_redirects=False).status_code == 303
    assert clinician(admin).on_call is None and clinician(new).on_call == "primary"
    logs = count(AuditLog, AuditLog.action == "roster_change", AuditLog.clinician_id == admin)
    assert logs == 4
    with new_session() as session:
        first = session.execute(select(AuditLog).where(AuditLog.action == "roster_change")
                                .order_by(AuditLog.id)).scalars().first()
        assert f"clinician {new} on call: primary" in first.detail
        assert f"primary taken from clinician {old}" in first.detail


@pytest.mark.parametrize("start,end,field,message", [
    ("24:00", "08:00", "on_call_start", "HH:MM"),
    ("08:00", "8pm", "on_call_end", "HH:MM"),
    ("08:60", "09:00", "on_call_start", "HH:MM"),
    ("08:00", "", "on_call_end", "Enter the end time too"),
    ("", "17:00", "on_call_start", "Enter the start time too"),
    ("08:00", "08:00", "on_call_end", "must differ"),
])
def test_bad_hours_are_422_and_change_nothing(client: TestClient, admin: int,  # noqa: F811
                                              token: str, start: str, end: str, field: str,
                                              message: str) -> None:
    nick = add_clinician("test", "nick", name="Nick New")
    before = roster_state()
    resp = client.post(f"{ROSTER}/clinicians/{nick}/on-call",
                       data={"csrf_token": token, "on_call_role": "primary",
                             "on_call_start": start, "on_call_end": end})
    assert resp.status_code == 422
    assert "Nothing was saved." in resp.text and message in resp.text
    prefix = f"oc-{nick}-{'start' if field == 'on_call_start' else 'end'}"
    assert f'id="{prefix}-error"' in resp.text
    assert roster_state() == before
    assert count(AuditLog, AuditLog.action == "roster_change") == 0


def test_bad_role_or_inactive_clinician_is_422(client: TestClient, admin: int,  # noqa: F811
                                               token: str) -> None:
    gone = add_clinician("test", "gone", name="Gina Gone", active=False)
    before = roster_state()
    resp = client.post(f"{ROSTER}/clinicians/{admin}/on-call",
                       data={"csrf_token": token, "on_call_role": "chief"})
    assert resp.status_code == 422 and "Choose primary, backup or not on call." in resp.text
    resp = client.post(f"{ROSTER}/clinicians/{gone}/on-call",
                       data={"csrf_token": token, "on_call_role": "primary"})
    assert resp.status_code == 422 and "Reactivate this clinician" in resp.text
    assert roster_state() == before


def test_add_a_clinician(client: TestClient, admin: int, token: str) -> None:  # noqa: F811
    old = olive_id()
    resp = client.post(f"{ROSTER}/clinicians",
                       data={"csrf_token": token, "name": "  Pat  Primary ",
                             "phone": "(415) 555-0142", "role": "nurse",
                             "on_call_role": "primary", "on_call_start": "08:00",
                             "on_call_end": "20:00"}, follow_redirects=False)
    assert resp.status_code == 303
    with new_session() as session:
        pat = session.execute(select(Clinician).where(Clinician.name == "Pat Primary")
                              ).scalar_one()
    assert (pat.phone, pat.role, pat.on_call, pat.on_call_start, pat.on_call_end, pat.active,
            pat.username, pat.password_hash) == ("+14155550142", "nurse", "primary", "08:00",
                                                 "20:00", True, None, None)
    assert resp.headers["location"] == f"{ROSTER}?saved=added#clinician-{pat.id}"
    assert clinician(old).on_call is None
    assert count(AuditLog, AuditLog.action == "roster_change",
                 AuditLog.detail.like(f"clinician {pat.id} added%")) == 1
    assert "Pat Primary" in client.get(ROSTER).text


def test_add_with_bad_input_is_422_with_an_error_per_field(client: TestClient,  # noqa: F811
                                                           admin: int, token: str) -> None:
    before = roster_state()
    resp = client.post(f"{ROSTER}/clinicians",
                       data={"csrf_token": token, "name": " ", "phone": "555-01",
                             "role": "superuser", "on_call_role": "backup",
                             "on_call_start": "25:00", "on_call_end": "09:00"})
    assert resp.status_code == 422
    for field_id in ("add-name", "add-phone", "add-role", "add-start"):
        assert f'id="{field_id}-error"' in resp.text, field_id
    assert "Enter the clinician&#39;s name." in resp.text
    assert "not a valid phone number" in resp.text
    assert 'value="555-01"' in resp.text  # the form keeps what was typed
    assert roster_state() == before
    assert count(AuditLog, AuditLog.action == "roster_change") == 0


def test_deactivate_and_reactivate(client: TestClient, admin: int,  # noqa: F811
                                   token: str) -> None:
    olive = olive_id()
    resp = client.post(f"{ROSTER}/clinicians/{olive}/deactivate", data={"csrf_token": token},
                       follow_redirects=False)
    assert resp.status_code == 303
    o = clinician(olive)
    assert o.active is False and o.on_call is None
    with new_session() as session:
        clinic_id = get_clinic(session, "test").id
        assert olive not in [c.id for c in on_call(session, clinic_id, "primary")]
    resp = client.post(f"{ROSTER}/clinicians/{olive}/reactivate", data={"csrf_token": token},
                       follow_redirects=False)
    assert resp.status_code == 303 and clinician(olive).active is True
    assert count(AuditLog, AuditLog.action == "roster_change",
                 AuditLog.detail == f"clinician {olive} deactivated (was primary on call)") == 1
    assert count(AuditLog, AuditLog.action == "roster_change",
                 AuditLog.detail == f"clinician {olive} reactivated") == 1


def test_an_admin_cannot_deactivate_themself(client: TestClient, admin: int,  # noqa: F811
                                             token: str) -> None:
    resp = client.post(f"{ROSTER}/clinicians/{admin}/deactivate", data={"csrf_token": token})
    assert resp.status_code == 422 and "cannot deactivate your own account" in resp.text
    assert clinician(admin).active is True
    assert client.get(ROSTER).status_code == 200


def test_a_deactivated_clinician_is_signed_out(client: TestClient, admin: int,  # noqa: F811
                                               token: str) -> None:
    nurse = add_clinician("test", "nora")
    other = TestClient(client.app, base_url="http://testserver")
    assert login(other).status_code == 303 and other.get("/queue").status_code == 200
    assert client.post(f"{ROSTER}/clinicians/{nurse}/deactivate", data={"csrf_token": token},
                       follow_redirects=False).status_code == 303
    assert other.get("/queue", follow_redirects=False).status_code == 303


def test_missing_or_wrong_csrf_is_403_and_changes_nothing(client: TestClient,  # noqa: F811
                                                          admin: int) -> None:
    olive = olive_id()
    before = roster_state()
    for data in ({}, {"csrf_token": "forged"}):
        for path, form in ((f"{ROSTER}/clinicians/{olive}/on-call", {"on_call_role": ""}),
                           (f"{ROSTER}/clinicians/{olive}/deactivate", {}),
                           (f"{ROSTER}/clinicians", {"name": "Csrf", "phone": "+14155550149"}),
                           (f"{ROSTER}/settings", {"ack_minutes_emergency": "9",
                                                   "ack_minutes_urgent": "9"})):
            assert client.post(path, data={**data, **form}).status_code == 403, path
    assert roster_state() == before
    assert clinic_row().ack_minutes_emergency == 5
    assert count(AuditLog, AuditLog.action.in_(("roster_change", "escalation_settings"))) == 0


def test_another_clinics_clinician_is_404(client: TestClient, admin: int,  # noqa: F811
                                          token: str) -> None:
    with new_session() as session, session.begin():
        ensure_clinic(session, "other", "Other Clinic")
    otto = add_clinician("other", "otto", name="Otto Other")
    before = roster_state()
    for action, form in (("on-call", {"on_call_role": "primary"}), ("deactivate", {}),
                         ("reactivate", {})):
        resp = client.post(f"{ROSTER}/clinicians/{otto}/{action}",
                           data={"csrf_token": token, **form})
        assert resp.status_code == 404, action
    # even with invalid input the other clinic's clinician is simply not there
    assert client.post(f"{ROSTER}/clinicians/{otto}/on-call",
                       data={"csrf_token": token, "on_call_start": "99:99"}).status_code == 404
    assert client.post(f"{ROSTER}/clinicians/999999/on-call",
                       data={"csrf_token": token}).status_code == 404
    assert roster_state() == before
    assert count(AuditLog, AuditLog.action == "roster_change") == 0


# ------------------------------------------------------- escalation settings


def test_escalation_settings_are_saved_and_used(client: TestClient, admin: int,  # noqa: F811
                                                token: str) -> None:
    assert (ack_minutes(clinic_row(), "emergency"), ack_minutes(clinic_row(), "urgent")) == (5, 30)
    resp = client.post(f"{ROSTER}/settings",
                       data={"csrf_token": token, "ack_minutes_emergency": "3",
                             "ack_minutes_urgent": "45", "fallback_phone": "415 555 0100"},
                       follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == f"{ROSTER}?saved=settings#settings"
    clinic = clinic_row()
    assert ack_minutes(clinic, "emergency") == 3 and ack_minutes(clinic, "crisis") == 3
    assert ack_minutes(clinic, "urgent") == 45
    assert clinic.fallback_phone == "+14155550100"
    html = client.get(resp.headers["location"]).text
    assert "Escalation settings saved." in html and 'value="45"' in html
    with new_session() as session:
        log = session.execute(select(AuditLog).where(AuditLog.action == "escalation_settings")
                              ).scalar_one()
    assert log.clinician_id == admin
    assert "ack emergency/crisis 3 min, urgent 45 min, fallback +14155550100" in log.detail
    assert "(was 5/30 min, fallback none)" in log.detail

    # an empty fallback clears it
    assert client.post(f"{ROSTER}/settings",
                       data={"csrf_token": token, "ack_minutes_emergency": "3",
                             "ack_minutes_urgent": "45", "fallback_phone": ""},
                       follow_redirects=False).status_code == 303
    assert clinic_row().fallback_phone is None


@pytest.mark.parametrize("emergency,urgent,phone,fields", [
    ("0", "30", "", ["ack-emergency"]),
    ("5", "241", "", ["ack-urgent"]),
    ("five", "2.5", "", ["ack-emergency", "ack-urgent"]),
    ("", "30", "", ["ack-emergency"]),
    ("5", "30", "12345", ["fallback-phone"]),
    ("-1", "30", "not a phone", ["ack-emergency", "fallback-phone"]),
])
def test_bad_escalation_settings_are_422_and_change_nothing(
        client: TestClient, admin: int, token: str, emergency: str, urgent: str,  # noqa: F811
        phone: str, fields: list[str]) -> None:
    resp = client.post(f"{ROSTER}/settings",
                       data={"csrf_token": token, "ack_minutes_emergency": emergency,
                             "ack_minutes_urgent": urgent, "fallback_phone": phone})
    assert resp.status_code == 422
    for field_id in fields:
        assert f'id="{field_id}-error"' in resp.text, field_id
    assert resp.text.count('class="field-error"') == len(fields)
    clinic = clinic_row()
    assert (clinic.ack_minutes_emergency, clinic.ack_minutes_urgent,
            clinic.fallback_phone) == (5, 30, None)
    assert count(AuditLog, AuditLog.action == "escalation_settings") == 0


# ------------------------------------------------------------------ helpers


def test_hours_validation() -> None:
    assert dashboard.parse_hhmm("8:05") == "08:05"
    assert dashboard.parse_hhmm("23:59") == "23:59"
    assert dashboard.parse_hhmm("00:00:00") == "00:00"
    for bad in ("24:00", "12:5", "noon", "", "12:00pm", "-1:00"):
        assert dashboard.parse_hhmm(bad) is None, bad
    assert dashboard.validate_hours("", "") == (None, None, {})
    assert dashboard.validate_hours("22:00", "06:00") == ("22:00", "06:00", {})
    assert dashboard.validate_ack_minutes("240") == 240
    assert dashboard.validate_ack_minutes("241") is None
