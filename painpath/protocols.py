"""Clinic protocols: which check-ins follow which procedure, and when.

Defaults for every procedure ship in painpath/content/procedures.yaml; a clinic
overrides them per procedure (`painpath protocol load FILE`, same shape as that
file's `procedures:` entries). Loading a protocol reschedules the pending
check-ins of that clinic's active enrolments; answered ones stay as they are.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath.content import ContentError, Procedure, get_content, procedure_from_spec
from painpath.models import CheckIn, Clinic, Enrollment, Patient, Protocol

logger = logging.getLogger(__name__)


class ProtocolError(ValueError):
    """An invalid protocol file; the message names the procedure and the problem."""


def parse_protocol_file(text: str, where: str = "protocol file") -> dict[str, Procedure]:
    """Parse and check a protocol YAML: `{procedures: {id: {checkins, safety}}}`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProtocolError(f"{where}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("procedures"), dict) \
            or not data["procedures"]:
        raise ProtocolError(f"{where}: expected a mapping 'procedures:' of procedure ids")
    content = get_content()
    parsed = {}
    for pid, spec in data["procedures"].items():
        if pid not in content.procedures:
            raise ProtocolError(f"{where}: unknown procedure {pid!r}; known: "
                                + ", ".join(sorted(content.procedures)))
        try:
            parsed[pid] = procedure_from_spec(pid, spec, where, content.questions)
        except ContentError as exc:
            raise ProtocolError(str(exc)) from None
    return parsed


def effective_procedure(session: Session, clinic_id: int, procedure_id: str) -> Procedure:
    """The clinic's protocol for `procedure_id`, else the default."""
    row = session.execute(select(Protocol).where(
        Protocol.clinic_id == clinic_id, Protocol.procedure == procedure_id)).scalar_one_or_none()
    if row is None:
        return get_content().procedure(procedure_id)
    default = get_content().procedure(procedure_id)
    proc = procedure_from_spec(procedure_id, row.spec, "protocol", get_content().questions)
    return Procedure(id=proc.id, label=default.label, family=default.family,
                     checkpoints=proc.checkpoints, safety=proc.safety)


def schedule(session: Session, enrollment: Enrollment) -> list[CheckIn]:
    """(Re)create the enrolment's pending check-ins from its clinic's protocol.

    Check-ins already started, answered, missed or cancelled are kept; only
    `scheduled` ones are replaced (their due times follow the procedure time), and
    none is added before the last one that already happened.
    """
    from painpath.enrollment import due_time

    patient = session.get(Patient, enrollment.patient_id)
    existing = session.execute(
        select(CheckIn).where(CheckIn.enrollment_id == enrollment.id)).scalars().all()
    kept = {c.key for c in existing if c.status != "scheduled"}
    # nothing new goes before a check-in that already happened
    horizon = max((c.day for c in existing if c.status != "scheduled"), default=-1.0)
    for c in existing:
        if c.status == "scheduled":
            session.delete(c)
    session.flush()
    proc = effective_procedure(session, patient.clinic_id, enrollment.procedure)
    ask_baseline = enrollment.baseline_pain is None and not kept
    created = []
    for checkpoint, items in get_content().plan(enrollment.procedure, ask_baseline, proc):
        if checkpoint.key in kept or checkpoint.day <= horizon:
            continue
        checkin = CheckIn(enrollment_id=enrollment.id, patient_id=patient.id, key=checkpoint.key,
                          day=checkpoint.day, items=items,
                          due_at=due_time(enrollment.procedure_at, checkpoint.offset,
                                          patient.timezone))
        session.add(checkin)
        created.append(checkin)
    session.flush()
    return created


def load(session: Session, clinic_slug: str, text: str, where: str = "protocol file") -> dict[str, Any]:
    """Validate a protocol file, store it for the clinic and reschedule pending check-ins."""
    from painpath.enrollment import get_clinic

    parsed = parse_protocol_file(text, where)
    clinic = get_clinic(session, clinic_slug)
    data = yaml.safe_load(text)["procedures"]
    rescheduled = 0
    for pid in parsed:
        row = session.execute(select(Protocol).where(
            Protocol.clinic_id == clinic.id, Protocol.procedure == pid)).scalar_one_or_none()
        spec = {"checkins": [str(k) for k in data[pid]["checkins"]],
                "safety": list(data[pid].get("safety") or [])}
        if row is None:
            session.add(Protocol(clinic_id=clinic.id, procedure=pid, spec=spec))
        else:
            row.spec = spec
        session.flush()
        enrollments = session.execute(
            select(Enrollment).join(Patient).where(
                Patient.clinic_id == clinic.id, Enrollment.procedure == pid,
                Enrollment.status == "active")).scalars().all()
        for enrollment in enrollments:
            schedule(session, enrollment)
            rescheduled += 1
    logger.info("clinic %s: protocols loaded for %s", clinic_slug, ", ".join(parsed))
    return {"clinic": clinic_slug, "procedures": sorted(parsed), "rescheduled_enrollments": rescheduled}


def show(session: Session, clinic_slug: str, procedure_id: str | None = None) -> dict[str, Any]:
    """The clinic's effective schedule per procedure (its own, or the default)."""
    from painpath.enrollment import get_clinic

    clinic: Clinic = get_clinic(session, clinic_slug)
    own = {r.procedure for r in session.execute(
        select(Protocol).where(Protocol.clinic_id == clinic.id)).scalars()}
    ids = [procedure_id] if procedure_id else sorted(get_content().procedures)
    out = {}
    for pid in ids:
        proc = effective_procedure(session, clinic.id, pid)
        out[pid] = {
            "source": "clinic" if pid in own else "default",
            "checkins": [{"key": cp.key, "items": items}
                         for cp, items in get_content().plan(pid, False, proc)],
            "safety": [{k: v for k, v in vars(r).items() if v is not None} for r in proc.safety],
        }
    return {"clinic": clinic_slug, "procedures": out}


def reschedule_patient(session: Session, patient_id: str, procedure_at: datetime | None = None,
                       cancel: bool = False) -> dict[str, Any]:
    """Change the active enrolment's procedure time (reschedules pending check-ins),
    or cancel it (cancels them)."""
    enrollment = session.execute(
        select(Enrollment).where(Enrollment.patient_id == patient_id,
                                 Enrollment.status == "active")
        .order_by(Enrollment.id.desc())).scalars().first()
    if enrollment is None:
        raise LookupError(f"patient {patient_id} has no active enrolment")
    if cancel:
        enrollment.status = "cancelled"
        pending = session.execute(select(CheckIn).where(
            CheckIn.enrollment_id == enrollment.id,
            CheckIn.status.in_(("scheduled", "starting", "in_progress", "paused")))).scalars()
        count = 0
        for c in pending:
            c.status = "cancelled"
            count += 1
        return {"patient_id": patient_id, "status": "cancelled", "cancelled_checkins": count}
    if procedure_at is not None:
        enrollment.procedure_at = procedure_at
    created = schedule(session, enrollment)
    return {"patient_id": patient_id, "procedure_at": enrollment.procedure_at.isoformat(),
            "scheduled_checkins": len(created)}
