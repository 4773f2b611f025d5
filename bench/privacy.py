"""How long a patient export and a patient deletion take, for a patient with a
realistic record, among many other patients (SQLite by default; DATABASE_URL for
PostgreSQL: the database is emptied first, so never point it at real data).

    .venv/bin/python bench/privacy.py [--patients 200] [--runs 5] [--database-url URL]

Each run seeds one measured patient with 90 days of follow-up (12 check-ins with 6
answers each, 200 messages, 3 escalations with their events, consents) among
`--patients` others with the same record, then times `export_patient` and
`delete_patient` (schema discovery included). Results go to bench/results/privacy.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select, text  # noqa: E402

from painpath.db import get_engine, new_session  # noqa: E402
from painpath.enrollment import EnrollmentRequest, enroll, ensure_clinic  # noqa: E402
from painpath.escalation import raise_flag  # noqa: E402
from painpath.migrate import upgrade  # noqa: E402
from painpath.models import Answer, CheckIn, Clinician, Consent, Message, utcnow  # noqa: E402
from painpath.privacy import delete_patient, export_patient  # noqa: E402

OUT = ROOT / "bench" / "results" / "privacy.json"
ITEMS = ("safety_neuro", "safety_headache", "pain_baseline", "pain_now", "percent_relief", "pgic")


def seed_patient(n: int) -> str:
    phone = f"+1415{5550000 + n:07d}"[:12]
    with new_session() as session, session.begin():
        patient = enroll(session, EnrollmentRequest(
            clinic_slug="bench", phone=phone, procedure="radiofrequency_ablation",
            procedure_at=utcnow() - timedelta(days=90), timezone="America/Chicago",
            name=f"Bench Patient {n}"))
        pid = patient.id
        checkins = session.execute(select(CheckIn).where(CheckIn.patient_id == pid)
                                   ).scalars().all()
        for c in checkins[:12]:
            session.add_all([Answer(checkin_id=c.id, item=item, value=3, raw_text="about 3",
                                    status="answered") for item in ITEMS])
        session.add_all([Message(patient_id=pid, direction="in" if i % 2 else "out",
                                 channel="sms", from_=phone, to="+14155550000",
                                 body=f"message {i} with some words in it", status="delivered")
                         for i in range(200)])
        session.add_all([Consent(patient_id=pid, event=e, source="keyword")
                         for e in ("opt_in", "help", "opt_out")])
    with new_session() as session, session.begin():
        for tier in ("urgent", "routine", "emergency"):
            raise_flag(session, pid, tier, [f"{tier} reason"], text="my leg is numb")
    return pid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=200, help="other patients in the database")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--database-url", help="default: a new SQLite file")
    args = ap.parse_args(argv)

    import os

    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='pp-bench-')}/bench.db"
    os.environ["DATABASE_URL"] = url
    if url.startswith("postgresql"):
        with get_engine(url).begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(url)
    with new_session() as session, session.begin():
        clinic = ensure_clinic(session, "bench", "Bench Clinic")
        session.add(Clinician(clinic_id=clinic.id, name="Bench Nurse", phone="+14155550166",
                              on_call="primary"))
    t0 = time.perf_counter()
    for n in range(args.patients):
        seed_patient(n)
    seeded = time.perf_counter() - t0
    export_ms, delete_ms, rows = [], [], 0
    for run in range(args.runs):
        pid = seed_patient(100_000 + run)
        t = time.perf_counter()
        data = export_patient(pid, via="bench")
        export_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        result = delete_patient(pid, via="bench")
        delete_ms.append((time.perf_counter() - t) * 1000)
        rows = result.total
        assert sum(data["row_counts"].values()) >= rows
    figures = {
        "database": url.split(":", 1)[0], "other_patients": args.patients, "runs": args.runs,
        "rows_per_patient": rows,
        "export_ms_median": round(statistics.median(export_ms), 1),
        "export_ms_max": round(max(export_ms), 1),
        "delete_ms_median": round(statistics.median(delete_ms), 1),
        "delete_ms_max": round(max(delete_ms), 1),
        "seed_seconds": round(seeded, 1),
        "note": "shared 2-core machine; other engineers' processes were running",
    }
    print(json.dumps(figures, indent=2))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results[figures["database"]] = figures
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
