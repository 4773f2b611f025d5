"""Read models: a patient's record as the CLI and the dashboard show it."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath.models import Answer, CheckIn, Enrollment, Escalation, Message, Patient


def _iso(dt) -> str | None:  # type: ignore[no-untyped-def]
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def _number(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def show(session: Session, patient_id: str) -> dict[str, Any] | None:
    """`{id, procedure, checkins, escalations, messages}` per DESIGN.md, or None."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        return None
    enrollment = session.execute(
        select(Enrollment).where(Enrollment.patient_id == patient_id)
        .order_by(Enrollment.id.desc())
    ).scalars().first()
    checkins = []
    if enrollment is not None:
        rows = session.execute(
            select(CheckIn).where(CheckIn.enrollment_id == enrollment.id).order_by(CheckIn.due_at)
        ).scalars().all()
        for c in rows:
            answers = session.execute(
                select(Answer).where(Answer.checkin_id == c.id).order_by(Answer.id)
            ).scalars().all()
            checkins.append({
                "id": c.id, "key": c.key, "due_at": _iso(c.due_at), "status": c.status,
                "answers": {a.item: (_number(a.value) if a.status == "answered" else None)
                            for a in answers if a.status != "pending"},
            })
    escalations = session.execute(
        select(Escalation).where(Escalation.patient_id == patient_id).order_by(Escalation.id)
    ).scalars().all()
    messages = session.execute(
        select(Message).where(Message.patient_id == patient_id).order_by(Message.id)
    ).scalars().all()
    return {
        "id": patient.id,
        "name": patient.name,
        "phone": patient.phone,
        "timezone": patient.timezone,
        "channel": patient.channel,
        "sms_opted_out": patient.sms_opted_out,
        "procedure": enrollment.procedure if enrollment else None,
        "procedure_at": _iso(enrollment.procedure_at) if enrollment else None,
        "baseline_pain": _number(enrollment.baseline_pain) if enrollment else None,
        "checkins": checkins,
        "escalations": [{"id": e.id, "tier": e.tier, "status": e.status,
                         "reasons": list(e.reasons or []), "created_at": _iso(e.created_at)}
                        for e in escalations],
        "messages": [{"id": m.id, "direction": m.direction, "channel": m.channel, "to": m.to,
                      "body": m.body, "status": m.status, "created_at": _iso(m.created_at)}
                     for m in messages],
    }
