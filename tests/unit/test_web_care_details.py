"""The web form records the pump and diabetes details; the nurse edits them and records
refills and dose changes on the patient page (CSRF on every POST)."""
from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from painpath import checkins
from painpath.db import new_session
from painpath.models import AuditLog, CheckIn, Enrollment
from tests.unit.test_dashboard import client, count  # noqa: F401
from tests.unit.test_web_enroll import enrolled_via_web, schedule


def enrollment_of(patient_id: str) -> Enrollment:
    with new_session() as session:
        row = session.execute(select(Enrollment).where(
            Enrollment.patient_id == patient_id)).scalar_one()
        session.expunge(row)
        return row


def test_the_web_form_records_the_pump_drug_and_refill_date(client: TestClient) -> None:  # noqa: F811
    refill = date.today() + timedelta(days=40)
    patient_id, _ = enrolled_via_web(client, procedure="intrathecal_pump", diary_consent="",
                                     pump_drug="baclofen", pump_refill_due=refill.isoformat())
    enrollment = enrollment_of(patient_id)
    assert enrollment.pump_drug == "baclofen"
    assert f"pump-due-{refill:%Y%m%d}" in schedule(patient_id)
    html = client.get(f"/patients/{patient_id}").text
    assert "Baclofen" in html and refill.isoformat() in html and "Record</button>" in html


def test_the_web_form_records_diabetes_and_the_plan_limit(client: TestClient) -> None:  # noqa: F811
    patient_id, _ = enrolled_via_web(client, procedure="epidural_steroid_injection",
                                     diary_consent="", diabetic="yes",
                                     glucose_limit_mg_dl="250")
    enrollment = enrollment_of(patient_id)
    assert enrollment.diabetic and enrollment.glucose_limit_mg_dl == 250
    assert {"glucose-2d", "glucose-3d"} <= set(schedule(patient_id))
    with new_session() as session, session.begin():
        checkin = session.execute(select(CheckIn).where(
            CheckIn.patient_id == patient_id, CheckIn.key == "glucose-2d")).scalar_one()
        checkins.submit(session, checkin.id, "glucose_steroid", "262")
    html = client.get(f"/patients/{patient_id}").text
    assert "262 mg/dL" in html and "for the diabetes prescriber" in html


def test_the_nurse_edits_the_details_and_records_a_refill(client: TestClient) -> None:  # noqa: F811
    patient_id, token = enrolled_via_web(client, procedure="intrathecal_pump", diary_consent="")
    refill = date.today() + timedelta(days=30)
    form = {"pump_drug": "opioid", "pump_refill_due": refill.isoformat(),
            "glucose_limit_mg_dl": "220"}
    forged = client.post(f"/patients/{patient_id}/care-details",
                         data={"csrf_token": "forged", **form})
    assert forged.status_code == 403 and enrollment_of(patient_id).pump_drug is None
    resp = client.post(f"/patients/{patient_id}/care-details",
                       data={"csrf_token": token, **form}, follow_redirects=False)
    assert resp.status_code == 303
    enrollment = enrollment_of(patient_id)
    assert enrollment.pump_drug == "opioid" and enrollment.glucose_limit_mg_dl == 220
    assert enrollment.diabetic  # a plan limit means a diabetes plan
    assert f"pump-missed-{refill:%Y%m%d}" in schedule(patient_id)
    bad = client.post(f"/patients/{patient_id}/care-details",
                      data={"csrf_token": token, **form, "glucose_limit_mg_dl": "5"})
    assert bad.status_code == 422 and "Nothing was changed" in bad.text
    assert enrollment_of(patient_id).glucose_limit_mg_dl == 220

    assert client.post(f"/patients/{patient_id}/pump-change",
                       data={"csrf_token": "forged", "kind": "refill"}).status_code == 403
    resp = client.post(f"/patients/{patient_id}/pump-change",
                       data={"csrf_token": token, "kind": "refill"}, follow_redirects=False)
    assert resp.status_code == 303
    with new_session() as session:
        [after] = session.execute(select(CheckIn).where(
            CheckIn.patient_id == patient_id, CheckIn.key.like("pump-refill-%"))).scalars()
        assert "safety_pump" in after.items and "safety_pump_opioid_withdrawal" in after.items
    assert count(AuditLog, AuditLog.action == "pump_change") == 1
    assert count(AuditLog, AuditLog.action == "care_details_change") == 1
