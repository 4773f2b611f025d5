"""Unprompted contact with a patient: when it may go, and when it must wait.

Every path that contacts a patient unprompted — check-in starts and diary prompts,
check-in reminders, scheduled exercise prompts (pacing, activity reviews), weekly
summaries, the welcome at enrolment — follows two rules, decided here and nowhere else:

- **The send window.** Only inside the clinic's window (default 08:00–21:00) of the
  patient's own day (CLINICAL.md §6); what may not go now waits for the window to
  open (`window_opens`). Replies to the patient and alerts to clinicians are not
  outreach and are never held back.
- **The hold.** While an emergency or crisis escalation of the patient is open (not
  resolved), no routine outreach goes to them (DESIGN.md). Each path asks `holds_for`
  before it contacts anyone and records what it held back with `hold` (an
  `OutreachHold` row and a line in the escalation's history). The dispatcher is the
  last line: an outbox row written as routine outreach (`Message.purpose ==
  "outreach"`) and claimed while its patient is held is not sent (`stop_claimed`).
  When a clinician resolves the patient's last such escalation the holds are released
  (`release`): what is still worth sending goes back to its normal schedule
  ("resumed"); what is no longer relevant is "skipped" and says so.

Plain SQLAlchemy on the models: this module imports no other PainPath service, so
every service (scheduling, programs, dispatch, escalation, enrolment) can use it.
"""
from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from painpath.models import (
    CheckIn,
    Clinic,
    Escalation,
    EscalationEvent,
    ExerciseSession,
    Message,
    OutreachHold,
    Patient,
)

logger = logging.getLogger(__name__)

QUIET_END = time(8, 0)  # unprompted messages only from 08:00 …
QUIET_START = time(21, 0)  # … until 21:00, patient's local time (CLINICAL.md §6)

HOLD_TIERS = ("emergency", "crisis")
HOLD_STATUSES = ("open", "acknowledged")  # anything but resolved

OUTREACH = "outreach"  # Message.purpose of routine, unprompted messages (held)
WELCOME = "welcome"  # Message.purpose of the enrolment welcome (never held)

# how long a contact that could not go on time is still worth sending
RELEVANT_FOR_DAYS = timedelta(hours=48)  # a check-in a day or more after the procedure
RELEVANT_FOR_HOURS = timedelta(hours=12)  # the same-day (hour-offset) check-ins
EXERCISE_RELEVANT_FOR = timedelta(hours=12)  # a pacing prompt or activity review
ANSWER_WINDOW = timedelta(hours=24)  # a started check-in not finished by then is missed

# OutreachHold.kind
CHECKIN, REMINDER, EXERCISE, SUMMARY, MESSAGE = (
    "checkin", "reminder", "exercise", "summary", "message")
RESUMED, SKIPPED = "resumed", "skipped"


# --- the send window ----------------------------------------------------------------

def _hhmm(text: str | None, default: time) -> time:
    if not text:
        return default
    h, m = text.split(":")
    return time(int(h), int(m))


def in_quiet_hours(now: datetime, tz_name: str, clinic: Clinic | None = None) -> bool:
    """True when `now` is outside the send window (default 08:00–21:00, the
    clinic's own when given) in the patient's own time zone."""
    start = _hhmm(clinic.send_from if clinic else None, QUIET_END)
    end = _hhmm(clinic.send_until if clinic else None, QUIET_START)
    local = now.astimezone(ZoneInfo(tz_name)).time()
    inside = start <= local < end if start <= end else (local >= start or local < end)
    return not inside


def window_opens(now: datetime, tz_name: str, clinic: Clinic | None = None) -> datetime:
    """`now` when it is inside the send window, else the moment the window next opens
    (in UTC), in the patient's own time zone."""
    if not in_quiet_hours(now, tz_name, clinic):
        return now
    zone = ZoneInfo(tz_name)
    local = now.astimezone(zone)
    start = _hhmm(clinic.send_from if clinic else None, QUIET_END)
    opens = datetime.combine(local.date(), start, tzinfo=zone)
    if opens <= local:
        opens = datetime.combine(local.date() + timedelta(days=1), start, tzinfo=zone)
    return opens.astimezone(now.tzinfo)


def still_relevant(checkin: CheckIn, now: datetime) -> bool:
    """Whether an overdue check-in is still worth sending now."""
    window = RELEVANT_FOR_HOURS if checkin.day < 1 else RELEVANT_FOR_DAYS
    return now - checkin.due_at <= window


# --- the hold -----------------------------------------------------------------------

def holds_for(session: Session, patient_ids: Iterable[str]) -> dict[str, int]:
    """Patient id → the id of the oldest open emergency or crisis escalation that
    holds their routine outreach (patients who are not held are absent)."""
    ids = list(dict.fromkeys(patient_ids))
    held: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(Escalation.patient_id, Escalation.id).where(
                Escalation.patient_id.in_(ids[start:start + 500]),
                Escalation.kind == "red_flag", Escalation.tier.in_(HOLD_TIERS),
                Escalation.status.in_(HOLD_STATUSES))
            .order_by(Escalation.id)).all()
        for patient_id, escalation_id in rows:
            held.setdefault(patient_id, escalation_id)
    return held


def holding(session: Session, patient_id: str) -> int | None:
    """The open emergency or crisis escalation holding the patient's outreach, if any."""
    return holds_for(session, [patient_id]).get(patient_id)


def refuse_if_held(session: Session, patient_id: str) -> None:
    """For a contact started by hand (`painpath checkin start`) or by a scheduler job
    after its own check: LookupError while the patient's outreach is held."""
    escalation_id = holding(session, patient_id)
    if escalation_id is not None:
        raise LookupError(f"patient {patient_id}: routine outreach is held while escalation "
                          f"#{escalation_id} is open (resolve it first)")


def hold(session: Session, patient_id: str, escalation_id: int, kind: str, ref: object,
         detail: str, now: datetime) -> bool:
    """Record that `kind` `ref` was held back for the patient. Once per item while the
    hold lasts; returns True when it was recorded now."""
    ref = str(ref)
    seen = session.execute(select(OutreachHold.id).where(
        OutreachHold.patient_id == patient_id, OutreachHold.kind == kind,
        OutreachHold.ref == ref, OutreachHold.released_at.is_(None))).first()
    if seen is not None:
        return False
    session.add(OutreachHold(patient_id=patient_id, escalation_id=escalation_id, kind=kind,
                             ref=ref, detail=detail, held_at=now))
    session.add(EscalationEvent(escalation_id=escalation_id, action="outreach_held",
                                detail=detail, at=now))
    logger.info("escalation %s open: %s %s held", escalation_id, kind, ref)
    return True


def held(session: Session, patient_id: str, kind: str, ref: object, detail: str,
         now: datetime, holds: dict[str, int] | None = None) -> bool:
    """True when the patient's outreach is held now (and records `kind` `ref` as held).
    `holds`: a `holds_for` answer the caller already has for many patients."""
    escalation_id = holds.get(patient_id) if holds is not None else holding(session, patient_id)
    if escalation_id is None:
        return False
    hold(session, patient_id, escalation_id, kind, ref, detail, now)
    return True


def stop_claimed(session: Session, claimed: list[tuple[int, str | None, str | None]],
                 now: datetime) -> set[int]:
    """The dispatcher's check of claimed rows `(message id, patient id, purpose)`: routine
    outreach to a held patient is not sent (status "held", recorded), outreach or a
    welcome to a patient who has opted out of SMS is cancelled. Returns the ids
    taken out of the claim."""
    routine = [(m, p, purpose) for m, p, purpose in claimed
               if p is not None and purpose in (OUTREACH, WELCOME)]
    if not routine:
        return set()
    holds = holds_for(session, [p for _, p, purpose in routine if purpose == OUTREACH])
    opted_out = set(session.execute(select(Patient.id).where(
        Patient.id.in_([p for _, p, _ in routine]), Patient.sms_opted_out.is_(True))).scalars())
    stopped: dict[int, tuple[str, str | None]] = {}
    for message_id, patient_id, purpose in routine:
        if patient_id in opted_out:
            stopped[message_id] = ("cancelled", "opted out of SMS before it was sent")
        elif purpose == OUTREACH and patient_id in holds:
            stopped[message_id] = ("held", None)
            hold(session, patient_id, holds[patient_id], MESSAGE, message_id,
                 f"queued message #{message_id}", now)
    for message_id, (status, error) in stopped.items():
        session.execute(update(Message).where(Message.id == message_id).values(
            status=status, error=error, claimed_by=None, lease_until=None, unsure_since=None,
            updated_at=now).execution_options(synchronize_session=False))
    return set(stopped)


# --- lifting the hold ---------------------------------------------------------------

def _checkin_outcome(checkin: CheckIn | None, latest: int | None, now: datetime) -> str:
    """A held check-in: resumed when it is the patient's most recent one still due and
    still relevant; otherwise marked missed (never sent, so no nurse task) and skipped."""
    if checkin is None or checkin.status != "scheduled":
        return SKIPPED
    if checkin.id == latest and still_relevant(checkin, now):
        return RESUMED
    checkin.status = "missed"
    return SKIPPED


def _reminder_outcome(checkin: CheckIn | None, now: datetime) -> str:
    if checkin is None or checkin.status not in ("in_progress", "paused") or \
            checkin.reminder_sent_at is not None or checkin.started_at is None or \
            checkin.started_at <= now - ANSWER_WINDOW:
        return SKIPPED
    return RESUMED  # the usual rule sends it (once, in the window, under the cap)


def _exercise_outcome(row: ExerciseSession | None, now: datetime) -> str:
    if row is None or row.status != "scheduled" or row.due_at is None:
        return SKIPPED
    # one too late is marked missed by the programs' sweep, which schedules the next
    return RESUMED if row.due_at >= now - EXERCISE_RELEVANT_FOR else SKIPPED


def release(session: Session, patient_id: str, now: datetime) -> list[OutreachHold]:
    """Lift the patient's holds once no emergency or crisis escalation is open: each
    held item is resumed (back on its normal schedule) or skipped. Returns the
    records released (none while the patient is still held)."""
    if holding(session, patient_id) is not None:
        return []
    rows = session.execute(select(OutreachHold).where(
        OutreachHold.patient_id == patient_id, OutreachHold.released_at.is_(None))
        .order_by(OutreachHold.id)).scalars().all()
    if not rows:
        return []
    checkin_ids = [int(r.ref) for r in rows if r.kind in (CHECKIN, REMINDER)]
    checkins = {c.id: c for c in session.execute(
        select(CheckIn).where(CheckIn.id.in_(checkin_ids))).scalars()} if checkin_ids else {}
    due = [checkins[int(r.ref)] for r in rows if r.kind == CHECKIN and int(r.ref) in checkins
           and checkins[int(r.ref)].status == "scheduled" and checkins[int(r.ref)].due_at <= now]
    latest = max(due, key=lambda c: (c.due_at, c.id)).id if due else None
    for row in rows:
        if row.kind == CHECKIN:
            row.outcome = _checkin_outcome(checkins.get(int(row.ref)), latest, now)
        elif row.kind == REMINDER:
            row.outcome = _reminder_outcome(checkins.get(int(row.ref)), now)
        elif row.kind == EXERCISE:
            row.outcome = _exercise_outcome(session.get(ExerciseSession, int(row.ref)), now)
        elif row.kind == SUMMARY:
            row.outcome = RESUMED  # the next weekly run sends it
        else:
            row.outcome = SKIPPED  # a held outbox row is never sent late
        row.released_at = now
    _record_release(session, rows, now)
    return rows


def _record_release(session: Session, rows: list[OutreachHold], now: datetime) -> None:
    """One line per escalation in its history: what was resumed and what was skipped."""
    by_escalation: dict[int, list[OutreachHold]] = {}
    for row in rows:
        by_escalation.setdefault(row.escalation_id, []).append(row)
    for escalation_id, items in by_escalation.items():
        detail = "; ".join(f"{r.detail or r.kind} {r.outcome}" for r in items)
        session.add(EscalationEvent(escalation_id=escalation_id, action="outreach_released",
                                    detail=detail[:2000], at=now))
    logger.info("%d held item(s) released (escalation %s)", len(rows),
                ", ".join(str(e) for e in by_escalation))


def release_lifted(session: Session, now: datetime) -> int:
    """Release the holds of every patient who is no longer held (a safety net for the
    release that `escalation.resolve` does at once). Returns the items released."""
    patients = session.execute(select(OutreachHold.patient_id).where(
        OutreachHold.released_at.is_(None)).distinct()).scalars().all()
    if not patients:
        return 0
    still = holds_for(session, patients)
    return sum(len(release(session, p, now)) for p in patients if p not in still)
