"""Intrathecal pumps (CLINICAL.md §1.8, §5): the drug picks the withdrawal question,
a safety check-in 24 h after each refill or dose change, refill reminders, and
"very drowsy" after a refill is an emergency."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from painpath import checkins, protocols, pumps
from painpath.cli import main
from painpath.db import new_session
from painpath.enrollment import EnrollmentError, EnrollmentRequest, enroll, import_csv
from painpath.models import CheckIn, Enrollment, Escalation
from painpath.triage import triage

OVERDOSE = "safety_pump"
BACLOFEN = "safety_pump_withdrawal"
OPIOID = "safety_pump_opioid_withdrawal"
PROCEDURE_AT = "2027-03-01T10:00:00-06:00"


def enrol_pump(clinic: str, drug: str | None = None, refill: str | None = None,
               phone: str = "+14155550181") -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone=phone, procedure="intrathecal_pump",
            procedure_at=PROCEDURE_AT, baseline_pain=6, pump_drug=drug,
            pump_refill_due=refill),
            now=datetime(2027, 2, 20, tzinfo=timezone.utc)).id


def checkins_of(patient_id: str) -> dict[str, CheckIn]:
    with new_session() as session:
        rows = session.execute(select(CheckIn).where(CheckIn.patient_id == patient_id)
                               .order_by(CheckIn.due_at)).scalars().all()
        session.expunge_all()
        return {c.key: c for c in rows}


@pytest.mark.parametrize("drug, wanted, unwanted", [
    ("opioid", [OPIOID], [BACLOFEN]),
    ("baclofen", [BACLOFEN], [OPIOID]),
    ("other", [BACLOFEN, OPIOID], []),
    (None, [BACLOFEN, OPIOID], []),
])
def test_the_pump_drug_picks_the_withdrawal_question(clinic: str, drug: str | None,
                                                     wanted: list[str],
                                                     unwanted: list[str]) -> None:
    patient_id = enrol_pump(clinic, drug)
    for key, checkin in checkins_of(patient_id).items():
        assert OVERDOSE in checkin.items, key  # overdose is an emergency for every pump
        for item in wanted:
            assert item in checkin.items, (key, item)
        for item in unwanted:
            assert item not in checkin.items, (key, item)


def test_a_protocol_naming_one_drug_still_asks_the_patients_own() -> None:
    # a clinic protocol that lists only the baclofen question, for an opioid pump
    assert pumps.drug_items([OVERDOSE, BACLOFEN, "pain_now"], "opioid") == \
        [OVERDOSE, OPIOID, "pain_now"]
    assert pumps.drug_items([OVERDOSE, OPIOID], "baclofen") == [OVERDOSE, BACLOFEN]
    assert pumps.drug_items([OVERDOSE, OPIOID], None) == [OVERDOSE, BACLOFEN, OPIOID]
    assert pumps.drug_items(["safety_neuro"], "opioid") == ["safety_neuro"]


def test_the_nurse_changing_the_drug_changes_check_ins_not_yet_sent(clinic: str) -> None:
    patient_id = enrol_pump(clinic, "baclofen")
    with new_session() as session, session.begin():
        pumps.set_drug(session, patient_id, "opioid")
    for checkin in checkins_of(patient_id).values():
        assert OPIOID in checkin.items and BACLOFEN not in checkin.items
    with new_session() as session, session.begin(), pytest.raises(pumps.PumpError):
        pumps.set_drug(session, patient_id, "morphine")


def test_a_refill_or_dose_change_gets_a_safety_check_in_24_hours_later(clinic: str) -> None:
    patient_id = enrol_pump(clinic, "opioid")
    refill_at = datetime(2027, 3, 20, 15, 0, tzinfo=timezone.utc)
    dose_at = datetime(2027, 3, 25, 16, 30, tzinfo=timezone.utc)
    with new_session() as session, session.begin():
        pumps.record_change(session, patient_id, "refill", refill_at)
        pumps.record_change(session, patient_id, "dose_change", dose_at)
    rows = checkins_of(patient_id)
    refill = rows["pump-refill-202703211500"]
    dose = rows["pump-dose-202703261630"]
    assert refill.due_at == refill_at + timedelta(hours=24)
    assert dose.due_at == dose_at + timedelta(hours=24)
    assert refill.items == [OVERDOSE, OPIOID, "pain_now"]
    # the protocol being rescheduled (e.g. the procedure time corrected) keeps them
    with new_session() as session, session.begin():
        enrollment = session.execute(select(Enrollment).where(
            Enrollment.patient_id == patient_id)).scalar_one()
        protocols.schedule(session, enrollment)
    assert {"pump-refill-202703211500", "pump-dose-202703261630"} <= set(checkins_of(patient_id))


def test_only_a_pump_patient_has_refills(clinic: str) -> None:
    with new_session() as session, session.begin():
        patient_id = enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550182", procedure="epidural_steroid_injection",
            procedure_at=PROCEDURE_AT)).id
    with new_session() as session, session.begin(), pytest.raises(pumps.PumpError):
        pumps.record_change(session, patient_id, "refill")
    with new_session() as session, session.begin(), pytest.raises(EnrollmentError):
        enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550183", procedure="epidural_steroid_injection",
            procedure_at=PROCEDURE_AT, pump_drug="opioid"))


def test_the_refill_date_brings_a_reminder_and_a_missed_refill_question(clinic: str) -> None:
    patient_id = enrol_pump(clinic, "baclofen", refill="2027-04-26")
    rows = checkins_of(patient_id)
    reminder, missed = rows["pump-due-20270426"], rows["pump-missed-20270426"]
    # 10:00 in Chicago (CDT, UTC-5) a week before, and the day after
    assert reminder.due_at == datetime(2027, 4, 19, 15, 0, tzinfo=timezone.utc)
    assert missed.due_at == datetime(2027, 4, 27, 15, 0, tzinfo=timezone.utc)
    assert reminder.items == ["pump_refill_reminder"] and missed.items == ["pump_refill_missed"]
    with new_session() as session, session.begin():
        text = checkins.ask_text(session, reminder.id, "pump_refill_reminder")
        assert "Mon Apr 26" in text
        # a missed refill is URGENT (§1.8): therapy stops, withdrawal can follow
        checkins.begin(session, session.get(CheckIn, missed.id))
        outcome = checkins.submit(session, missed.id, "pump_refill_missed", "yes")
        assert outcome.raised is not None
        escalation = session.execute(select(Escalation).where(
            Escalation.patient_id == patient_id)).scalar_one()
        assert escalation.tier == "urgent"
    # the nurse moves the date: the old reminders not yet sent go, new ones come
    with new_session() as session, session.begin():
        pumps.set_refill_due(session, patient_id, date(2027, 6, 1),
                             now=datetime(2027, 4, 1, tzinfo=timezone.utc))
    keys = set(checkins_of(patient_id))
    assert "pump-due-20270426" not in keys and "pump-missed-20270426" in keys  # answered
    assert {"pump-due-20270601", "pump-missed-20270601"} <= keys


def test_a_refill_date_less_than_a_week_away_is_reminded_at_once(clinic: str) -> None:
    patient_id = enrol_pump(clinic, "opioid")
    now = datetime(2027, 4, 23, 18, 0, tzinfo=timezone.utc)
    with new_session() as session, session.begin():
        pumps.set_refill_due(session, patient_id, date(2027, 4, 26), now=now)
    assert checkins_of(patient_id)["pump-due-20270426"].due_at == now


def test_bad_refill_dates_are_refused(clinic: str) -> None:
    for value, problem in (("26/04/2027", "YYYY-MM-DD"), ("2020-01-01", "past")):
        with new_session() as session, session.begin(), \
                pytest.raises(EnrollmentError, match=problem):
            enroll(session, EnrollmentRequest(
                clinic_slug=clinic, phone="+14155550184", procedure="intrathecal_pump",
                procedure_at=PROCEDURE_AT, pump_refill_due=value))


@pytest.mark.parametrize("text", [
    "I'm extremely drowsy since the refill yesterday",
    "very drowsy today",
    "so sleepy after they changed my dose",
    "my husband says I've been really groggy since the pump was refilled",
])
def test_very_drowsy_or_drowsy_after_a_refill_or_dose_change_is_an_emergency(text: str) -> None:
    assert triage(text, "intrathecal_pump").tier == "emergency", text


def test_a_bit_drowsy_without_a_refill_stays_urgent() -> None:
    assert triage("a bit drowsy today", "intrathecal_pump").tier == "urgent"


def run(capsys, *args: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    code = main(list(args))
    return code, capsys.readouterr().out


def test_protocol_show_lists_the_refill_check_in(clinic: str, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = run(capsys, "protocol", "show", "--clinic", clinic, "--procedure",
                    "intrathecal_pump")
    assert code == 0
    assert "after refill or dose change check-in 24h after each one" in out
    assert "refill reminder 7d before the refill date" in out
    code, out = run(capsys, "protocol", "show", "--clinic", clinic, "--procedure",
                    "intrathecal_pump", "--json")
    events = json.loads(out)["procedures"]["intrathecal_pump"]["events"]
    assert events[0]["after"] == "24h" and OVERDOSE in events[0]["items"]


def test_cli_and_csv_enrolment_record_the_pump(clinic: str, capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out = run(capsys, "enroll", "--clinic", clinic, "--phone", "+14155550185",
                    "--procedure", "intrathecal_pump", "--procedure-at", PROCEDURE_AT,
                    "--pump-drug", "opioid", "--pump-refill-due", "2027-05-10", "--json")
    assert code == 0
    patient_id = json.loads(out)["id"]
    with new_session() as session:
        enrollment = session.execute(select(Enrollment).where(
            Enrollment.patient_id == patient_id)).scalar_one()
        assert enrollment.pump_drug == "opioid"
        assert enrollment.pump_refill_due.date() == date(2027, 5, 10)
    csv = ("phone,procedure,procedure_at,pump_drug,pump_refill_due\n"
           f"+14155550186,intrathecal_pump,{PROCEDURE_AT},baclofen,2027-05-11\n"
           f"+14155550187,intrathecal_pump,{PROCEDURE_AT},morphine,\n")
    report = import_csv(csv, clinic, new_session)
    assert len(report["enrolled"]) == 1 and "pump drug" in report["errors"][0]["error"]
    assert "pump-due-20270511" in checkins_of(report["enrolled"][0]["id"])
