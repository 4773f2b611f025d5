#!/usr/bin/env python
"""What the pain diary costs the scheduler's sweep (no Rasa: the starter is a no-op).

`--patients` medial-branch-block patients are enrolled on a temp migrated SQLite DB
(or `--database-url`), half with diary consent, procedure at the same time. The
sweep (painpath.scheduling.start_due_checkins) then runs every 5 minutes of travelled
time (time-machine) over the first `--hours` hours; each started check-in is
completed at once. `--no-diary`: nobody consents (the baseline). Reported: sweeps, check-ins started (diary prompts and regular),
and the sweep's wall time p50/p95/max in ms, per sweep and per started check-in.

Run:  cd /work/main && PYTHONPATH=/work/main .venv/bin/python bench/diary_sweep.py
      ... bench/diary_sweep.py --patients 200 --hours 9
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--hours", type=float, default=9.0)
    parser.add_argument("--no-diary", action="store_true", help="nobody consents (baseline)")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("PAINPATH_SECRET_KEY", "bench")
    logging.basicConfig(level=logging.WARNING)

    import time_machine
    from sqlalchemy import select

    from painpath.db import new_session
    from painpath.enrollment import EnrollmentRequest, enroll, ensure_clinic
    from painpath.migrate import upgrade
    from painpath.models import CheckIn
    from painpath.scheduling import start_due_checkins

    upgrade(url)
    with new_session() as session, session.begin():
        ensure_clinic(session, "bench", "Bench Clinic", tz_name="America/Chicago")
        for i in range(args.patients):
            enroll(session, EnrollmentRequest(
                clinic_slug="bench", phone=f"+1415555{i:04d}", procedure="medial_branch_block",
                procedure_at="2026-03-10T09:30:00", baseline_pain=7,
                diary_consent=not args.no_diary and i % 2 == 0))
    started = {"diary": 0, "regular": 0}

    def starter(patient_id: str) -> None:
        with new_session() as session, session.begin():
            claimed = session.execute(select(CheckIn).where(
                CheckIn.patient_id == patient_id, CheckIn.status == "starting")).scalars().all()
            for c in claimed:
                c.status, c.completed_at = "completed", datetime.now(timezone.utc)
                started["diary" if c.key.startswith("diary-") else "regular"] += 1

    t0 = datetime(2026, 3, 10, 14, 30, tzinfo=timezone.utc)
    clock, end = t0, t0 + timedelta(hours=args.hours)
    sweeps: list[float] = []
    with time_machine.travel(clock, tick=False) as traveller:
        while clock < end:
            s = time.perf_counter()
            start_due_checkins(starter=starter, concurrency=4)
            sweeps.append((time.perf_counter() - s) * 1000)
            clock += timedelta(minutes=5)
            traveller.move_to(clock)
    sweeps.sort()
    total = started["diary"] + started["regular"]
    who = "nobody" if args.no_diary else "half"
    print(f"patients {args.patients} ({who} with diary consent), {len(sweeps)} sweeps over "
          f"{args.hours:g} h; started {total} (diary-only {started['diary']}, "
          f"regular {started['regular']})")
    print(f"sweep ms p50 {statistics.median(sweeps):.1f}  "
          f"p95 {sweeps[int(0.95 * (len(sweeps) - 1))]:.1f}  max {sweeps[-1]:.1f}; "
          f"{sum(sweeps) / max(total, 1):.2f} ms per started check-in")
    print(f"load average {os.getloadavg()[0]:.2f} (shared machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
