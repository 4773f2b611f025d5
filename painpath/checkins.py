"""The check-in: which question comes next, what an answer means, the summary.

Rasa's form asks and listens; this module decides. Every answer is written to
the database as it arrives, so a paused or interrupted check-in loses nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath import diary, glucose, mood, pumps, weblink
from painpath.content import SAFETY_KINDS, Question, get_content, message
from painpath.escalation import Raised, handle_red_flag, one_tier_up
from painpath.models import Answer, CheckIn, Enrollment, Patient, utcnow
from painpath.ownership import checkin_of
from painpath.parsing import KINDS, parse_answer

logger = logging.getLogger(__name__)

MAX_FAILURES = 2  # after this many unusable answers: unanswered, or one tier up (safety)
UNANSWERED = "unanswered"
WEB = "web"  # the web-chat input channel (bot/painpath_rasa/web_channel.py)
UNCLEAR = "unclear"  # a safety question answered unclearly twice (escalated)
OPEN_STATUSES = ("in_progress", "paused", "starting")


@dataclass
class Outcome:
    """What happened to one answer."""

    status: str  # accepted | reask | unanswered | unclear
    value: float | int | bool | str | None = None
    replies: list[str] = field(default_factory=list)
    raised: Raised | None = None
    stop_checkin: bool = False  # an emergency answer ends the check-in
    follow_up: str | None = None  # the question now asked next (after a "yes")
    # a screen to ask next through painpath/screening.py (ASQ item 5 after a yes or
    # an unclear answer to ASQ items 1-4), at `screen_tier`, linked to `escalation_id`
    screen: str | None = None
    added: list[str] = field(default_factory=list)  # questions added to the check-in (ASQ)
    screen_tier: str | None = None
    escalation_id: int | None = None


def question(item: str) -> Question:
    """The content of question `item`."""
    return get_content().questions[item]


def ask_text(session: Session, checkin_id: int | None, item: str, reask: bool = False, *,
             patient_id: str | None = None, channel: str | None = None) -> str:
    """The wording of question `item` in check-in `checkin_id`: its re-ask after an
    unusable answer, `text_first` while the item has never been answered in this
    enrolment ("since your procedure"), else `text` ("since your last check-in"),
    with the clinic's emergency number filled in. With `patient_id`, the check-in
    must be that patient's (NotThePatients). `channel` is the turn's input channel:
    on the web chat a mood question is always asked as itself."""
    q = question(item)
    checkin = _checkin(session, checkin_id, patient_id) if checkin_id is not None else None
    text = q.reask if reask else q.text
    if not reask and q.text_first and (checkin is None
                                       or not _asked_before(session, checkin, item)):
        text = q.text_first
    emergency = get_settings_emergency(session, checkin.patient_id) if checkin else "911"
    if checkin is not None and _by_link(session, checkin, item):
        if channel != WEB:
            return message("mood_by_link", url=weblink.chat_url_in(session, checkin.patient_id))
        text = q.text  # in the chat, even a re-ask gives the question: the SMS had a link
    return text.replace("{emergency_number}", emergency).replace(
        "{refill_date}", _refill_date(session, checkin))


def _refill_date(session: Session, checkin: CheckIn | None) -> str:
    """The pump refill date of the check-in's enrolment, in words ("the date your
    care team gave you" when none is recorded)."""
    if checkin is None:
        return "the date your care team gave you"
    enrollment = session.get(Enrollment, checkin.enrollment_id)
    patient = session.get(Patient, checkin.patient_id)
    day = pumps.refill_day(enrollment, patient.timezone)
    return f"{day:%a %b} {day.day}" if day else "the date your care team gave you"


def _by_link(session: Session, checkin: CheckIn, item: str) -> bool:
    """A mood or ASQ question to an SMS patient of a clinic that sends them by secure
    chat link (CLINICAL.md §6): the text carries the link, not the question."""
    if not mood.is_mood_item(item):
        return False
    patient = session.get(Patient, checkin.patient_id)
    return patient.channel == "sms" and bool(patient.clinic.mood_by_link)


def _asked_before(session: Session, checkin: CheckIn, item: str) -> bool:
    """Whether an earlier check-in of the same enrolment has an answer to `item`."""
    earlier = session.execute(
        select(Answer.id).join(CheckIn, Answer.checkin_id == CheckIn.id).where(
            CheckIn.enrollment_id == checkin.enrollment_id, CheckIn.id != checkin.id,
            CheckIn.due_at < checkin.due_at, Answer.item == item,
            Answer.status.in_(("answered", UNCLEAR)))
    ).first()
    return earlier is not None


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


def _checkin(session: Session, checkin_id: int, patient_id: str | None) -> CheckIn | None:
    """Check-in `checkin_id`; with `patient_id` (the conversation's patient, from the
    action server) only if it is theirs, else NotThePatients."""
    if patient_id is None:
        return session.get(CheckIn, checkin_id)
    return checkin_of(session, checkin_id, patient_id)


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
           raise_flags: bool = True, *, patient_id: str | None = None) -> Outcome:
    """Record the patient's `text` as the answer to `item` of check-in `checkin_id`.

    A "yes" to a safety question raises its flag unless `raise_flags` is False
    (the caller escalates itself), and puts the question's follow-up, if it has
    one, next in the check-in (`Outcome.follow_up`). A safety question answered
    unclearly twice is escalated one tier up (CLINICAL.md §0); any other question
    is then recorded unanswered and the check-in moves on. With `patient_id` the
    check-in must be that patient's (NotThePatients: nothing is recorded).
    """
    checkin = _checkin(session, checkin_id, patient_id)
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
        if answer.attempts < MAX_FAILURES:
            session.flush()
            return Outcome(status="reask")
        return _give_up(session, checkin, q, answer, text)
    answer.status = "answered"
    answer.value = float(value)
    if item == get_content().instruments["baseline"]:
        enrollment = session.get(Enrollment, checkin.enrollment_id)
        enrollment.baseline_pain = float(value)
    session.flush()
    outcome = Outcome(status="accepted", value=value)
    if q.kind == "glucose" and raise_flags:
        _judge_glucose(session, checkin, outcome, float(value), text)
    if item in get_content().mood["phq2"]:
        outcome.added = _add_asq_if_due(session, checkin)
    if q.is_safety and value is True:
        if q.follow_up:
            outcome.follow_up = _insert_follow_up(session, checkin, item, q.follow_up)
        if raise_flags:
            _escalate(session, checkin, outcome, q.flag_tier or "urgent",
                      [q.flag_reason or q.label], text)
        _ask_right_now(outcome, item, q.flag_tier or "urgent")
    return outcome


def _judge_glucose(session: Session, checkin: CheckIn, outcome: Outcome, mg_dl: float,
                   text: str) -> None:
    """A blood sugar after a steroid at or above the patient's own plan limit (the
    default without one) is URGENT for the diabetes prescriber (CLINICAL.md §1.0)."""
    enrollment = session.get(Enrollment, checkin.enrollment_id)
    verdict = glucose.judge(mg_dl, enrollment.glucose_limit_mg_dl)
    if verdict is not None:
        _escalate(session, checkin, outcome, verdict[0], [verdict[1]], text)
    if verdict is not None and verdict[0] == "urgent":
        outcome.replies.append(message("glucose_prescriber"))


def _add_asq_if_due(session: Session, checkin: CheckIn) -> list[str]:
    """A PHQ-2 of 3 or more: the ASQ items 1-4 follow the mood questions in this
    check-in (DESIGN.md "Suicide and self-harm", CLINICAL.md §2.4), once. Returns
    the items added."""
    values = {a.item: a.value for a in _answers(session, checkin.id).values()
              if a.status == "answered"}
    if not mood.asq_due(values) or any(mood.is_asq(i) for i in checkin.items):
        return []
    checkin.items = with_added(list(checkin.items), mood.asq_items())  # new list: JSON change
    session.flush()
    return mood.asq_items()


def with_added(items: list[str], added: list[str]) -> list[str]:
    """`items` (a check-in's, or a form's list of questions) with `added` right after
    the last mood question (at the end when there is none), each once."""
    new = [i for i in added if i not in items]
    marks = [n for n, i in enumerate(items) if mood.is_mood_item(i)]
    at = marks[-1] + 1 if marks else len(items)
    return [*items[:at], *new, *items[at:]]


def _ask_right_now(outcome: Outcome, item: str, tier: str) -> None:
    """A yes (or an unclear answer) to ASQ items 1-4: ASQ item 5, "right now?", is
    asked next as a screen (the caller asks it through painpath/screening.py)."""
    if mood.is_asq(item):
        outcome.screen, outcome.screen_tier = mood.ASQ_RIGHT_NOW, tier


def _give_up(session: Session, checkin: CheckIn, q: Question, answer: Answer,
             text: str) -> Outcome:
    """After the last unusable answer: a safety question goes one tier up, never
    passed over; anything else is recorded unanswered."""
    answer.value = None
    if not q.is_safety:
        answer.status = "unanswered"
        session.flush()
        return Outcome(status="unanswered", value=UNANSWERED,
                       replies=[message("checkin_moving_on")])
    answer.status = UNCLEAR
    session.flush()
    outcome = Outcome(status=UNCLEAR, value=UNCLEAR, replies=[message("safety_unclear")])
    reason = f"safety question not answered clearly (asked twice): {q.label}"
    tier = one_tier_up(q.flag_tier or "routine")
    _escalate(session, checkin, outcome, tier, [reason], text)
    _ask_right_now(outcome, q.id, tier)
    return outcome


def _escalate(session: Session, checkin: CheckIn, outcome: Outcome, tier: str,
              reasons: list[str], text: str) -> None:
    """Escalate at `tier` with the red-flag reply of that tier; an emergency ends
    the check-in."""
    response = handle_red_flag(session, checkin.patient_id, tier, reasons, text,
                               checkin_id=checkin.id)
    outcome.raised = response.raised
    outcome.escalation_id = response.escalation_id
    outcome.replies.extend(response.replies)
    if response.stop_checkin:
        outcome.stop_checkin = True
        checkin.status = "completed"
        checkin.completed_at = utcnow()


def _insert_follow_up(session: Session, checkin: CheckIn, item: str, follow_up: str) -> str:
    """Put `follow_up` right after `item` in the check-in (once)."""
    if follow_up not in checkin.items:
        items = list(checkin.items)
        items.insert(items.index(item) + 1, follow_up)
        checkin.items = items  # a new list: the JSON column sees the change
        session.flush()
    return follow_up


def with_follow_up(items: list[str], item: str, follow_up: str) -> list[str]:
    """`items` (a form's list of questions) with `follow_up` right after `item`."""
    if follow_up in items:
        return list(items)
    at = items.index(item) + 1 if item in items else len(items)
    return [*items[:at], follow_up, *items[at:]]


def final_answer(session: Session, checkin_id: int, item: str, *,
                 patient_id: str | None = None) -> tuple[bool, object]:
    """(True, value) when `item` already has a final answer (value None if unanswered);
    with `patient_id`, of that patient's check-in only (NotThePatients)."""
    _checkin(session, checkin_id, patient_id)
    answer = _answers(session, checkin_id).get(item)
    if answer is None or answer.status == "pending":
        return False, None
    if answer.status in ("unanswered", UNCLEAR):
        return True, answer.status
    q = question(item)
    return True, (bool(answer.value) if q.kind in SAFETY_KINDS else _plain(answer.value))


def _plain(value: float | None) -> float | int | None:
    return int(value) if value is not None and float(value).is_integer() else value


def try_answer(session: Session, checkin_id: int, item: str, text: str, *,
               patient_id: str | None = None) -> Outcome | None:
    """Record `text` as the answer to `item` only if it parses (a red-flag message
    that also answers the question); no failure is counted otherwise. With
    `patient_id`, of that patient's check-in only (NotThePatients)."""
    _checkin(session, checkin_id, patient_id)
    q = question(item)
    if parse_answer(KINDS[q.kind], text or "") is None:
        return None
    return submit(session, checkin_id, item, text, raise_flags=False, patient_id=patient_id)


def get_settings_emergency(session: Session, patient_id: str) -> str:
    """The emergency number of the patient's clinic (911 in the US)."""
    patient = session.get(Patient, patient_id)
    return patient.clinic.emergency_number or "911"


def pause(session: Session, checkin_id: int, *, patient_id: str | None = None) -> str:
    """Pause a check-in so the patient can finish it later (with `patient_id`: only
    that patient's, NotThePatients otherwise)."""
    checkin = _checkin(session, checkin_id, patient_id)
    if checkin is not None and checkin.status == "in_progress":
        checkin.status = "paused"
    return message("checkin_paused")


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def finish(session: Session, checkin_id: int, *, patient_id: str | None = None) -> str:
    """Complete the check-in (unasked items recorded unanswered) and return the summary;
    with `patient_id`, only that patient's (NotThePatients otherwise)."""
    checkin = _checkin(session, checkin_id, patient_id)
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
