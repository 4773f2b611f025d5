"""Clinic protocols: load (validated), show, rescheduling; procedure-time change, cancel."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from painpath.cli import main
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.models import CheckIn


def run(capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def enrolled(clinic: str) -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550119", procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:30:00-06:00", baseline_pain=6)).id


def keys(patient_id: str, status: str | None = None) -> list[str]:
    with new_session() as session:
        q = select(CheckIn).where(CheckIn.patient_id == patient_id).order_by(CheckIn.due_at)
        return [c.key for c in session.execute(q).scalars() if status in (None, c.status)]


GOOD = """
procedures:
  epidural_steroid_injection:
    checkins: [4h, 1d, 3d, 7d, 14d, 28d]
    safety:
      - {item: safety_neuro}
      - {item: safety_infection, from_day: 1, until_day: 14}
"""


def test_load_show_and_reschedule_pending(clinic: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    patient_id = enrolled(clinic)
    with new_session() as session, session.begin():  # the first check-in was answered already
        first = session.execute(select(CheckIn).where(CheckIn.key == "6h")).scalar_one()
        first.status = "completed"
    f = tmp_path / "esi.yaml"
    f.write_text(GOOD)
    code, out, _ = run(capsys, "protocol", "load", str(f), "--clinic", clinic, "--json")
    assert code == 0 and json.loads(out) == {"clinic": clinic,
                                             "procedures": ["epidural_steroid_injection"],
                                             "rescheduled_enrollments": 1}
    assert keys(patient_id) == ["6h", "1d", "3d", "7d", "14d", "28d"]  # 4h dropped: 6h was done
    assert keys(patient_id, "completed") == ["6h"]
    code, out, _ = run(capsys, "protocol", "show", "--clinic", clinic, "--procedure",
                       "epidural_steroid_injection", "--json")
    shown = json.loads(out)["procedures"]["epidural_steroid_injection"]
    assert shown["source"] == "clinic"
    assert [c["key"] for c in shown["checkins"]] == ["4h", "1d", "3d", "7d", "14d", "28d"]
    assert shown["checkins"][1]["items"][:2] == ["safety_neuro", "safety_infection"]
    code, out, _ = run(capsys, "protocol", "show", "--clinic", clinic, "--json")
    assert json.loads(out)["procedures"]["scs_trial"]["source"] == "default"


@pytest.mark.parametrize("text, fragment", [
    ("procedures: {knee_scope: {checkins: [1d]}}", "unknown procedure"),
    ("procedures: {prp_injection: {checkins: [1d, tomorrow]}}", "bad offset"),
    ("procedures: {prp_injection: {checkins: [3d, 1d]}}", "time order"),
    ("procedures: {prp_injection: {checkins: [1d], safety: [{item: safety_vibes}]}}",
     "unknown safety question"),
    ("procedures: {prp_injection: {checkins: [1d], safety: [{item: safety_neuro_change}]}}",
     "only asked after a yes to 'safety_neuro'"),
    ("procedures: [", "not valid YAML"),
    ("hello: 1", "procedures"),
])
def test_invalid_protocols_are_refused_with_a_clear_error(clinic: str, tmp_path: Path, capsys,
                                                          text: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    patient_id = enrolled(clinic)
    before = keys(patient_id)
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    code, _, err = run(capsys, "protocol", "load", str(f), "--clinic", clinic)
    assert code == 2 and fragment in err
    assert keys(patient_id) == before


def test_new_enrolments_follow_the_clinic_protocol(clinic: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "esi.yaml"
    f.write_text(GOOD)
    assert run(capsys, "protocol", "load", str(f), "--clinic", clinic)[0] == 0
    assert keys(enrolled(clinic)) == ["4h", "1d", "3d", "7d", "14d", "28d"]


def test_procedure_time_change_and_cancel(clinic: str, capsys) -> None:  # type: ignore[no-untyped-def]
    patient_id = enrolled(clinic)
    code, out, _ = run(capsys, "enrollment", "update", "--patient", patient_id,
                       "--procedure-at", "2026-11-22T09:30:00-06:00", "--json")
    assert code == 0
    with new_session() as session:
        first = session.execute(select(CheckIn).where(CheckIn.key == "1d")).scalar_one()
        assert first.due_at == datetime(2026, 11, 23, 15, 30, tzinfo=timezone.utc)
    code, out, _ = run(capsys, "enrollment", "cancel", "--patient", patient_id, "--json")
    assert code == 0 and json.loads(out)["cancelled_checkins"] == 6
    assert keys(patient_id, "scheduled") == []
    code, _, err = run(capsys, "enrollment", "cancel", "--patient", patient_id)
    assert code == 2 and "no active enrolment" in err


def test_csv_import_reports_bad_rows_and_enrols_the_good_ones(clinic: str, tmp_path: Path,
                                                              capsys) -> None:  # type: ignore[no-untyped-def]
    from painpath.models import Patient

    f = tmp_path / "patients.csv"
    f.write_text(
        "Phone,Procedure,Procedure_At,Timezone,Name,Baseline_Pain\n"
        "(415) 555-0131,medial_branch_block,2026-11-24T08:00,America/Chicago,Ann One,7\n"
        "555,medial_branch_block,2026-11-24T08:00,America/Chicago,Bad Phone,\n"
        "+14155550133,knee_scope,2026-11-24T08:00,,Bad Procedure,\n"
        "+14155550134,prp_injection,2026-11-24T08:00,,Bad Pain,eleven\n"
        "+14155550135,prp_injection,2026-11-24T08:00Z,Europe/Paris,Eve Five,\n")
    with pytest.raises(SystemExit) as exit_:
        main(["import-csv", str(f), "--clinic", clinic, "--json"])
    assert exit_.value.code == 1
    report = json.loads(capsys.readouterr().out)
    assert [e["row"] for e in report["enrolled"]] == [2, 6]
    assert [e["row"] for e in report["errors"]] == [3, 4, 5]
    assert "phone" in report["errors"][0]["error"]
    assert "unknown procedure" in report["errors"][1]["error"]
    with new_session() as session:
        names = sorted(p.name for p in session.execute(select(Patient)).scalars())
        assert names == ["Ann One", "Eve Five"]  # nothing half-written for the bad rows
