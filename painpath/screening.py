"""Direct safety questions in the conversation (DESIGN.md "When unsure, ask — never drop").

A message that may be a red flag gets one short question that carries its own
safety net: a *screen* from painpath/content/screens.yaml (chosen by triage), or
after a crisis the follow-up "Is there someone nearby who can stay with you?".
It is recorded as a `SafetyScreen` row, pending until answered; at most one is
pending per patient, and the patient's next message answers it:

- YES or an unclear answer escalates at the screen's tier (ASQ item 5: imminent,
  painpath/crisis.py) with that tier's reply;
- a clear NO leaves a routine note for the care team (ASQ item 5 after a crisis:
  a same-day call), and the check-in or exercise it interrupted goes on at the
  same question;
- the answer is still triaged: a red flag of its own is handled too.

A screen not answered by `due_at` (screens.yaml `timeout_minutes` after it was
asked) is escalated by the scheduler (`run_timeouts`), exactly once: the row is
claimed by a conditional update, whichever of the answer and the timeout comes
first. The crisis follow-up is not escalated (the crisis was paged already): after
`FOLLOWUP_WAIT` its silence is a note on the escalation and it stops holding the
patient's other outreach.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from painpath import crisis, programs
from painpath.checkins import Outcome as AnswerOutcome
from painpath.content import message
from painpath.db import new_session
from painpath.escalation import add_note, handle_red_flag
from painpath.messaging import deliver_now, record_outbound
from painpath.models import CheckIn, ExerciseSession, Patient, SafetyScreen, ScreenStatus, utcnow
from painpath.ownership import own_checkin_id, own_exercise_id
from painpath.parsing import parse_yes_no
from painpath.screens import IDEATION, get_screen, screen_book
from painpath.triage import tier_rank

logger = logging.getLogger(__name__)

FOLLOWUP = "crisis_followup"  # the crisis follow-up question (messages.yaml), not a screen
# the follow-up waits this long before it stops holding other outreach; its silence is
# a note for the nurse (the crisis itself was paged in real time and is re-paged)
FOLLOWUP_WAIT = timedelta(minutes=60)
LATE_WINDOW = timedelta(hours=24)  # an answer after the timeout still reaches the nurse
PENDING = ScreenStatus.PENDING.value
_STATUS = {True: ScreenStatus.YES, False: ScreenStatus.NO, None: ScreenStatus.UNCLEAR}
_LABEL = {ScreenStatus.YES: "YES", ScreenStatus.NO: "NO", ScreenStatus.UNCLEAR: "unclearly"}


@dataclass(frozen=True)
class Flag:
    """What triage found in a message (the red-flag NLU entities)."""

    tier: str
    reasons: list[str] = field(default_factory=list)
    screen: str | None = None


@dataclass
class ScreenTurn:
    """What one answer did, for the conversation to say and do."""

    replies: list[str] = field(default_factory=list)
    alert_message_ids: list[int] = field(default_factory=list)
    tier: str = "none"  # the tier this turn escalated at
    asked: bool = False  # a question is pending now: it is asked next
    resume: str | None = None  # "checkin" | "exercise": reopen it at the same question
    checkin_id: int | None = None
    exercise_session_id: int | None = None
    closed: bool = False  # nothing was waiting for this answer


def _language(patient: Patient) -> str:
    return getattr(patient, "language", None) or "en"


def _tier_of(question_id: str) -> str:
    return "crisis" if question_id == FOLLOWUP else get_screen(question_id).tier


def _adds(tier: str, before: str) -> bool:
    """Whether `tier` asks more of the patient than `before` did (a crisis always
    needs its own words, even after an emergency reply)."""
    return tier_rank(tier) > tier_rank(before) or (tier == "crisis" and before != "crisis")


def _goes_on(form: str | None, tier: str) -> str | None:
    """The interrupted form, if it goes on after an escalation at `tier`: a check-in
    after urgent or routine, an exercise after routine only (bot/rules/red_flags.yml)."""
    if tier in ("emergency", "crisis") or (form == "exercise" and tier == "urgent"):
        return None
    return form


def pending(session: Session, patient_id: str) -> SafetyScreen | None:
    """The question waiting for the patient's answer, if any."""
    return session.execute(select(SafetyScreen).where(
        SafetyScreen.patient_id == patient_id, SafetyScreen.status == PENDING)
    ).scalars().first()


def question(session: Session, patient_id: str) -> str | None:
    """The text of the pending question (asked again by the conversation)."""
    row = pending(session, patient_id)
    return row.question if row is not None else None


def ask(session: Session, patient_id: str, question_id: str, flag_tier: str, *,
        escalation_id: int | None = None, interrupted: str | None = None,
        checkin_id: int | None = None, exercise_session_id: int | None = None,
        now: datetime | None = None) -> SafetyScreen | None:
    """Record `question_id` (a screen id or FOLLOWUP) as asked now; None, and nothing
    recorded, while another question is pending (it is never stacked). A check-in or
    exercise that is not the patient's is not linked (the question is still asked)."""
    now = now or utcnow()
    if pending(session, patient_id) is not None:
        return None
    checkin_id = own_checkin_id(session, checkin_id, patient_id)
    exercise_session_id = own_exercise_id(session, exercise_session_id, patient_id)
    patient = session.get(Patient, patient_id)
    if question_id == FOLLOWUP:
        text, due = message("redflag_crisis_followup"), now + FOLLOWUP_WAIT
    else:
        text = get_screen(question_id).text(_language(patient))
        due = now + timedelta(minutes=screen_book().timeout_minutes)
    row = SafetyScreen(patient_id=patient_id, screen_id=question_id, tier=_tier_of(question_id),
                       flag_tier=flag_tier, question=text, asked_at=now, due_at=due,
                       status=PENDING, escalation_id=escalation_id, interrupted=interrupted,
                       checkin_id=checkin_id, exercise_session_id=exercise_session_id)
    session.add(row)
    session.flush()
    logger.info("screen %s asked", row.id)  # not which one, nor whom: that is clinical
    return row


def ask_after_answer(session: Session, patient_id: str, checkin_id: int,
                     outcome: AnswerOutcome, now: datetime | None = None) -> SafetyScreen | None:
    """The screen a check-in answer calls for (ASQ item 5 after a yes to ASQ items
    1-4, painpath/mood.py), asked like any other screen; None when there is none or
    another question is pending. The check-in goes on after a clear NO unless the
    answer's escalation stopped it."""
    if outcome.screen is None:
        return None
    return ask(session, patient_id, outcome.screen, outcome.screen_tier or "urgent",
               escalation_id=outcome.escalation_id,
               interrupted=None if outcome.stop_checkin else "checkin",
               checkin_id=checkin_id, now=now)


def question_for(flag: Flag) -> str | None:
    """What a flagged message asks next: its screen, the follow-up after a crisis,
    nothing after an emergency reply (it already says call 911 now)."""
    if flag.tier == "emergency":
        return None
    return flag.screen or (FOLLOWUP if flag.tier == "crisis" else None)


def answer(session: Session, patient_id: str, text: str, flag: Flag | None = None,
           now: datetime | None = None) -> ScreenTurn:
    """The patient's message, read as the answer to their pending question."""
    now = now or utcnow()
    row = pending(session, patient_id)
    if row is None or not _claim(session, row, text, now):
        row = None
        turn = _late(session, patient_id, text, now)
    elif row.screen_id == FOLLOWUP:
        turn = _followup(session, row, now)
    else:
        turn = ScreenTurn(checkin_id=row.checkin_id, exercise_session_id=row.exercise_session_id)
        if row.status == ScreenStatus.NO:
            _settle(session, row, text, now, turn)
        else:
            _escalate(session, row, f"screen {row.screen_id} answered "
                      f"{_LABEL[ScreenStatus(row.status)]}", text, now, turn)
    if flag is not None and (flag.tier != "none" or flag.screen):
        _own_flag(session, patient_id, flag, text, turn, row, now)
    _reopen(session, turn, now)
    return turn


def _reopen(session: Session, turn: ScreenTurn, now: datetime) -> None:
    """Make the interrupted check-in or exercise the one in progress again, if it
    still can be (a check-in finished or missed meanwhile is not reopened)."""
    if turn.resume == "checkin":
        checkin = session.get(CheckIn, turn.checkin_id) if turn.checkin_id else None
        if checkin is None or checkin.status != "in_progress":
            turn.resume = None
    elif turn.resume == "exercise":
        row = session.get(ExerciseSession, turn.exercise_session_id) \
            if turn.exercise_session_id else None
        if row is None or row.status not in ("paused", "active"):
            turn.resume = None
        else:
            programs.pause_active_except(session, row.patient_id, row.id)
            programs.activate(row, now)


def _claim(session: Session, row: SafetyScreen, text: str, now: datetime) -> bool:
    """Record the answer unless the timeout (or another answer) got there first."""
    status = _STATUS[parse_yes_no(text)]
    won = session.execute(
        update(SafetyScreen).where(SafetyScreen.id == row.id, SafetyScreen.status == PENDING)
        .values(status=status.value, answer_text=text[:4000], answered_at=now)
        .execution_options(synchronize_session=False)).rowcount
    session.expire(row)
    return bool(won)


def _stop_interrupted(session: Session, checkin_id: int | None) -> None:
    """An emergency or crisis: the interrupted check-in stops where it was (answers
    kept; the nurse sees where); a paused exercise just stays paused."""
    checkin = session.get(CheckIn, checkin_id) if checkin_id else None
    if checkin is not None and checkin.status == "in_progress":
        checkin.status = "paused"


def _escalate(session: Session, row: SafetyScreen, reason: str, text: str | None,
              now: datetime, turn: ScreenTurn) -> None:
    """YES, unclear or silence: escalate at the screen's tier; ASQ item 5 is imminent
    risk, followed by the crisis follow-up question."""
    if row.screen_id == IDEATION:
        out = crisis.imminent(session, row.patient_id,
                              [reason, "ASQ item 5: thoughts of killing themself right now"],
                              text, row.checkin_id, now)
        stop, turn.tier = True, "crisis"
        turn.asked = ask(session, row.patient_id, FOLLOWUP, "crisis",
                         escalation_id=out.escalation_id, now=now) is not None
    else:
        response = handle_red_flag(session, row.patient_id, row.tier, [reason], text,
                                   checkin_id=row.checkin_id, now=now)
        out = crisis.Outcome(response.replies, list(response.raised.alert_message_ids)
                             if response.raised else [], response.escalation_id)
        stop, turn.tier = response.stop_checkin, row.tier
    row.escalation_id = out.escalation_id
    turn.replies += out.replies
    turn.alert_message_ids += out.alert_message_ids
    if stop:
        _stop_interrupted(session, row.checkin_id)
    turn.resume = _goes_on(row.interrupted, turn.tier)


def _settle(session: Session, row: SafetyScreen, text: str, now: datetime,
            turn: ScreenTurn) -> None:
    """A clear NO: a routine note for the care team (added to an open escalation
    when there is one), and the interrupted form goes on. ASQ item 5 after a crisis:
    a same-day call instead."""
    reason = f"screen {row.screen_id} answered NO"
    if row.screen_id == IDEATION and row.flag_tier == "crisis":
        out = crisis.same_day_call(session, row.patient_id, row.escalation_id,
                                   f"{reason}: not thinking of it right now; same-day call",
                                   text, now)
        turn.replies += out.replies
        turn.alert_message_ids += out.alert_message_ids
        turn.tier = "crisis"  # the crisis stays open: its line and a call today
        row.escalation_id = out.escalation_id
        return
    response = handle_red_flag(session, row.patient_id, "routine", [reason], text,
                               checkin_id=row.checkin_id, now=now)
    row.escalation_id = row.escalation_id or response.escalation_id
    turn.replies.append(message("screen_no"))
    turn.resume = row.interrupted


def _followup(session: Session, row: SafetyScreen, now: datetime) -> ScreenTurn:
    value = {ScreenStatus.YES.value: True, ScreenStatus.NO.value: False}.get(row.status)
    out = crisis.followup_answer(session, row.patient_id, row.escalation_id, value, now)
    return ScreenTurn(replies=out.replies, tier="none")


def _late(session: Session, patient_id: str, text: str, now: datetime) -> ScreenTurn:
    """No question is pending: an answer to one that timed out (already escalated)
    goes to its escalation; otherwise there was nothing to answer."""
    patient = session.get(Patient, patient_id)
    emergency = crisis.emergency_number(patient)
    last = session.execute(
        select(SafetyScreen).where(SafetyScreen.patient_id == patient_id,
                                   SafetyScreen.asked_at >= now - LATE_WINDOW)
        .order_by(SafetyScreen.id.desc()).limit(1)).scalars().first()
    if last is None or last.status != ScreenStatus.TIMEOUT or last.answer_text is not None:
        return ScreenTurn(replies=[message("screen_closed", emergency_number=emergency)],
                          closed=True)
    last.answer_text = text[:4000]
    if last.screen_id == FOLLOWUP:  # still worth its answer and its note
        value = parse_yes_no(text)
        return ScreenTurn(replies=crisis.followup_answer(session, patient_id,
                                                         last.escalation_id, value, now).replies)
    label = _LABEL[_STATUS[parse_yes_no(text)]]
    if last.escalation_id is not None:
        add_note(session, last.escalation_id,
                 f"screen {last.screen_id} answered {label} after the timeout", now)
    return ScreenTurn(replies=[message("screen_late", emergency_number=emergency)],
                      resume=_goes_on(last.interrupted, last.tier), checkin_id=last.checkin_id,
                      exercise_session_id=last.exercise_session_id)


def _own_flag(session: Session, patient_id: str, flag: Flag, text: str, turn: ScreenTurn,
              answered: SafetyScreen | None, now: datetime) -> None:
    """The answer's own red flag: escalated (added to what the answer raised), its
    reply when it asks more than the answer's, and its own question when that asks
    more and is not the one just answered."""
    before = turn.tier
    if turn.closed:  # the flag speaks for itself
        turn.replies = []
    if flag.tier != "none":
        response = handle_red_flag(session, patient_id, flag.tier,
                                   flag.reasons or ["red flag in message"], text,
                                   checkin_id=turn.checkin_id, now=now)
        if response.raised is not None:
            turn.alert_message_ids += list(response.raised.alert_message_ids)
        if _adds(flag.tier, before):
            turn.replies += response.replies
            turn.tier = flag.tier if tier_rank(flag.tier) > tier_rank(before) else before
        if response.stop_checkin:
            _stop_interrupted(session, turn.checkin_id)
        turn.resume = _goes_on(turn.resume, flag.tier)
    wanted = question_for(flag)
    if wanted is None or (answered is not None and wanted == answered.screen_id) or \
            not _adds(_tier_of(wanted), before):
        return
    asked = ask(session, patient_id, wanted, flag.tier, interrupted=turn.resume,
                checkin_id=turn.checkin_id, exercise_session_id=turn.exercise_session_id,
                now=now)
    if asked is not None:
        turn.asked, turn.resume = True, None


# --- the timeout (scheduler job) -------------------------------------------------------

def _tell_patient(session: Session, patient_id: str, texts: list[str], key: str) -> list[int]:
    """Queue `texts` to the patient outside a conversation turn; the SMS ids to send."""
    patient = session.get(Patient, patient_id)
    ids: list[int] = []
    if patient.channel == "sms" and patient.sms_opted_out:
        return ids
    for i, body in enumerate(crisis.with_safety_numbers(session, patient_id, texts)):
        msg = record_outbound(session, to=patient.phone if patient.channel == "sms" else "web",
                              channel=patient.channel, patient_id=patient_id, body=body,
                              idempotency_key=f"{key}:{i}")
        if msg is not None and patient.channel == "sms":
            ids.append(msg.id)
        elif msg is not None:
            msg.status = "delivered"  # the web chat shows it on its next poll
    return ids


def expire(session: Session, screen_id: int, now: datetime) -> list[int]:
    """Escalate one screen with no reply by its due time (once: the row is claimed
    first). Returns the ids of the pages and patient SMS to send after commit."""
    won = session.execute(
        update(SafetyScreen).where(SafetyScreen.id == screen_id, SafetyScreen.status == PENDING,
                                   SafetyScreen.due_at <= now)
        .values(status=ScreenStatus.TIMEOUT.value, answered_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if not won:
        return []
    row = session.get(SafetyScreen, screen_id)
    minutes = round((row.due_at - row.asked_at).total_seconds() / 60)
    if row.screen_id == FOLLOWUP:
        if row.escalation_id is not None:
            add_note(session, row.escalation_id,
                     f"crisis follow-up: no answer within {minutes} min", now)
        return []
    turn = ScreenTurn()
    _escalate(session, row, f"screen {row.screen_id}: no reply within {minutes} min", None,
              now, turn)
    followup = question(session, row.patient_id) if turn.asked else None
    texts = turn.replies + ([followup] if followup else [])
    logger.info("screen %s timed out: escalated at %s", row.id, turn.tier)
    return turn.alert_message_ids + _tell_patient(session, row.patient_id, texts,
                                                  key=f"screen-timeout:{row.id}")


def expire_due(now: datetime | None = None) -> list[int]:
    """Escalate every pending screen past its due time, each in its own transaction."""
    now = now or utcnow()
    with new_session() as session:
        due = session.execute(
            select(SafetyScreen.id).where(SafetyScreen.status == PENDING,
                                          SafetyScreen.due_at <= now)
            .order_by(SafetyScreen.due_at)).scalars().all()
    ids: list[int] = []
    for screen_id in due:
        try:
            with new_session() as session, session.begin():
                ids += expire(session, screen_id, now)
        except Exception:  # the next tick tries again: nothing was committed
            logger.exception("screen %s timeout not processed", screen_id)
    return ids


def run_timeouts(now: datetime | None = None) -> list[int]:
    """Scheduler job (and `painpath screens expire`): escalate unanswered screens and
    hand the pages and patient messages to the gateway."""
    ids = expire_due(now)
    deliver_now(ids)
    return ids
