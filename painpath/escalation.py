"""Escalations: a red flag recorded with its alert to the on-call clinician.

The escalation and its outbound alert are written in the caller's transaction
(never one without the other); the alert is handed to the gateway after commit.
Alert SMS carry the minimum necessary: alert id, tier, the patient's initials
and a dashboard link, never a diagnosis or procedure name (DESIGN.md).
"""
from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath import contact, outreach
from painpath.messaging import deliver_now, record_outbound
from painpath.models import (AuditLog, Clinic, Clinician, Escalation, EscalationEvent, Message,
                             Patient, utcnow)
from painpath.ownership import own_checkin_id
from painpath.settings import get_settings
from painpath.triage import BYSTANDER_REASON, tier_rank

logger = logging.getLogger(__name__)

ALERTING_TIERS = ("emergency", "crisis", "urgent")
IMMINENT = "imminent"  # a reason: imminent risk of suicide (DESIGN.md), marked on the page
URGENT_CALLBACK = timedelta(hours=2)  # "a nurse will call you by …" (same-day contact)
# "Reply ACK 12 KX7": a From number can be spoofed and alert ids are sequential, so an
# SMS ACK needs the alert's random code (no 0/O or 1/I: read off a phone screen)
ACK_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
ACK_CODE_LENGTH = 3
MAX_REFUSED_ACKS = 5  # refused SMS ACKs of one alert before SMS ACK stops for it
_ONE_UP = {"routine": "urgent", "urgent": "emergency", "emergency": "emergency",
           "crisis": "crisis"}


def one_tier_up(tier: str) -> str:
    """The tier above `tier` (CLINICAL.md §0: what cannot be classified confidently
    goes one tier up, never down); emergency and crisis stay where they are."""
    return _ONE_UP.get(tier, "urgent")


@dataclass(frozen=True)
class Raised:
    escalation_id: int
    tier: str
    alert_message_ids: tuple[int, ...]


def initials(name: str | None) -> str:
    """'Jane Q. Doe' → 'J.D.'; unknown → 'pt'."""
    parts = [p for p in (name or "").replace(".", " ").split() if p[:1].isalpha()]
    if not parts:
        return "pt"
    picked = [parts[0], parts[-1]] if len(parts) > 1 else parts
    return "".join(p[0].upper() + "." for p in picked)


def new_ack_code() -> str:
    """A short random code for an alert's SMS ACK (`secrets`, never guessable from the id)."""
    return "".join(secrets.choice(ACK_CODE_ALPHABET) for _ in range(ACK_CODE_LENGTH))


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def is_on_shift(clinician: Clinician, now: datetime, tz_name: str) -> bool:
    """Within the clinician's on-call hours (clinic time zone); no hours = always."""
    if not clinician.on_call_start or not clinician.on_call_end:
        return True
    local = now.astimezone(ZoneInfo(tz_name))
    t = local.hour * 60 + local.minute
    start, end = _minutes(clinician.on_call_start), _minutes(clinician.on_call_end)
    return start <= t < end if start <= end else (t >= start or t < end)  # overnight shift


def on_call(session: Session, clinic_id: int, role: str = "primary",
            now: datetime | None = None) -> list[Clinician]:
    """Who is paged at this level: the on-shift clinician with `role`, else the next
    one down (primary → backup → any active nurse of the clinic)."""
    now = now or utcnow()
    clinic = session.get(Clinic, clinic_id)
    rows = session.execute(
        select(Clinician).where(Clinician.clinic_id == clinic_id, Clinician.active.is_(True))
        .order_by(Clinician.id)
    ).scalars().all()
    on_shift = [c for c in rows if is_on_shift(c, now, clinic.timezone)]
    order = ["primary", "backup"] if role == "primary" else ["backup"]
    for wanted in order:
        picked = [c for c in on_shift if c.on_call == wanted]
        if picked:
            return picked[:1]
    return on_shift[:1] if role == "primary" else []


def covered(session: Session, clinic_id: int, start: datetime, end: datetime) -> bool:
    """Whether a clinician of the clinic is on shift both at `start` and at `end`: a
    call promised by `end` can honestly be promised (the on-call hours)."""
    return bool(on_call(session, clinic_id, "primary", start)) and \
        bool(on_call(session, clinic_id, "primary", end))


def _last_resort(session: Session, clinic_id: int, now: datetime) -> list[Clinician]:
    """Nobody on shift and no fallback number: whoever is on call, on shift or not
    (primary, else backup, else any active clinician) rather than nobody."""
    picked = on_call(session, clinic_id, "primary", now)
    if picked:
        return picked
    rows = session.execute(
        select(Clinician).where(Clinician.clinic_id == clinic_id, Clinician.active.is_(True))
        .order_by(Clinician.id)).scalars().all()
    for wanted in ("primary", "backup"):
        chosen = [c for c in rows if c.on_call == wanted]
        if chosen:
            return chosen[:1]
    return rows[:1]


def page_targets(session: Session, clinic: Clinic, level: int,
                 now: datetime) -> list[tuple[str, int | None]]:
    """(phone, clinician id or None) paged at `level`: 1 the on-shift primary, 2 the
    on-shift backup, 3+ the clinic's fallback number. Whenever a level has nobody
    (nobody on shift at all, no backup) the fallback number is paged instead, and
    with no fallback number the clinic's on-call clinician even off shift."""
    targets: list[tuple[str, int | None]] = []
    if level == 1:
        targets = [(c.phone, c.id) for c in on_call(session, clinic.id, "primary", now)]
    elif level == 2:
        targets = [(c.phone, c.id) for c in on_call(session, clinic.id, "backup", now)]
    if not targets and clinic.fallback_phone:
        targets = [(clinic.fallback_phone, None)]
    if not targets:
        targets = [(c.phone, c.id) for c in _last_resort(session, clinic.id, now)]
        if targets:
            logger.warning("clinic %s: nobody on shift and no fallback number: paging the "
                           "on-call clinician off shift", clinic.id)
    return targets


def alert_body(escalation: Escalation, patient: Patient, level: int = 1) -> str:
    """The clinician alert SMS: no diagnosis, no procedure, a link to the dashboard."""
    link = f"{get_settings().web_base_url}/escalations/{escalation.id}"
    again = "" if level == 1 else f" (page {level}: not yet acknowledged)"
    what = "TASK" if escalation.kind != "red_flag" else escalation.tier.upper()
    if escalation.kind == "red_flag" and IMMINENT in (escalation.reasons or []):
        what += " (IMMINENT)"
    return (f"PainPath alert #{escalation.id}: {what} for patient "
            f"{initials(patient.name)}{again}. Open {link} . Reply ACK {escalation.id} "
            f"{escalation.ack_code} to acknowledge.")


def ack_minutes(clinic: Clinic, tier: str) -> int:
    """How long an alert may wait for acknowledgement before the next page."""
    return clinic.ack_minutes_emergency if tier in ("emergency", "crisis") else \
        clinic.ack_minutes_urgent


def _record(session: Session, escalation: Escalation, action: str,
            clinician_id: int | None = None, detail: str | None = None,
            now: datetime | None = None) -> None:
    session.add(EscalationEvent(escalation_id=escalation.id, action=action,
                                clinician_id=clinician_id, detail=detail, at=now or utcnow()))


ALERT_KEY = "alert:"  # idempotency keys of pages: alert:<escalation>:<level>:<phone>[:<tag>]


def _page(session: Session, escalation: Escalation, patient: Patient, level: int,
          now: datetime, tag: str = "") -> list[int]:
    """Queue the alert for page `level` (`page_targets`: 1 primary, 2 backup, 3+ the
    fallback number, which also stands in for a level with nobody on shift); `tag`
    names a page sent again at the same level for new information."""
    clinic = patient.clinic
    targets = page_targets(session, clinic, level, now)
    if escalation.ack_code is None:  # raised before codes existed (migration 0012)
        escalation.ack_code = new_ack_code()
    ids = []
    for phone, clinician_id in targets:
        msg = record_outbound(session, to=phone, body=alert_body(escalation, patient, level),
                              clinician_id=clinician_id, clinic_id=clinic.id,
                              escalation_id=escalation.id,
                              idempotency_key=f"{ALERT_KEY}{escalation.id}:{level}:{phone}"
                              + (f":{tag}" if tag else ""))
        if msg is not None:
            ids.append(msg.id)
            _record(session, escalation, "paged", clinician_id,
                    f"level {level}" + (f" ({tag})" if tag else ""), now)
    if not targets:
        logger.error("escalation %s: clinic %s has nobody to page", escalation.id, clinic.id)
    escalation.page_level = level
    escalation.next_page_at = now + timedelta(minutes=ack_minutes(clinic, escalation.tier))
    return ids


def promise_call_by(session: Session, patient: Patient, now: datetime) -> datetime | None:
    """The time a nurse's call can be promised to an urgent patient: URGENT_CALLBACK
    from now when the care team is on shift until then, else None (out of hours:
    the patient gets the clinic's out-of-hours route instead of a promise)."""
    call_by = now + URGENT_CALLBACK
    return call_by if covered(session, patient.clinic_id, now, call_by) else None


def raise_flag(session: Session, patient_id: str, tier: str, reasons: list[str],
               text: str | None = None, checkin_id: int | None = None,
               kind: str = "red_flag", now: datetime | None = None) -> Raised:
    """Record an escalation and, for alerting tiers, its alert SMS (in one transaction).

    A `checkin_id` that is not the patient's is not linked (the flag itself is
    never dropped: it is the patient's own message)."""
    now = now or utcnow()
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise ValueError(f"no patient {patient_id!r}")
    checkin_id = own_checkin_id(session, checkin_id, patient_id)
    alerting = tier in ALERTING_TIERS and kind == "red_flag"  # tasks wait in the queue
    escalation = Escalation(patient_id=patient_id, checkin_id=checkin_id, tier=tier,
                            reasons=list(reasons), text=text, kind=kind, created_at=now,
                            status="open" if alerting or kind != "red_flag" else "noted",
                            ack_code=new_ack_code(),
                            call_by=promise_call_by(session, patient, now)
                            if alerting and tier == "urgent" else None)
    session.add(escalation)
    session.flush()
    _record(session, escalation, "opened", detail=tier, now=now)
    alerts = _page(session, escalation, patient, 1, now) if alerting else []
    # the escalation id, never the patient id next to a tier (the logs are not the record)
    logger.info("escalation %s opened: tier=%s", escalation.id, tier)
    return Raised(escalation_id=escalation.id, tier=tier, alert_message_ids=tuple(alerts))


class TransitionError(ValueError):
    """The escalation cannot move that way (e.g. resolving a resolved one)."""


def page_again(session: Session, escalation_id: int, tag: str,
               now: datetime | None = None) -> list[int]:
    """Page the on-call clinician again at once for new information on an escalation
    that was already paged (a screen found imminent risk): an acknowledged one is
    open again, so it is re-paged until someone acknowledges it. Once per `tag`."""
    now = now or utcnow()
    escalation = session.get(Escalation, escalation_id)
    if escalation is None or escalation.status == "resolved":
        raise TransitionError(f"escalation #{escalation_id} is not open")
    if escalation.status != "open":
        escalation.status = "open"
        _record(session, escalation, "reopened", detail=tag, now=now)
    patient = session.get(Patient, escalation.patient_id)
    return _page(session, escalation, patient, 1, now, tag=tag)


def add_note(session: Session, escalation_id: int, note: str,
             now: datetime | None = None) -> None:
    """Add what the patient said since to an escalation, for the nurse who works it."""
    escalation = session.get(Escalation, escalation_id)
    if escalation is None:
        raise TransitionError(f"no escalation #{escalation_id}")
    escalation.reasons = list(dict.fromkeys([*(escalation.reasons or []), note]))
    _record(session, escalation, "note", detail=note, now=now)


OUTCOMES = ("called_patient", "sent_to_ed", "scheduled_visit", "no_action_needed")


def acknowledge(session: Session, escalation_id: int, clinician_id: int, via: str = "dashboard",
                now: datetime | None = None) -> Escalation:
    """open → acknowledged (idempotent for an acknowledged one); stops re-paging."""
    now = now or utcnow()
    escalation = session.get(Escalation, escalation_id)
    if escalation is None:
        raise TransitionError(f"no escalation #{escalation_id}")
    if escalation.status == "resolved":
        raise TransitionError(f"escalation #{escalation_id} is already resolved")
    if escalation.status != "acknowledged":
        escalation.status = "acknowledged"
        escalation.acknowledged_at = now
        escalation.acknowledged_by = clinician_id
        escalation.next_page_at = None
        _record(session, escalation, "acknowledged", clinician_id, via, now)
    return escalation


@dataclass(frozen=True)
class SmsAck:
    """What became of an SMS ACK: accepted, or why not (`refused`: unknown | too_many |
    not_paged | bad_code); `answer`: whether the sender gets a reply."""

    escalation_id: int
    clinician_id: int  # who sent it (of the alert's clinic when the number has several)
    refused: str | None = None

    @property
    def answer(self) -> bool:
        return self.refused != "too_many"  # a guesser gets silence, not a text per try


def was_paged(session: Session, escalation_id: int, phone: str) -> bool:
    """Whether an alert page for this escalation was written to `phone`."""
    return session.execute(select(Message.id).where(
        Message.direction == "out", Message.to == phone,
        Message.idempotency_key.like(f"{ALERT_KEY}{escalation_id}:%")).limit(1)).first() is not None


def refused_acks(session: Session, escalation_id: int) -> int:
    """How many SMS ACKs of this escalation were refused so far."""
    return len(session.execute(select(EscalationEvent.id).where(
        EscalationEvent.escalation_id == escalation_id,
        EscalationEvent.action == "ack_refused")).all())


def _why_not(session: Session, escalation: Escalation | None, clinician: Clinician, phone: str,
             code: str | None) -> str | None:
    patient = session.get(Patient, escalation.patient_id) if escalation else None
    if escalation is None or patient is None or patient.clinic_id != clinician.clinic_id or \
            escalation.status == "resolved":
        return "unknown"
    if refused_acks(session, escalation.id) >= MAX_REFUSED_ACKS:
        return "too_many"
    if not was_paged(session, escalation.id, phone):
        return "not_paged"
    if not code or not escalation.ack_code or \
            not hmac.compare_digest(code.upper().encode(), escalation.ack_code.upper().encode()):
        return "bad_code"
    return None


def acknowledge_by_sms(session: Session, escalation_id: int, clinicians: list[Clinician],
                       phone: str, code: str | None, now: datetime | None = None) -> SmsAck:
    """`ACK <id> <code>` from a clinician's registered number. Accepted only with the
    alert's code, from a number that alert was paged to, for an alert of the
    clinician's clinic that is not resolved, and while fewer than MAX_REFUSED_ACKS
    were refused. A From number can be spoofed: everything else leaves the alert
    open (the ladder keeps paging) and is audited, in the audit log and in the
    escalation's history. `clinicians`: the active clinicians with that number (one
    person may work at several clinics): the one of the alert's clinic answers."""
    now = now or utcnow()
    escalation = session.get(Escalation, escalation_id)
    patient = session.get(Patient, escalation.patient_id) if escalation is not None else None
    clinician = next((c for c in clinicians if patient is not None
                      and c.clinic_id == patient.clinic_id), clinicians[0])
    refused = _why_not(session, escalation, clinician, phone, code)
    if refused is None:
        acknowledge(session, escalation_id, clinician.id, via="sms", now=now)
        return SmsAck(escalation_id, clinician.id)
    session.add(AuditLog(at=now, clinician_id=clinician.id, action="sms_ack_refused",
                         patient_id=escalation.patient_id if escalation is not None
                         and refused != "unknown" else None,
                         detail=f"SMS ACK of alert #{escalation_id} refused: {refused}"))
    if escalation is not None:
        _record(session, escalation, "ack_refused", clinician.id, refused, now)
    logger.warning("SMS ACK of escalation %s refused (%s) from clinician %s", escalation_id,
                   refused, clinician.id)
    return SmsAck(escalation_id, clinician.id, refused)


def resolve(session: Session, escalation_id: int, clinician_id: int, outcome: str,
            note: str | None = None, now: datetime | None = None) -> Escalation:
    """open/acknowledged/noted → resolved, with an outcome and a note."""
    now = now or utcnow()
    if outcome not in OUTCOMES:
        raise TransitionError(f"outcome must be one of {', '.join(OUTCOMES)}")
    escalation = session.get(Escalation, escalation_id)
    if escalation is None:
        raise TransitionError(f"no escalation #{escalation_id}")
    if escalation.status == "resolved":
        raise TransitionError(f"escalation #{escalation_id} is already resolved")
    if escalation.acknowledged_at is None:
        escalation.acknowledged_at = now
        escalation.acknowledged_by = clinician_id
    escalation.status = "resolved"
    escalation.resolved_at = now
    escalation.resolved_by = clinician_id
    escalation.outcome = outcome
    escalation.resolution_note = (note or "").strip()[:4000] or None
    escalation.next_page_at = None
    _record(session, escalation, "resolved", clinician_id, outcome, now)
    if escalation.tier in outreach.HOLD_TIERS:  # the last one open lifts the hold
        session.flush()
        outreach.release(session, escalation.patient_id, now)
    return escalation


def repage_due(session: Session, now: datetime | None = None) -> list[int]:
    """Page the next level for every open escalation whose acknowledgement is late,
    and tell urgent patients whose promised call time passed. Returns message ids."""
    from painpath.content import message

    now = now or utcnow()
    ids: list[int] = []
    late = session.execute(
        select(Escalation).where(Escalation.status == "open", Escalation.next_page_at <= now)
        .order_by(Escalation.next_page_at).with_for_update(skip_locked=True)
    ).scalars().all()
    for escalation in late:
        patient = session.get(Patient, escalation.patient_id)
        ids += _page(session, escalation, patient, escalation.page_level + 1, now)
    overdue = session.execute(
        select(Escalation).where(Escalation.status.in_(("open", "acknowledged")),
                                 Escalation.call_by <= now,
                                 Escalation.call_by_notified.is_(False))
        .with_for_update(skip_locked=True)
    ).scalars().all()
    for escalation in overdue:
        patient = session.get(Patient, escalation.patient_id)
        clinic = patient.clinic
        escalation.call_by_notified = True
        _record(session, escalation, "call_overdue", detail="patient told; care team re-paged",
                now=now)
        if not patient.sms_opted_out or patient.channel == "web":
            msg = record_outbound(
                session, to=patient.phone if patient.channel == "sms" else "web",
                channel=patient.channel, patient_id=patient.id,
                body=message("crisis_call_overdue" if escalation.tier == "crisis"
                             else "redflag_call_overdue", clinic=clinic.name,
                             clinic_phone=contact.clinic_phone(clinic),
                             emergency_number=contact.emergency_number(clinic)),
                idempotency_key=f"overdue:{escalation.id}")
            if msg is not None and patient.channel == "sms":
                ids.append(msg.id)
            elif msg is not None:
                msg.status = "delivered"
        ids += _page(session, escalation, patient, max(escalation.page_level, 1) + 1, now)
    return ids


DEDUPE_WINDOW = timedelta(minutes=60)


@dataclass
class RedFlagResponse:
    """What the bot says and does for a red flag in the patient's own words."""

    tier: str
    replies: list[str]
    raised: Raised | None
    stop_checkin: bool
    escalation_id: int | None = None  # the escalation raised, or the open one added to


def local_time(patient: Patient, when: datetime) -> str:
    """`when` in the patient's own time zone, e.g. '3:45 PM'."""
    local = when.astimezone(ZoneInfo(patient.timezone))
    return local.strftime("%-I:%M %p").lstrip("0")


def urgent_words(patient: Patient, call_by: datetime | None) -> str:
    """What an urgent patient is told: by when a nurse calls (in their own time zone),
    or outside on-call hours the clinic's out-of-hours route (painpath/contact.py)."""
    return contact.urgent_reply(patient.clinic, local_time(patient, call_by) if call_by else None)


def handle_red_flag(session: Session, patient_id: str, tier: str, reasons: list[str],
                    text: str | None, checkin_id: int | None = None,
                    now: datetime | None = None) -> RedFlagResponse:
    """Record (or add to) an escalation for a red flag and word the reply.

    A second message about the same problem within the hour is added to the open
    escalation of the same or higher tier instead of paging again.
    """
    from painpath.content import message

    now = now or utcnow()
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise ValueError(f"no patient {patient_id!r}")
    clinic = patient.clinic
    recent = session.execute(
        select(Escalation).where(Escalation.patient_id == patient_id,
                                 Escalation.status == "open",
                                 Escalation.created_at >= now - DEDUPE_WINDOW)
        .order_by(Escalation.id.desc())
    ).scalars().all()
    same = next((e for e in recent if tier_rank(e.tier) >= tier_rank(tier)), None)
    raised = None
    if same is not None:
        same.reasons = list(dict.fromkeys([*(same.reasons or []), *reasons]))
        same.text = ((same.text or "") + "\n" + (text or "")).strip()[:4000]
    else:
        raised = raise_flag(session, patient_id, tier, reasons, text=text, checkin_id=checkin_id,
                            now=now)
    emergency = clinic.emergency_number or "911"
    if tier == "emergency":
        replies = [message("redflag_emergency", emergency_number=emergency)]
    elif tier == "crisis":  # the question that follows is painpath/screening.py's
        replies = [message("redflag_crisis", emergency_number=emergency)]
    elif tier == "urgent":
        escalation = same if same is not None else session.get(Escalation, raised.escalation_id)
        call_by = escalation.call_by if escalation is not None and escalation.call_by else \
            promise_call_by(session, patient, now)
        replies = [urgent_words(patient, call_by)]
    else:
        replies = [message("redflag_routine")]
    if BYSTANDER_REASON in reasons and tier in ("routine", "urgent"):
        # someone else's emergency: 911 for them first; a routine note says no more
        bystander = message("redflag_bystander", emergency_number=emergency)
        replies = [bystander] if tier == "routine" else [bystander, *replies]
    return RedFlagResponse(tier=tier, replies=replies, raised=raised,
                           stop_checkin=tier in ("emergency", "crisis"),
                           escalation_id=same.id if same is not None else raised.escalation_id
                           if raised is not None else None)


def run_repage(now: datetime | None = None) -> list[int]:
    """Scheduler job: re-page late escalations and hand the pages to the gateway."""
    from painpath.db import new_session

    with new_session() as session, session.begin():
        ids = repage_due(session, now)
    deliver_now(ids)
    return ids
