"""What a patient is told about reaching their clinic: its phone number, its
out-of-hours route, the emergency number, and the welcome SMS at enrolment.

The wording is YAML (painpath/content/messages.yaml); this module fills it in from
the clinic's configuration (`painpath clinic set --phone … --out-of-hours …`, or the
dashboard's on-call page) and checks that what a clinic types still fits two SMS
segments once it is part of a message.
"""
from __future__ import annotations

from painpath.content import message
from painpath.models import Clinic
from painpath.sms_text import fits, overflow, to_gsm
OUT_OF_HOURS_MAX = 160  # characters of a clinic's own out-of-hours instruction


def clinic_phone(clinic: Clinic | None) -> str:
    """The number patients are told to call (words when the clinic has none set)."""
    return clinic.phone if clinic is not None and clinic.phone else message("clinic_phone_unset")


def emergency_number(clinic: Clinic | None) -> str:
    return (clinic.emergency_number if clinic is not None else None) or "911"


def out_of_hours_route(clinic: Clinic | None) -> str:
    """What to do when the care team is off duty: the clinic's own instruction, else
    the default (the clinic's number, given just before, for its after-hours line, or
    urgent care)."""
    own = (clinic.out_of_hours or "").strip() if clinic is not None else ""
    return own.rstrip(".") if own else message("out_of_hours_default")


def urgent_reply(clinic: Clinic, call_by: str | None) -> str:
    """The reply to an urgent flag: within on-call hours who calls and by when (and the
    clinic's number if nobody has), outside them the out-of-hours route; both say to
    call the emergency number if it gets worse."""
    values = {"clinic": clinic.name, "clinic_phone": clinic_phone(clinic),
              "emergency_number": emergency_number(clinic)}
    if call_by is not None:
        return message("redflag_urgent", call_by=call_by, **values)
    return message("redflag_urgent_after_hours", out_of_hours=out_of_hours_route(clinic),
                   **values)


def welcome_texts(clinic: Clinic) -> list[str]:
    """The welcome at enrolment: one message within two SMS segments, or two short
    ones when the clinic's name and number make one too long."""
    values = {"clinic": clinic.name, "clinic_phone": clinic_phone(clinic),
              "emergency_number": emergency_number(clinic)}
    one = message("welcome", **values)
    if fits(one):
        return [one]
    return [message("welcome_intro", **values), message("welcome_safety", **values)]


def check_out_of_hours(text: str, clinic: Clinic) -> str | None:
    """A clinic's out-of-hours instruction, tidied; None when empty (the default
    applies).

    Raises:
        ValueError: too long on its own, or the urgent reply it goes into would not
            fit two SMS segments.
    """
    text = " ".join((text or "").split())
    if not text:
        return None
    if len(text) > OUT_OF_HOURS_MAX:
        raise ValueError(f"the out-of-hours instruction must be at most {OUT_OF_HOURS_MAX} "
                         f"characters (it is {len(text)})")
    trial = Clinic(name=clinic.name, phone=clinic.phone, out_of_hours=text,
                   emergency_number=clinic.emergency_number)
    worded = to_gsm(urgent_reply(trial, None))
    if not fits(worded):
        raise ValueError(f"the urgent reply with this instruction is {len(worded)} characters; "
                         f"shorten it by {max(1, overflow(worded))} to fit two text messages")
    return text
