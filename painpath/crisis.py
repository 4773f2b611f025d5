"""After a crisis (DESIGN.md "Suicide and self-harm", CLINICAL.md §2.4).

- Imminent risk (ASQ item 5 answered yes or unclearly, or not answered in time):
  "call or text 988 now, or 911" and a real-time page marked imminent.
- ASQ item 5 answered no: a same-day call, with the call-by time in the patient's
  own time zone.
- The follow-up "Is there someone nearby who can stay with you?": every answer
  keeps 988 and 911 in the reply; anything but a yes is a note on the open
  escalation for the nurse.
- Until a clinician resolves the crisis, every reply the patient gets carries the
  safety numbers (`with_safety_numbers`, applied where replies leave PainPath).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath.content import message
from painpath.escalation import (
    IMMINENT,
    URGENT_CALLBACK,
    add_note,
    handle_red_flag,
    local_time,
    page_again,
)
from painpath.models import Escalation, Patient, utcnow
from painpath.sms_text import fits

logger = logging.getLogger(__name__)

OPEN_STATUSES = ("open", "acknowledged")
SAFETY_MARK = "988"  # a reply that names the crisis line already carries the numbers


@dataclass
class Outcome:
    """What the patient is told and whom it pages."""

    replies: list[str]
    alert_message_ids: list[int] = field(default_factory=list)
    escalation_id: int | None = None


def emergency_number(patient: Patient) -> str:
    return patient.clinic.emergency_number or "911"


def open_crisis(session: Session, patient_id: str) -> Escalation | None:
    """The patient's most recent crisis escalation that no clinician has resolved."""
    return session.execute(
        select(Escalation).where(Escalation.patient_id == patient_id,
                                 Escalation.kind == "red_flag", Escalation.tier == "crisis",
                                 Escalation.status.in_(OPEN_STATUSES))
        .order_by(Escalation.id.desc()).limit(1)
    ).scalars().first()


def imminent(session: Session, patient_id: str, reasons: list[str], text: str | None,
             checkin_id: int | None = None, now: datetime | None = None) -> Outcome:
    """Imminent risk: the crisis line now, and a real-time page marked imminent (a new
    crisis escalation, or the open one paged again)."""
    now = now or utcnow()
    response = handle_red_flag(session, patient_id, "crisis", [IMMINENT, *reasons], text,
                               checkin_id=checkin_id, now=now)
    if response.raised is not None:
        alerts = list(response.raised.alert_message_ids)
    else:  # added to an escalation that was already paged: page it again, marked
        alerts = page_again(session, int(response.escalation_id or 0), IMMINENT, now)
    patient = session.get(Patient, patient_id)
    logger.info("escalation %s: imminent risk, paged", response.escalation_id)
    return Outcome([message("crisis_imminent", emergency_number=emergency_number(patient))],
                   alerts, response.escalation_id)


def same_day_call(session: Session, patient_id: str, escalation_id: int | None, reason: str,
                  text: str | None, now: datetime | None = None) -> Outcome:
    """Not imminent: a clinician calls today, by a stated time (the open crisis
    escalation gets a call-by time; with none open, an urgent one is raised)."""
    now = now or utcnow()
    patient = session.get(Patient, patient_id)
    escalation = session.get(Escalation, escalation_id) if escalation_id else None
    if escalation is None or escalation.status not in OPEN_STATUSES:
        escalation = open_crisis(session, patient_id)
    alerts: list[int] = []
    if escalation is None:
        response = handle_red_flag(session, patient_id, "urgent", [reason], text, now=now)
        escalation = session.get(Escalation, response.escalation_id)
        alerts = list(response.raised.alert_message_ids) if response.raised else []
    else:
        add_note(session, escalation.id, reason, now)
    if escalation.call_by is None:
        escalation.call_by = now + URGENT_CALLBACK
    reply = message("crisis_same_day_call", clinic=patient.clinic.name,
                    call_by=local_time(patient, escalation.call_by),
                    emergency_number=emergency_number(patient))
    return Outcome([reply], alerts, escalation.id)


def followup_answer(session: Session, patient_id: str, escalation_id: int | None,
                    value: bool | None, now: datetime | None = None) -> Outcome:
    """The answer to "Is there someone nearby who can stay with you?"."""
    patient = session.get(Patient, patient_id)
    escalation = session.get(Escalation, escalation_id) if escalation_id else None
    if escalation is None or escalation.status not in OPEN_STATUSES:
        escalation = open_crisis(session, patient_id)
    if value is True:
        note = "crisis follow-up: someone nearby can stay with the patient"
        key = "crisis_followup_yes"
    elif value is False:
        note, key = "crisis follow-up: NO ONE nearby to stay with the patient", "crisis_followup_no"
    else:
        note = "crisis follow-up: unclear whether anyone can stay with the patient"
        key = "crisis_followup_no"
    if escalation is not None:
        add_note(session, escalation.id, note, now or utcnow())
    return Outcome([message(key, emergency_number=emergency_number(patient))], [],
                   escalation.id if escalation is not None else None)


def with_safety_numbers(session: Session, patient_id: str, texts: list[str]) -> list[str]:
    """`texts` as the patient gets them: while a crisis is unresolved, each one that
    does not name 988 gets the safety numbers (in the same SMS when two segments
    hold both, else as a message of their own)."""
    if not texts or all(SAFETY_MARK in t for t in texts) or \
            open_crisis(session, patient_id) is None:
        return list(texts)
    patient = session.get(Patient, patient_id)
    numbers = message("crisis_safety_numbers", emergency_number=emergency_number(patient))
    out: list[str] = []
    for text in texts:
        if SAFETY_MARK in text:
            out.append(text)
        elif fits(f"{text} {numbers}"):  # two segments as sent, GSM-7 or UCS-2
            out.append(f"{text} {numbers}")
        else:
            out += [text, numbers]
    return out
