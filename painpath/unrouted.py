"""A text that cannot be attributed to one clinic: never guessed, never dropped.

When the (To, From) pair of an inbound SMS still matches patients at more than one
clinic (clinics sharing one Twilio number, one person enrolled at both; see
painpath/senders.py), PainPath does not pick one: the text joins no conversation
(one clinic's record must not get another clinic's patient's words) and the sender
gets a neutral reply.

Safety first: the text is still triaged. A red flag is escalated for every candidate,
so each clinic's on-call clinician is paged with the patient's words and the sender
gets the tier's safety instructions at once. A message that would get a safety
question is escalated at that question's tier: the question cannot be asked outside
a conversation, and an unanswered one escalates (DESIGN.md "When unsure, ask").
Paging two care teams about one message costs a phone call; paging the wrong one
could cost the patient. Anything else becomes a task in each clinic's queue ("call
the patient") without the words, which may be the other clinic's business.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath.content import message
from painpath.escalation import ALERTING_TIERS, handle_red_flag, raise_flag
from painpath.models import Escalation, Patient, utcnow
from painpath.screens import get_screen
from painpath.settings import get_settings
from painpath.triage import tier_rank, triage

UNROUTED_TASK = "unrouted_sms"  # Escalation.kind of the nurse task
RED_FLAG_NOTE = ("Sent from a phone number enrolled at more than one clinic that share an "
                 "SMS number, so it could not be matched to one patient: every clinic with "
                 "this number was alerted. Confirm who is writing when you call.")
TASK_NOTE = ("A text from this patient's number reached the SMS number several clinics share "
             "and could not be matched to one clinic (the number is enrolled at more than "
             "one), so it was not added to the conversation. Call the patient. Giving each "
             "clinic its own number (painpath clinic set --sms-number) prevents this.")


@dataclass(frozen=True)
class Unrouted:
    """What to send after commit: replies to the sender, and the alert pages."""

    replies: list[str]
    alert_message_ids: tuple[int, ...] = ()


def emergency_number(patients: list[Patient]) -> str:
    """The candidates' clinics' emergency number when they agree, else the default."""
    numbers = {p.clinic.emergency_number or "911" for p in patients}
    return numbers.pop() if len(numbers) == 1 else get_settings().emergency_number


def flag_of(text: str, procedure: str | None = None) -> tuple[str, list[str], bool] | None:
    """(tier, reasons, from_screen) when the text must be escalated for a patient after
    `procedure`, else None."""
    result = triage(text, procedure)
    tier, reasons, from_screen = result.tier, list(result.reasons), False
    if result.screen:
        asked = get_screen(result.screen).tier
        if tier_rank(asked) > tier_rank(tier):
            tier, from_screen = asked, True
            reasons.append(f"safety question {result.screen} could not be asked (no "
                           "conversation): escalated as unanswered")
    return (tier, reasons, from_screen) if tier in ALERTING_TIERS else None


def neutral_reply(patients: list[Patient]) -> str:
    """The reply to a text that joined no conversation."""
    return message("unrouted_sms", emergency_number=emergency_number(patients))


def _safety_reply(tier: str, from_screen: bool, patients: list[Patient]) -> str:
    emergency = emergency_number(patients)
    if tier == "emergency" and not from_screen:
        return message("redflag_emergency", emergency_number=emergency)
    if tier == "crisis":
        return message("redflag_crisis", emergency_number=emergency)
    return message("unrouted_alerted", emergency_number=emergency)


def _task(session: Session, patient_id: str, now: datetime) -> None:
    """One open "could not be matched" task per patient, not one per text."""
    open_task = session.execute(select(Escalation.id).where(
        Escalation.patient_id == patient_id, Escalation.kind == UNROUTED_TASK,
        Escalation.status == "open").limit(1)).first()
    if open_task is None:
        raise_flag(session, patient_id, "routine", [TASK_NOTE], kind=UNROUTED_TASK, now=now)


def _procedure(patient: Patient) -> str | None:
    active = [e for e in patient.enrollments if e.status == "active"]
    return active[-1].procedure if active else None


def handle(session: Session, patients: list[Patient], text: str,
           now: datetime | None = None) -> Unrouted:
    """For each candidate: escalate when the text is a red flag after their procedure,
    else leave their clinic a task. The sender gets the most urgent reply."""
    now = now or utcnow()
    alerts: list[int] = []
    worst: tuple[str, bool] | None = None  # (tier, from_screen) of the reply
    for patient in patients:
        flag = flag_of(text, _procedure(patient)) if text.strip() else None
        if flag is None:
            _task(session, patient.id, now)
            continue
        tier, reasons, from_screen = flag
        response = handle_red_flag(session, patient.id, tier, [*reasons, RED_FLAG_NOTE], text,
                                   now=now)
        alerts += response.raised.alert_message_ids if response.raised is not None else ()
        if worst is None or (tier_rank(tier), not from_screen) > (tier_rank(worst[0]),
                                                                 not worst[1]):
            worst = (tier, from_screen)
    if worst is None:
        return Unrouted([neutral_reply(patients)])
    return Unrouted([_safety_reply(*worst, patients)], tuple(alerts))
