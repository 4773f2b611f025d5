"""Intrathecal pumps: the drug picks the withdrawal question, refills and dose changes
get a safety check-in a day later, the refill date gets a reminder (CLINICAL.md §1.8, §5).

Overdose is the same emergency for every pump; withdrawal is not: an opioid pump
running low looks like opioid withdrawal, a baclofen pump like itching, tingling and
spasms coming back (with a severe form that is an emergency). The drug recorded at
enrolment (`Enrollment.pump_drug`) keeps only its own withdrawal question; a drug
not recorded, or "other", gets both, so nothing is lost by not knowing.

Event check-ins (after a refill or dose change, the refill reminder, the missed-refill
question) are tied to a wall-clock time, not to the procedure: their keys start with
`EVENT_PREFIX`, and rescheduling the protocol keeps them.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath.content import PUMP_DRUGS, get_content, parse_offset
from painpath.models import CheckIn, Enrollment, Patient, utcnow

PUMP_PROCEDURE = "intrathecal_pump"
EVENT_PREFIX = "pump-"
CHANGE_KINDS = ("refill", "dose_change")
DEFAULT_DRUG = "other"  # not recorded: ask about both kinds of withdrawal
REMINDER_HOUR = 10  # the reminder and the missed-refill question go out mid-morning


class PumpError(ValueError):
    """An invalid pump record (unknown drug, not a pump patient, bad date)."""


def check_drug(value: str | None) -> str | None:
    """`value` as a pump drug (None stays None), or PumpError."""
    if value is None or value == "":
        return None
    drug = str(value).strip().lower()
    if drug not in PUMP_DRUGS:
        raise PumpError(f"pump drug must be one of {', '.join(PUMP_DRUGS)}")
    return drug


def settings() -> dict[str, Any]:
    """The pump-event settings of procedures.yaml (`instruments.pump_events`)."""
    return get_content().instruments["pump_events"]


def drug_items(items: Iterable[str], drug: str | None) -> list[str]:
    """`items` with the pump withdrawal questions fitted to the pump's `drug`.

    For an opioid or baclofen pump, a question about the other drug becomes this
    drug's question (once); for "other" or unknown, every drug's question is asked
    where any one is (a clinic protocol listing one still gets both).
    """
    questions = get_content().questions
    by_drug = {q.pump_drug: q.id for q in questions.values() if q.pump_drug}
    drug = drug or DEFAULT_DRUG
    out: list[str] = []
    for item in items:
        q = questions.get(item)
        if q is None or q.pump_drug is None:
            if item not in out:
                out.append(item)
            continue
        wanted = [by_drug[drug]] if drug in by_drug else list(by_drug.values())
        out.extend(w for w in wanted if w not in out)
    return out


def is_event_key(key: str) -> bool:
    """Whether check-in `key` is a pump event's (kept when the protocol reschedules)."""
    return key.startswith(EVENT_PREFIX)


def _pump_enrollment(session: Session, patient_id: str) -> Enrollment:
    enrollment = session.execute(
        select(Enrollment).where(Enrollment.patient_id == patient_id,
                                 Enrollment.status == "active")
        .order_by(Enrollment.id.desc())).scalars().first()
    if enrollment is None or enrollment.procedure != PUMP_PROCEDURE:
        raise PumpError(f"patient {patient_id} has no active intrathecal pump enrolment")
    return enrollment


def _add(session: Session, enrollment: Enrollment, key: str, due_at: datetime,
         items: list[str]) -> CheckIn:
    """One event check-in (replacing a still-scheduled one with the same key)."""
    old = session.execute(select(CheckIn).where(
        CheckIn.enrollment_id == enrollment.id, CheckIn.key == key)).scalar_one_or_none()
    if old is not None:
        if old.status != "scheduled":
            return old
        session.delete(old)
        session.flush()
    day = (due_at - enrollment.procedure_at).total_seconds() / 86400
    checkin = CheckIn(enrollment_id=enrollment.id, patient_id=enrollment.patient_id, key=key,
                      day=day, items=items, due_at=due_at)
    session.add(checkin)
    session.flush()
    return checkin


def change_items(drug: str | None) -> list[str]:
    """The questions of the check-in after a refill or dose change, for `drug`."""
    return drug_items(settings()["after_change_items"], drug)


def record_change(session: Session, patient_id: str, kind: str,
                  at: datetime | None = None, next_refill: date | None = None) -> CheckIn:
    """A refill or dose change done at `at` (default now): schedules the safety
    check-in `after_change` later (overdose risk is highest then, §1.8). A refill
    also ends the reminders of the refill it was (no missed-refill question) and
    records `next_refill`, if given."""
    if kind not in CHANGE_KINDS:
        raise PumpError(f"kind must be one of {', '.join(CHANGE_KINDS)}")
    enrollment = _pump_enrollment(session, patient_id)
    at = at or utcnow()
    due = at + parse_offset(settings()["after_change"])
    key = f"{EVENT_PREFIX}{'refill' if kind == 'refill' else 'dose'}-{due:%Y%m%d%H%M}"
    checkin = _add(session, enrollment, key, due, change_items(enrollment.pump_drug))
    if kind == "refill":
        set_refill_due(session, patient_id, next_refill, at)
    elif next_refill is not None:
        set_refill_due(session, patient_id, next_refill, at)
    return checkin


def _local_morning(day: date, tz_name: str) -> datetime:
    return datetime.combine(day, time(REMINDER_HOUR), ZoneInfo(tz_name)).astimezone(
        ZoneInfo("UTC"))


def refill_day(enrollment: Enrollment, tz_name: str) -> date | None:
    """The refill date in the patient's time zone (None: not recorded)."""
    if enrollment.pump_refill_due is None:
        return None
    return enrollment.pump_refill_due.astimezone(ZoneInfo(tz_name)).date()


def set_refill_due(session: Session, patient_id: str, due: date | None,
                   now: datetime | None = None) -> list[CheckIn]:
    """Record the next refill date (None: clear it) and plan its reminder and the
    missed-refill question; earlier ones not yet sent are dropped."""
    enrollment = _pump_enrollment(session, patient_id)
    patient = session.get(Patient, patient_id)
    for old in session.execute(select(CheckIn).where(
            CheckIn.enrollment_id == enrollment.id, CheckIn.status == "scheduled",
            CheckIn.key.like(f"{EVENT_PREFIX}due-%") | CheckIn.key.like(
                f"{EVENT_PREFIX}missed-%"))).scalars():
        session.delete(old)
    session.flush()
    enrollment.pump_refill_due = _local_morning(due, patient.timezone) if due else None
    if due is None:
        return []
    now = now or utcnow()
    cfg = settings()
    reminder = _local_morning(due - timedelta(days=int(cfg["reminder_days_before"])),
                              patient.timezone)
    missed = _local_morning(due + timedelta(days=int(cfg["missed_days_after"])),
                            patient.timezone)
    if reminder <= now < _local_morning(due, patient.timezone):
        reminder = now  # recorded less than a week ahead: remind now (the send window applies)
    created = []
    if reminder >= now:
        created.append(_add(session, enrollment, f"{EVENT_PREFIX}due-{due:%Y%m%d}", reminder,
                            [cfg["reminder_item"]]))
    if missed > now:
        created.append(_add(session, enrollment, f"{EVENT_PREFIX}missed-{due:%Y%m%d}", missed,
                            [cfg["missed_item"]]))
    return created


def set_drug(session: Session, patient_id: str, drug: str | None) -> Enrollment:
    """Record the pump's drug; check-ins not yet sent ask its withdrawal question."""
    enrollment = _pump_enrollment(session, patient_id)
    enrollment.pump_drug = check_drug(drug)
    for checkin in session.execute(select(CheckIn).where(
            CheckIn.enrollment_id == enrollment.id, CheckIn.status == "scheduled")).scalars():
        fitted = drug_items(checkin.items, enrollment.pump_drug)
        if fitted != list(checkin.items):
            checkin.items = fitted
    session.flush()
    return enrollment


def describe(procedure_id: str) -> list[dict[str, Any]]:
    """The pump event check-ins, for `painpath protocol show` (empty for other procedures)."""
    if procedure_id != PUMP_PROCEDURE:
        return []
    cfg = settings()
    return [
        {"key": "after refill or dose change", "after": cfg["after_change"],
         "items": change_items(None)},
        {"key": "refill reminder", "before_refill_days": int(cfg["reminder_days_before"]),
         "items": [cfg["reminder_item"]]},
        {"key": "missed refill", "after_refill_days": int(cfg["missed_days_after"]),
         "items": [cfg["missed_item"]]},
    ]
