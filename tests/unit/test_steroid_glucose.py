"""Blood sugar after a steroid (CLINICAL.md §1.0): diabetic patients are asked on
days 1-3; a reading is judged against the patient's own diabetes-plan limit (the
fixed 300/180 mg/dL only without one); the alert is for the diabetes prescriber."""
from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.message import Message
from sqlalchemy import select

from bot.painpath_rasa.redflag import RedFlagClassifier

from painpath import checkins
from painpath.db import new_session
from painpath.enrollment import EnrollmentError, EnrollmentRequest, enroll
from painpath.models import CheckIn, Escalation
from painpath.parsing import parse_glucose
from painpath.sms import route_inbound
from painpath.triage import triage

GLUCOSE = "glucose_steroid"
PROCEDURE_AT = "2027-03-01T10:00:00-06:00"


def enrol(clinic: str, procedure: str = "epidural_steroid_injection", diabetic: bool = True,
          limit: float | None = None, phone: str = "+14155550191") -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone=phone, procedure=procedure, procedure_at=PROCEDURE_AT,
            baseline_pain=6, diabetic=diabetic, glucose_limit_mg_dl=limit)).id


def asked(patient_id: str) -> dict[str, float]:
    """Check-in key -> day, for the check-ins that ask the blood sugar."""
    with new_session() as session:
        return {c.key: c.day for c in session.execute(
            select(CheckIn).where(CheckIn.patient_id == patient_id)).scalars()
            if GLUCOSE in c.items}


@pytest.mark.parametrize("text, value", [
    ("245", 245), ("it was 310 this morning", 310), ("8.9 mmol", 160), ("12,5", 225),
    ("about 14 mmol/L", 252), ("no idea", None), ("between 200 and 250", None), ("5", None),
])
def test_glucose_answers_parse_to_mg_dl(text: str, value: int | None) -> None:
    assert parse_glucose(text) == value


def test_diabetic_patients_are_asked_on_days_1_to_3_after_a_steroid(clinic: str) -> None:
    # ESI's schedule has 6h, 1d, 4d…: day 1 inside that check-in, days 2 and 3 alone
    assert asked(enrol(clinic)) == {"1d": 1.0, "glucose-2d": 2.0, "glucose-3d": 3.0}
    # facet injection has 1d, 2d and 3d check-ins: asked inside each
    assert asked(enrol(clinic, "facet_injection", phone="+14155550192")) == \
        {"1d": 1.0, "2d": 2.0, "3d": 3.0}
    assert asked(enrol(clinic, diabetic=False, phone="+14155550193")) == {}
    assert asked(enrol(clinic, "intrathecal_pump", phone="+14155550194")) == {}  # no steroid


def test_the_safety_questions_come_first(clinic: str) -> None:
    patient_id = enrol(clinic)
    with new_session() as session:
        items = session.execute(select(CheckIn).where(
            CheckIn.patient_id == patient_id, CheckIn.key == "1d")).scalar_one().items
    assert items.index(GLUCOSE) > max(items.index(i) for i in items if i.startswith("safety_"))
    assert items.index(GLUCOSE) < items.index("pain_now")


def answer(patient_id: str, text: str) -> Escalation | None:
    with new_session() as session, session.begin():
        checkin = session.execute(select(CheckIn).where(
            CheckIn.patient_id == patient_id, CheckIn.key == "glucose-2d")).scalar_one()
        outcome = checkins.submit(session, checkin.id, GLUCOSE, text)
        assert outcome.status == "accepted"
        # the patient is sent to their diabetes plan's prescriber only when urgent
        told = any("diabetes plan" in r for r in outcome.replies)
        assert told == (outcome.raised is not None and outcome.raised.tier == "urgent")
        row = session.execute(select(Escalation).where(
            Escalation.patient_id == patient_id)).scalar_one_or_none()
        if row is not None:
            session.expunge(row)
        return row


def test_a_reading_at_the_patients_own_limit_is_urgent_for_the_diabetes_prescriber(
        clinic: str) -> None:
    escalation = answer(enrol(clinic, limit=250), "260")
    assert escalation is not None and escalation.tier == "urgent"
    assert any("diabetes prescriber" in r and "250" in r for r in escalation.reasons)


def test_without_an_own_limit_the_default_applies(clinic: str) -> None:
    escalation = answer(enrol(clinic), "260")  # below the default 300: a note only
    assert escalation is not None and escalation.tier == "routine"
    assert any("diabetes prescriber" in r for r in escalation.reasons)
    escalation = answer(enrol(clinic, phone="+14155550195"), "320")
    assert escalation is not None and escalation.tier == "urgent"
    assert answer(enrol(clinic, phone="+14155550196"), "140") is None


def test_a_patient_whose_plan_limit_is_higher_than_300_is_not_alerted_below_it(
        clinic: str) -> None:
    escalation = answer(enrol(clinic, limit=350), "320")
    assert escalation is not None and escalation.tier == "routine"


def test_free_text_triage_uses_the_patients_limit_where_the_patient_is_known() -> None:
    text = "my sugar was 260 this morning"
    assert triage(text, "epidural_steroid_injection").tier == "routine"
    assert triage(text, "epidural_steroid_injection", glucose_limit_mg_dl=250).tier == "urgent"
    assert triage("sugar 14.2 mmol", "epidural_steroid_injection",
                  glucose_limit_mg_dl=250).tier == "urgent"
    assert triage("sugar 14.2 mmol", "epidural_steroid_injection").tier == "routine"
    reasons = triage(text, "epidural_steroid_injection", glucose_limit_mg_dl=250).reasons
    assert any("diabetes prescriber" in r for r in reasons)


def test_an_implausible_limit_is_refused(clinic: str) -> None:
    with new_session() as session, session.begin(), \
            pytest.raises(EnrollmentError, match="glucose limit"):
        enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550197", procedure="epidural_steroid_injection",
            procedure_at=PROCEDURE_AT, glucose_limit_mg_dl=20))


def test_an_sms_from_the_patient_carries_their_limit_to_the_red_flag_classifier(
        clinic: str) -> None:
    enrol(clinic, limit=240, phone="+14155550198")
    routed = route_inbound("+14155550198", "my sugar is 250", "SM" + "c" * 32)
    assert routed.procedure == "epidural_steroid_injection"
    assert routed.glucose_limit_mg_dl == 240


def test_the_red_flag_classifier_judges_a_reading_by_the_limit_in_the_metadata() -> None:
    classifier = RedFlagClassifier({})

    def tier(limit: object) -> str:
        message = Message(data={"text": "my sugar is 250", "metadata": {
            "procedure": "epidural_steroid_injection", "glucose_limit_mg_dl": limit}})
        classifier.process([message])
        return next(e["value"] for e in message.get("entities")
                    if e["entity"] == "red_flag_tier")

    assert tier(240) == "urgent"
    assert tier(None) == "routine"  # no own limit: the default 300 / 180
    assert tier("240") == "routine"  # only a number is a limit
