"""Which of PainPath's numbers a text leaves from, and which patients a number serves.

A clinic may have its own Twilio number (`Clinic.sms_number`, set with `painpath
clinic set --sms-number`): its patients' texts, its alert pages and its replies leave
from it, and a patient's reply to it belongs to that clinic. Clinics without one share
TWILIO_FROM_NUMBER. One person may be enrolled at several clinics with one phone, so
an inbound text is matched on the (To, From) pair, never on From alone.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath.models import Clinic, Clinician, Patient
from painpath.phone import InvalidPhone, mask, normalize
from painpath.settings import get_settings

NO_SENDER = "painpath"  # no Twilio number configured (console gateway)


class SmsNumberError(ValueError):
    """A clinic's SMS number that cannot be used (invalid, or another clinic's)."""


def clinic_sender(clinic: Clinic | None) -> str:
    """The number a clinic's texts leave from: its own, else TWILIO_FROM_NUMBER."""
    own = clinic.sms_number if clinic is not None else None
    return own or get_settings().twilio_from_number or NO_SENDER


def sender_for(session: Session, *, clinic_id: int | None = None, patient_id: str | None = None,
               clinician_id: int | None = None) -> str:
    """The number a text leaves from: that of `clinic_id`, else of the patient's or the
    clinician's clinic, else TWILIO_FROM_NUMBER."""
    if clinic_id is None and patient_id is not None:
        clinic_id = session.execute(
            select(Patient.clinic_id).where(Patient.id == patient_id)).scalar_one_or_none()
    if clinic_id is None and clinician_id is not None:
        clinic_id = session.execute(
            select(Clinician.clinic_id).where(Clinician.id == clinician_id)).scalar_one_or_none()
    return clinic_sender(session.get(Clinic, clinic_id) if clinic_id is not None else None)


def set_sms_number(session: Session, clinic: Clinic, raw: str | None) -> str | None:
    """Give `clinic` its own SMS number (E.164 after `phonenumbers`), or with an empty
    value go back to the shared TWILIO_FROM_NUMBER. Returns the number set.

    Raises:
        SmsNumberError: not a valid number, or already another clinic's (a number
            routes to one clinic: two clinics on one number is what this prevents).
    """
    if not (raw or "").strip():
        clinic.sms_number = None
        return None
    try:
        number = normalize(raw or "")
    except InvalidPhone as exc:
        raise SmsNumberError(str(exc)) from None
    other = session.execute(select(Clinic.slug).where(
        Clinic.sms_number == number, Clinic.id != clinic.id)).scalar_one_or_none()
    if other is not None:
        raise SmsNumberError(f"{mask(number)} is already clinic '{other}''s SMS number; "
                             "each clinic needs its own")
    clinic.sms_number = number
    return number


def our_number(to: str | None) -> str | None:
    """Twilio's `To` of an inbound text (one of our numbers) in E.164, or None."""
    if not to:
        return None
    try:
        return normalize(to)
    except InvalidPhone:
        return None


def candidates(session: Session, phone: str, to: str | None) -> list[Patient]:
    """The patients a text from `phone` to our number `to` may come from.

    Those whose clinic sends from `to` (when none does -- a number we no longer use,
    or no `To` -- every patient with that phone); of these, the ones with an active
    enrolment when there are any. More than one means the text cannot be attributed
    to one clinic (they share a number): the caller must not guess."""
    rows = list(session.execute(
        select(Patient).where(Patient.phone == phone).order_by(Patient.created_at.desc())
    ).scalars())
    if to is not None:
        rows = [p for p in rows if clinic_sender(p.clinic) == to] or rows
    active = [p for p in rows if any(e.status == "active" for e in p.enrollments)]
    return active or rows


def everyone(session: Session, phone: str) -> list[Patient]:
    """Every patient record with this phone, at any clinic (STOP and START reach all)."""
    return list(session.execute(select(Patient).where(Patient.phone == phone)).scalars())
