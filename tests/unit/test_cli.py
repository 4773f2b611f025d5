"""The `painpath` CLI contract (DESIGN.md)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from painpath.cli import main

SHARED = Path(__file__).resolve().parents[3] / "shared"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_enroll_prints_the_id_and_show_prints_the_record(clinic: str, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "enroll", "--clinic", clinic, "--phone", "415-555-0116",
                       "--procedure", "scs_trial", "--procedure-at", "2026-11-20T08:00:00Z")
    assert code == 0
    patient_id = out.strip()
    code, out, _ = run(capsys, "patient", "show", patient_id, "--json")
    record = json.loads(out)
    assert record["id"] == patient_id and record["procedure"] == "scs_trial"
    assert record["checkins"][0] == {"id": record["checkins"][0]["id"], "key": "1d",
                                     "due_at": "2026-11-21T08:00:00Z", "status": "scheduled",
                                     "answers": {}}
    assert record["escalations"] == []
    # the welcome SMS is queued at enrolment (the dispatcher sends it)
    assert [(m["direction"], m["status"]) for m in record["messages"]] == [("out", "queued")]
    assert record["messages"][0]["body"].startswith("Welcome to Test Pain Clinic")


def test_enroll_errors_exit_non_zero_with_a_clear_message(clinic: str, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, "enroll", "--clinic", clinic, "--phone", "+1 555",
                         "--procedure", "scs_trial", "--procedure-at", "2026-11-20T08:00:00Z")
    assert code == 2 and "phone" in err and out == ""


def test_clinician_add_with_a_login(clinic: str, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    code, out, _ = run(capsys, "clinician", "add", "--clinic", clinic, "--name", "Bea Backup",
                       "--phone", "+14155550144", "--on-call", "backup", "--username", "bea",
                       "--json")
    assert code == 0 and json.loads(out)["id"] > 0
    from sqlalchemy import select

    from painpath.db import new_session
    from painpath.models import Clinician

    with new_session() as session:
        bea = session.execute(select(Clinician).where(Clinician.username == "bea")).scalar_one()
        assert bea.on_call == "backup" and bea.password_hash.startswith("$argon2")


def test_triage_cli_passes_other_keys_through(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "x1", "text": "temp is 102.5 and chills",
                               "procedure": "epidural_steroid_injection", "extra": 5}) + "\n"
                   + json.dumps({"id": "x2", "text": "no fever today", "procedure": None}) + "\n")
    code, out, _ = run(capsys, "triage", "--jsonl", str(src))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["id"] for r in rows] == ["x1", "x2"]
    assert rows[0]["tier"] == "urgent" and rows[0]["extra"] == 5 and rows[0]["reasons"]
    assert rows[1]["tier"] == "none" and rows[1]["reasons"] == []
    code, out, _ = run(capsys, "triage", "--json", "--procedure", "scs_implant",
                       "i", "cant", "feel", "my", "legs")
    assert json.loads(out)["tier"] == "emergency"


def test_parse_answer_cli_on_the_dev_set(capsys) -> None:  # type: ignore[no-untyped-def]
    dev = SHARED / "eval" / "dev" / "numbers.jsonl"
    if not dev.exists():
        pytest.skip("shared eval set not present")
    code, out, _ = run(capsys, "parse-answer", "--jsonl", str(dev))
    rows = [json.loads(line) for line in out.splitlines()]
    exact = sum(1 for r in rows if r["value"] == r["expected"])
    assert code == 0 and len(rows) == 40 and exact >= 38
    code, out, _ = run(capsys, "parse-answer", "--question", "pain_0_10", "a", "6", "maybe", "7")
    assert out.strip() == "7"
    code, out, _ = run(capsys, "parse-answer", "--question", "percent_relief", "no idea")
    assert out.strip() == "null"


def test_on_call_hours_and_clinic_escalation_settings(clinic: str, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "clinician", "add", "--clinic", clinic, "--name", "Nia Night",
                       "--phone", "+14155550145", "--on-call", "primary",
                       "--on-call-hours", "20:00-08:00", "--json")
    assert code == 0
    code, _, err = run(capsys, "clinician", "add", "--clinic", clinic, "--name", "X",
                       "--phone", "+14155550146", "--on-call-hours", "25:00-08:00")
    assert code == 2 and "08:00-18:00" in err
    code, out, _ = run(capsys, "clinic", "set", "--clinic", clinic, "--ack-minutes-emergency",
                       "3", "--fallback-phone", "(415) 555-0147", "--json")
    assert code == 0 and json.loads(out)["fallback_phone"] == "+14155550147"
    assert json.loads(out)["ack_minutes_emergency"] == 3
    code, _, err = run(capsys, "clinic", "set", "--clinic", clinic, "--ack-minutes-urgent", "0")
    assert code == 2
    from sqlalchemy import select

    from painpath.db import new_session
    from painpath.models import Clinician

    with new_session() as session:
        nia = session.execute(select(Clinician).where(Clinician.name == "Nia Night")).scalar_one()
        assert (nia.on_call, nia.on_call_start, nia.on_call_end) == ("primary", "20:00", "08:00")
        # the earlier primary of the clinic is no longer primary
        assert session.execute(select(Clinician).where(Clinician.on_call == "primary")).scalars().all() == [nia]
