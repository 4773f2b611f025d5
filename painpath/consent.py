"""SMS consent: STOP / START / HELP keywords and the consent log.

A real opt-out (a STOP keyword, or Twilio refusing to send because the number opted
out) ends every text, safety questions included: the care team gets an "opted out
of monitoring" task in its queue so that someone agrees another way to follow up.
QUIT, CANCEL and END are opt-out words too, but inside an exercise they only leave
the exercise (`soft_opt_out`; painpath/sms.py).
"""
from __future__ import annotations

import re

from sqlalchemy.orm import Session

from painpath.escalation import raise_flag
from painpath.models import Consent, Patient
from painpath.weblink import revoke_chat_links

OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
# Twilio's opt-out words that also mean "leave this exercise" to someone mid-exercise
SOFT_OPT_OUT = {"CANCEL", "END", "QUIT"}
OPT_IN = {"START", "UNSTOP", "YES"}
HELP = {"HELP", "INFO"}

OPTED_OUT_TASK = "opted_out"  # Escalation.kind of the nurse task
OPT_OUT_SOURCES = {"keyword": "replied STOP (or another opt-out word)",
                   "twilio:21610": "the carrier reports the number opted out of texts"}


def _word(text: str | None) -> str:
    return re.sub(r"[^A-Za-z]", "", (text or "")).upper()


def keyword(text: str | None) -> str | None:
    """'opt_out', 'opt_in' or 'help' when the whole message is such a keyword."""
    word = _word(text)
    if word in OPT_OUT:
        return "opt_out"
    if word in HELP:
        return "help"
    if word in OPT_IN - {"YES"}:
        return "opt_in"
    return None


def soft_opt_out(text: str | None) -> bool:
    """QUIT, CANCEL or END: an opt-out word that mid-exercise means "leave the exercise"."""
    return _word(text) in SOFT_OPT_OUT


def record_opt_out(session: Session, patient_id: str, source: str) -> None:
    """Mark the patient opted out of SMS, log the consent event and, when this ends
    their monitoring, put an "opted out of monitoring" task in the nurse queue."""
    from painpath.programs import pause_active

    patient = session.get(Patient, patient_id)
    if patient is not None:
        revoke_chat_links(session, patient_id)  # opted out of every channel's links too
    if patient is not None and not patient.sms_opted_out:
        patient.sms_opted_out = True
        session.add(Consent(patient_id=patient_id, kind="sms", event="opt_out", source=source))
        if patient.channel == "sms":  # no more check-ins or safety questions by text
            how = OPT_OUT_SOURCES.get(source, source)
            raise_flag(session, patient_id, "routine",
                       [f"Opted out of monitoring: {how}. No check-ins or safety questions "
                        "reach this patient now; call them to agree another way to follow up."],
                       kind=OPTED_OUT_TASK)
    if patient is not None:
        pause_active(session, patient_id)  # an exercise in progress waits (resumable)


def record_opt_in(session: Session, patient_id: str, source: str) -> None:
    """Mark the patient opted back in and log the consent event."""
    patient = session.get(Patient, patient_id)
    if patient is not None and patient.sms_opted_out:
        patient.sms_opted_out = False
        session.add(Consent(patient_id=patient_id, kind="sms", event="opt_in", source=source))
