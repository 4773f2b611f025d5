"""The check-in: which question comes next, what an answer means, the summary.

Rasa's form asks and listens; this module decides. Every answer is written to
the database as it arrives, so a paused or interrupted check-in loses nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath import diary
from painpath.content import Question, get_content, message
from painpath.escalation import Raised, raise_flag, urgent_reply_for
from painpath.models import Answer, CheckIn, Enrollment, Patient, utcnow
from painpath.parsing import KINDS, parse_answer

logger = logging.getLogger(__name__)

MAX_FAILURES = 2  # after this many unusable answers the item is recorded unanswered
UNANSWERED = "unanswered"
OPEN_STATUSES = ("in_progress", "paused", "starting")


@dataclass
class Outcome:
    """What happened to one answer."""

    status: str  # accepted | reask | unanswered
    value: float | int | bool | None = None
    replies: list[str] = field(default_factory=list)
    raised: Raised | None = None
    stop_checkin: bool = False  # an emergency answer ends the check-in


def question(item: str) -> Question:
    """The content of question `item`."""
    return get_content().questions[item]


def next_checkin(session: Session, patient_id: str) -> CheckIn | None:
    """The check-in to run now: an open one first, else the earliest scheduled."""
    base = (select(CheckIn).join(Enrollment).where(
        CheckIn.patient_id == patient_id, Enrollment.status == "active"))
    open_one = session.execute(
        base.where(CheckIn.status.in_(OPEN_STATUSES)).order_by(CheckIn.due_at)
    ).scalars().first()
    if open_one is not None:
        return open_one
    return session.execute(
        base.where(CheckIn.status == "scheduled").order_by(CheckIn.due_at)
    ).scalars().first()


def _answers(session: Session, checkin_id: int) -> dict[str, Answer]:
    rows = session.execute(select(Answer).where(Answer.checkin_id == checkin_id)).scalars()
    return {a.item: a for a in rows}


def remaining_items(session: Session, checkin: CheckIn) -> list[str]:
    """Items still to ask, in order (pending ones included)."""
    done = {item for item, a in _answers(session, checkin.id).items() if a.status != "pending"}
    return [item for item in checkin.items if item not in done]


def begin(session: Session, checkin: CheckIn) -> tuple[str, list[str]]:
    """Mark `checkin` in progress. Returns (intro text, remaining items)."""
    resuming = checkin.status in ("in_progress", "paused") and checkin.started_at is not None
    checkin.status = "in_progress"
    checkin.started_at = checkin.started_at or utcnow()
    items = remaining_items(session, checkin)
    if resuming:
        return message("checkin_resume"), items
    patient = session.get(Patient, checkin.patient_id)
    if diary.is_diary_only(checkin):  # a one-question diary prompt: a one-line intro
        return diary.text("intro", clinic=patient.clinic.name), items
    minutes = max(1, round(len(items) * 0.4))
    intro = message(
        "checkin_intro",
        name_part=f" {patient.name.split()[0]}" if patient.name else "",
        clinic=patient.clinic.name, minutes=minutes, minutes_s="" if minutes == 1 else "s",
    )
    return intro, items


def submit(session: Session, checkin_id: int, item: str, text: str,
           raise_flags: bool = True) -> Outcome:
    """Record the patient's `text` as the answer to `item` of check-in `checkin_id`.

    A "yes" to a safety question raises its flag unless `raise_flags` is False
    (the caller escalates itself).
    """
    checkin = session.get(CheckIn, checkin_id)
    if checkin is None or item not in checkin.items:
        raise ValueError(f"check-in {checkin_id} has no item {item!r}")
    q = question(item)
    answer = _answers(session, checkin_id).get(item)
    if answer is None:
        answer = Answer(checkin_id=checkin_id, item=item, status="pending", attempts=0)
        session.add(answer)
    answer.attempts += 1
    answer.raw_text = (text or "")[:2000]
    value = parse_answer(KINDS[q.kind], text or "")
    if value is None:
        if answer.attempts >= MAX_FAILURES:
            answer.status = "unanswered"
            answer.value = None
            session.flush()
            return Outcome(status="unanswered", value=UNANSWERED,
                           replies=[message("checkin_moving_on")])
        session.flush()
        return Outcome(status="reask")
    answer.status = "answered"
    answer.value = float(value)
    if item == get_content().instruments["baseline"]:
        enrollment = session.get(Enrollment, checkin.enrollment_id)
        enrollment.baseline_pain = float(value)
    session.flush()
    outcome = Outcome(status="accepted", value=value)
    if q.kind == "yesno" and value is True and q.flag_tier and raise_flags:
        outcome.raised = raise_flag(session, checkin.patient_id, q.flag_tier,
                                    [q.flag_reason or q.label], text=text, checkin_id=checkin_id)
        emergency = get_settings_emergency(session, checkin.patient_id)
        outcome.replies.append(
            urgent_reply_for(session, outcome.raised.escalation_id) if q.flag_tier == "urgent"
            else message(f"safety_flag_{q.flag_tier}", emergency_number=emergency))
        if q.flag_tier == "emergency":
            outcome.stop_checkin = True
            checkin.status = "completed"
            checkin.completed_at = utcnow()
    return outcome


def final_answer(session: Session, checkin_id: int, item: str) -> tuple[bool, object]:
    """(True, value) when `item` already has a final answer (value None if unanswered)."""
    answer = _answers(session, checkin_id).get(item)
    if answer is None or answer.status == "pending":
        return False, None
    if answer.status == "unanswered":
        return True, UNANSWERED
    q = question(item)
    return True, (bool(answer.value) if q.kind == "yesno" else _plain(answer.value))


def _plain(value: float | None) -> float | int | None:
    return int(value) if value is not None and float(value).is_integer() else value


def try_answer(session: Session, checkin_id: int, item: str, text: str) -> Outcome | None:
    """Record `text` as the answer to `item` only if it parses (a red-flag message
    that also answers the question); no failure is counted otherwise."""
    q = question(item)
    if parse_answer(KINDS[q.kind], text or "") is None:
        return None
    return submit(session, checkin_id, item, text, raise_flags=False)


def get_settings_emergency(session: Session, patient_id: str) -> str:
    """The emergency number of the patient's clinic (911 in the US)."""
    patient = session.get(Patient, patient_id)
    return patient.clinic.emergency_number or "911"


def pause(session: Session, checkin_id: int) -> str:
    """Pause a check-in so the patient can finish it later."""
    checkin = session.get(CheckIn, checkin_id)
    if checkin is not None and checkin.status == "in_progress":
        checkin.status = "paused"
    return message("checkin_paused")


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def finish(session: Session, checkin_id: int) -> str:
    """Complete the check-in (unasked items recorded unanswered) and return the summary."""
    checkin = session.get(CheckIn, checkin_id)
    answers = _answers(session, checkin_id)
    for item in checkin.items:
        if item not in answers:
            session.add(Answer(checkin_id=checkin_id, item=item, status="unanswered"))
        elif answers[item].status == "pending":
            answers[item].status = "unanswered"
    checkin.status = "completed"
    checkin.completed_at = checkin.completed_at or utcnow()
    session.flush()
    return summary(session, checkin)


def summary(session: Session, checkin: CheckIn) -> str:
    """A short personal summary: pain before → now, relief."""
    answers = {a.item: a.value for a in _answers(session, checkin.id).values()
               if a.status == "answered"}
    if diary.is_diary_only(checkin):  # numbers go to the care team; no verdict (§2.5)
        return diary.text("done" if diary.diary_item() in answers else "done_no_answer")
    enrollment = session.get(Enrollment, checkin.enrollment_id)
    parts = [message("checkin_done")]
    now = answers.get("pain_now")
    if now is not None and enrollment.baseline_pain is not None:
        parts.append(message("summary_pain_change", before=_fmt(enrollment.baseline_pain),
                             now=_fmt(now)))
    elif now is not None:
        parts.append(message("summary_pain_now", now=_fmt(now)))
    if answers.get("percent_relief") is not None:
        parts.append(message("summary_relief", relief=_fmt(answers["percent_relief"])))
    if len(parts) == 1:
        parts.append(message("summary_no_answers"))
    else:
        parts.append(message("summary_next"))
    return " ".join(parts)
