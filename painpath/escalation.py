"""Escalations: a red flag recorded with its alert to the on-call clinician.

The escalation and its outbound alert are written in the caller's transaction
(never one without the other); the alert is handed to the gateway after commit.
Alert SMS carry the minimum necessary: alert id, tier, the patient's initials
and a dashboard link, never a diagnosis or procedure name (DESIGN.md).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath.messaging import record_outbound
from painpath.models import Clinician, Escalation, Patient, utcnow
from painpath.settings import get_settings
from painpath.triage import tier_rank

logger = logging.getLogger(__name__)

ALERTING_TIERS = ("emergency", "crisis", "urgent")
URGENT_CALLBACK = timedelta(hours=2)  # "a nurse will call you by …" (same-day contact)


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


def on_call(session: Session, clinic_id: int) -> list[Clinician]:
    """Who gets the first alert: the primary on-call, else the backup, else any nurse."""
    rows = session.execute(
        select(Clinician).where(Clinician.clinic_id == clinic_id, Clinician.active.is_(True))
        .order_by(Clinician.id)
    ).scalars().all()
    for role in ("primary", "backup"):
        picked = [c for c in rows if c.on_call == role]
        if picked:
            return picked[:1]
    return rows[:1]


def alert_body(escalation: Escalation, patient: Patient) -> str:
    """The clinician alert SMS: no diagnosis, no procedure, a link to the dashboard."""
    link = f"{get_settings().web_base_url}/escalations/{escalation.id}"
    return (f"PainPath alert #{escalation.id}: {escalation.tier.upper()} for patient "
            f"{initials(patient.name)}. Open {link} . Reply ACK {escalation.id} to acknowledge.")


def raise_flag(session: Session, patient_id: str, tier: str, reasons: list[str],
               text: str | None = None, checkin_id: int | None = None) -> Raised:
    """Record an escalation and, for alerting tiers, its alert SMS (in one transaction)."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise ValueError(f"no patient {patient_id!r}")
    escalation = Escalation(patient_id=patient_id, checkin_id=checkin_id, tier=tier,
                            reasons=list(reasons), text=text,
                            status="open" if tier in ALERTING_TIERS else "noted")
    session.add(escalation)
    session.flush()
    alerts: list[int] = []
    if tier in ALERTING_TIERS:
        recipients = on_call(session, patient.clinic_id)
        if not recipients:
            logger.error("escalation %s: clinic %s has no clinician to alert",
                         escalation.id, patient.clinic_id)
        for clinician in recipients:
            msg = record_outbound(session, to=clinician.phone, body=alert_body(escalation, patient),
                                  clinician_id=clinician.id,
                                  idempotency_key=f"alert:{escalation.id}:{clinician.id}:1")
            if msg is not None:
                alerts.append(msg.id)
    logger.info("escalation %s tier=%s for patient %s", escalation.id, tier, patient_id)
    return Raised(escalation_id=escalation.id, tier=tier, alert_message_ids=tuple(alerts))


DEDUPE_WINDOW = timedelta(minutes=60)


@dataclass
class RedFlagResponse:
    """What the bot says and does for a red flag in the patient's own words."""

    tier: str
    replies: list[str]
    raised: Raised | None
    stop_checkin: bool


def _call_by(patient: Patient, now: datetime) -> str:
    """The time a nurse will call by, in the patient's own time zone (e.g. '3:45 PM')."""
    local = (now + URGENT_CALLBACK).astimezone(ZoneInfo(patient.timezone))
    return local.strftime("%-I:%M %p").lstrip("0")


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
        raised = raise_flag(session, patient_id, tier, reasons, text=text, checkin_id=checkin_id)
    emergency = clinic.emergency_number or "911"
    if tier == "emergency":
        replies = [message("redflag_emergency", emergency_number=emergency)]
    elif tier == "crisis":
        replies = [message("redflag_crisis", emergency_number=emergency),
                   message("redflag_crisis_followup")]
    elif tier == "urgent":
        replies = [message("redflag_urgent", clinic=clinic.name, call_by=_call_by(patient, now),
                           emergency_number=emergency)]
    else:
        replies = [message("redflag_routine")]
    return RedFlagResponse(tier=tier, replies=replies, raised=raised,
                           stop_checkin=tier in ("emergency", "crisis"))
