"""SMS consent: STOP / START / HELP keywords and the consent log."""
from __future__ import annotations

import re

from sqlalchemy.orm import Session

from painpath.models import Consent, Patient

OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
OPT_IN = {"START", "UNSTOP", "YES"}
HELP = {"HELP", "INFO"}


def keyword(text: str | None) -> str | None:
    """'opt_out', 'opt_in' or 'help' when the whole message is such a keyword."""
    word = re.sub(r"[^A-Za-z]", "", (text or "")).upper()
    if word in OPT_OUT:
        return "opt_out"
    if word in HELP:
        return "help"
    if word in OPT_IN - {"YES"}:
        return "opt_in"
    return None


def record_opt_out(session: Session, patient_id: str, source: str) -> None:
    """Mark the patient opted out of SMS and log the consent event."""
    from painpath.programs import pause_active

    patient = session.get(Patient, patient_id)
    if patient is not None and not patient.sms_opted_out:
        patient.sms_opted_out = True
        session.add(Consent(patient_id=patient_id, kind="sms", event="opt_out", source=source))
    if patient is not None:
        pause_active(session, patient_id)  # an exercise in progress waits (resumable)


def record_opt_in(session: Session, patient_id: str, source: str) -> None:
    """Mark the patient opted back in and log the consent event."""
    patient = session.get(Patient, patient_id)
    if patient is not None and patient.sms_opted_out:
        patient.sms_opted_out = False
        session.add(Consent(patient_id=patient_id, kind="sms", event="opt_in", source=source))
