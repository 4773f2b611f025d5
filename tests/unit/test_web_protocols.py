"""Clinic admins edit protocols in the dashboard (web/admin_protocols.py): the same
checks and rescheduling as `painpath protocol load`, an error next to each field,
reset to the default, audit."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from painpath.content import PROCEDURE_IDS, get_content
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.models import AuditLog, CheckIn, Protocol
from painpath.protocols import show
from tests.unit.test_dashboard import add_clinician, client, count, csrf_of, login  # noqa: F401

MBB = "/admin/protocols/medial_branch_block"


def enrolled(clinic: str = "test") -> str:
    day = (datetime.now(ZoneInfo("America/Chicago")) + timedelta(days=1)).date()
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550191", procedure="medial_branch_block",
            procedure_at=f"{day.isoformat()}T09:30", timezone="America/Chicago",
            baseline_pain=7, diary_consent=True)).id


def keys(patient_id: str) -> list[str]:
    with new_session() as session:
        return [c.key for c in session.execute(select(CheckIn).where(
            CheckIn.patient_id == patient_id).order_by(CheckIn.due_at)).scalars()]


def stored() -> dict[str, dict]:
    with new_session() as session:
        return {r.procedure: r.spec for r in session.execute(select(Protocol)).scalars()}


def field_error(html: str, field_id: str) -> str:
    match = re.search(rf'<p class="field-error" id="{field_id}-error">([^<]*)</p>', html)
    assert match, f"no error shown for {field_id}"
    return match.group(1)


@pytest.fixture
def token(client: TestClient) -> str:  # noqa: F811
    add_clinician("test", "ada", role="admin", name="Ada Admin")
    assert login(client, username="ada").status_code == 303
    page = client.get("/admin/protocols")
    assert page.status_code == 200
    return csrf_of(page.text)


def form(token: str, checkins: str, rules: list[tuple[str, str, str]], diary: str) -> dict:
    return {"csrf_token": token, "checkins": checkins, "diary": diary,
            "safety_item": [r[0] for r in rules], "safety_from_day": [r[1] for r in rules],
            "safety_until_day": [r[2] for r in rules]}


def test_a_nurse_cannot_see_or_change_protocols(client: TestClient) -> None:  # noqa: F811
    add_clinician("test", "nora")
    assert login(client).status_code == 303
    tok = csrf_of(client.get("/queue").text)
    assert 'href="/admin/protocols"' not in client.get("/queue").text
    assert client.get("/admin/protocols").status_code == 403
    assert client.get(MBB).status_code == 403
    resp = client.post(MBB, data=form(tok, "1h", [], ""))
    assert resp.status_code == 403
    assert client.post(f"{MBB}/reset", data={"csrf_token": tok}).status_code == 403
    assert stored() == {}


def test_the_list_shows_every_procedure_and_where_its_protocol_comes_from(
        client: TestClient, token: str) -> None:  # noqa: F811
    html = client.get("/admin/protocols").text
    assert 'href="/admin/protocols" aria-current="page"' in html
    for pid in PROCEDURE_IDS:
        row = html.split(f'id="protocol-{pid}"', 1)[1].split("</tr>", 1)[0]
        assert get_content().procedures[pid].label in row and "Default" in row
    mbb = html.split('id="protocol-medial_branch_block"', 1)[1].split("</tr>", 1)[0]
    assert "4h, 8h, 1d, 2d, 3d, 7d, 14d" in mbb and "25 prompts (15m–14d)" in mbb
    esi = html.split('id="protocol-epidural_steroid_injection"', 1)[1].split("</tr>", 1)[0]
    assert "Headache worse sitting or standing (until day 14)" in esi


def test_save_reschedules_pending_checkins_and_is_audited(client: TestClient,
                                                          token: str) -> None:  # noqa: F811
    patient_id = enrolled()
    page = client.get(MBB).text
    assert 'value="4h, 8h, 1d, 2d, 3d, 7d, 14d"' in page
    resp = client.post(MBB, data=form(token, "2h, 6h, 1d, 7d, 14d",
                                      [("safety_neuro", "", ""),
                                       ("safety_infection", "1", "14"),
                                       ("", "", "")], "30m, 1h, 2h, 1d, 2d"),
                       follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == f"{MBB}?saved=saved"
    assert stored()["medial_branch_block"] == {
        "checkins": ["2h", "6h", "1d", "7d", "14d"],
        "safety": [{"item": "safety_neuro"},
                   {"item": "safety_infection", "from_day": 1, "until_day": 14}],
        "diary": ["30m", "1h", "2h", "1d", "2d"]}
    assert keys(patient_id) == ["diary-30m", "diary-1h", "2h", "6h", "1d", "diary-2d", "7d",
                                "14d"]
    # what `painpath protocol show` prints follows the same store
    with new_session() as session:
        shown = show(session, "test", "medial_branch_block")["procedures"]["medial_branch_block"]
    assert shown["source"] == "clinic" and shown["diary"] == ["30m", "1h", "2h", "1d", "2d"]
    with new_session() as session:
        audit = session.execute(select(AuditLog).where(
            AuditLog.action == "protocol_change")).scalar_one()
    assert audit.detail.startswith("medial_branch_block: check-ins 2h, 6h, 1d, 7d, 14d;")
    assert "(was check-ins 4h, 8h, 1d" in audit.detail and "1 active enrolment" in audit.detail
    page = client.get(resp.headers["location"]).text
    assert "Protocol saved." in page and "Reset to the default" in page
    row = client.get("/admin/protocols").text.split('id="protocol-medial_branch_block"')[1]
    assert "Clinic's own" in row.split("</tr>")[0]


def test_every_problem_is_shown_at_its_field_and_nothing_changes(client: TestClient,
                                                                 token: str) -> None:  # noqa: F811
    patient_id = enrolled()
    before = keys(patient_id)
    resp = client.post(MBB, data=form(token, "1h, tomorrow",
                                      [("safety_neuro", "", ""),
                                       ("safety_infection", "5", "2"),
                                       ("", "3", ""),
                                       ("safety_headache", "soon", "")], "30m, 15m"))
    assert resp.status_code == 422
    html = resp.text
    assert "Nothing was saved" in html
    assert "Bad offset &#39;tomorrow&#39;" in field_error(html, "f-checkins")
    assert field_error(html, "s-1") == "Safety rule 2: from_day is after until_day"
    assert "Choose the question" in field_error(html, "s-2")
    assert "Days must be numbers" in field_error(html, "s-3")
    # the form kept what was typed
    assert 'value="1h, tomorrow"' in html and 'value="30m, 15m"' in html
    assert 'id="s-from-1" name="safety_from_day" type="text" inputmode="decimal" size="5" ' \
           'value="5"' in html
    assert stored() == {} and keys(patient_id) == before
    assert count(AuditLog, AuditLog.action == "protocol_change") == 0
    # once the form itself is clean, the protocol checks come next (same as the CLI)
    resp = client.post(MBB, data=form(token, "1h, tomorrow", [("safety_infection", "5", "2")],
                                      "30m, 15m"))
    assert resp.status_code == 422
    assert "bad offset" in field_error(resp.text, "f-checkins").lower()
    assert "from_day is after until_day" in field_error(resp.text, "s-0")
    assert "time order" in field_error(resp.text, "f-diary")
    resp = client.post(MBB, data=form(token, "", [], ""))
    assert "non-empty list" in field_error(resp.text, "f-checkins")
    assert stored() == {}


def test_reset_to_the_default(client: TestClient, token: str) -> None:  # noqa: F811
    patient_id = enrolled()
    default = keys(patient_id)
    assert client.post(MBB, data=form(token, "1d, 7d", [("safety_neuro", "", "")], ""),
                       follow_redirects=False).status_code == 303
    assert keys(patient_id) == ["1d", "7d"]
    resp = client.post(f"{MBB}/reset", data={"csrf_token": token}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == f"{MBB}?saved=reset"
    assert stored() == {} and keys(patient_id) == default
    assert count(AuditLog, AuditLog.action == "protocol_reset") == 1
    assert "Reset to the default" not in client.get(MBB).text


def test_forged_posts_and_unknown_procedures(client: TestClient, token: str) -> None:  # noqa: F811
    assert client.post(MBB, data=form("forged", "1d", [], "")).status_code == 403
    assert client.post(f"{MBB}/reset", data={"csrf_token": "forged"}).status_code == 403
    assert client.get("/admin/protocols/knee_scope").status_code == 404
    assert client.post("/admin/protocols/knee_scope",
                       data=form(token, "1d", [], "")).status_code == 404
    assert stored() == {}


def test_more_first_day_checkins_than_the_daily_cap_are_flagged(client: TestClient,
                                                                token: str) -> None:  # noqa: F811
    assert 'id="protocol-over-cap"' not in client.get(MBB).text  # the defaults fit the cap
    assert "above the daily limit" not in client.get("/admin/protocols").text
    assert client.post(MBB, data=form(token, "1h, 4h, 8h, 1d", [("safety_neuro", "", "")],
                                      ""), follow_redirects=False).status_code == 303
    warning = client.get(MBB).text.split('id="protocol-over-cap">', 1)[1].split("</p>", 1)[0]
    assert "3 check-ins (1h, 4h, 8h)" in warning and "daily limit of 2" in warning
    row = client.get("/admin/protocols").text.split('id="protocol-medial_branch_block"')[1]
    assert "above the daily limit" in row.split("</tr>")[0]
