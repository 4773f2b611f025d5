"""Clinic protocols: which check-ins follow which procedure, and when.

Defaults for every procedure ship in painpath/content/procedures.yaml; a clinic
overrides them per procedure (`painpath protocol load FILE`, same shape as that
file's `procedures:` entries, or the dashboard's protocol page, which goes through
`save` here). Loading a protocol reschedules the pending check-ins of that clinic's
active enrolments; answered ones stay as they are. A protocol may carry a `diary:`
list of pain-diary prompts (painpath/diary.py).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session


from painpath import diary, glucose, pumps
from painpath.content import ContentError, Procedure, get_content, procedure_from_spec
from painpath.models import CheckIn, Clinic, Enrollment, Patient, Protocol
from painpath.weblink import revoke_chat_links

logger = logging.getLogger(__name__)


class ProtocolError(ValueError):
    """An invalid protocol; the message names the procedure and the (first) problem,
    `problems` every problem by field when the caller checked field by field."""

    def __init__(self, message: str, problems: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or {}


SPEC_KEYS = ("checkins", "safety", "diary")


def _yaml_error(exc: yaml.YAMLError, where: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or exc.__class__.__name__
    if mark is not None:
        return (f"{where}: not valid YAML at line {mark.line + 1}, "
                f"column {mark.column + 1}: {problem}")
    return f"{where}: not valid YAML ({problem})"


def check_spec(pid: str, spec: Any, where: str = "protocol") -> dict[str, str]:
    """Every problem of one procedure's protocol, by field (`checkins`, `safety`,
    `safety.N` for the N-th rule from 1, `diary`, `spec`); empty when it is valid."""
    content = get_content()
    if not isinstance(spec, dict):
        return {"spec": f"{where}: {pid}: expected a mapping with checkins, safety, diary"}
    problems: dict[str, str] = {}
    unknown = sorted(str(k) for k in spec if k not in SPEC_KEYS + ("label", "family"))
    if unknown:
        problems["spec"] = (f"{where}: {pid}: unknown field(s) {', '.join(unknown)}; "
                            f"a protocol has {', '.join(SPEC_KEYS)}")
    try:
        procedure_from_spec(pid, {"checkins": spec.get("checkins")}, where)
    except ContentError as exc:
        problems["checkins"] = str(exc)
    rules = spec.get("safety") or []
    if not isinstance(rules, list):
        problems["safety"] = (f"{where}: {pid}: 'safety' must be a list of "
                              "{item, from_day?, until_day?}")
        rules = []
    for n, rule in enumerate(rules, start=1):
        field = f"safety.{n}"
        if not isinstance(rule, dict) or "item" not in rule or \
                set(rule) - {"item", "from_day", "until_day"}:
            problems[field] = (f"{where}: {pid}: safety rule {n}: use "
                               "{item, from_day?, until_day?}")
            continue
        q = content.questions.get(str(rule["item"]))
        if q is None:
            problems[field] = f"{where}: {pid}: unknown safety question {rule['item']!r}"
        elif not q.is_safety:
            problems[field] = (f"{where}: {pid}: {rule['item']!r} is not a yes/no safety "
                               "question")
        elif q.parent is not None:
            problems[field] = (f"{where}: {pid}: {rule['item']!r} is only asked after a yes to "
                               f"{q.parent!r}")
        bounds = {}
        for key in ("from_day", "until_day"):
            value = rule.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                problems[field] = (f"{where}: {pid}: safety rule {n}: {key} must be a number "
                                   "of days, 0 or more")
            else:
                bounds[key] = float(value)
        if "from_day" in bounds and "until_day" in bounds \
                and bounds["from_day"] > bounds["until_day"]:
            problems[field] = f"{where}: {pid}: safety rule {n}: from_day is after until_day"
    try:
        diary.parse_diary(spec.get("diary"), pid, where)
    except diary.DiaryError as exc:
        problems["diary"] = str(exc)
    return problems


def parse_protocol_file(text: str, where: str = "protocol file") -> dict[str, Procedure]:
    """Parse and check a protocol YAML: `{procedures: {id: {checkins, safety, diary?}}}`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProtocolError(_yaml_error(exc, where)) from None
    if not isinstance(data, dict) or not isinstance(data.get("procedures"), dict) \
            or not data["procedures"]:
        raise ProtocolError(f"{where}: expected a mapping 'procedures:' of procedure ids")
    content = get_content()
    parsed = {}
    for pid, spec in data["procedures"].items():
        if pid not in content.procedures:
            raise ProtocolError(f"{where}: unknown procedure {pid!r}; known: "
                                + ", ".join(sorted(content.procedures)))
        problems = check_spec(pid, spec, where)
        if problems:
            raise ProtocolError(next(iter(problems.values())))
        parsed[pid] = procedure_from_spec(pid, spec, where, content.questions)
    return parsed


def normal_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a checked spec: offsets as strings, rules as given;
    `diary` only when the protocol sets one (absent = the default diary)."""
    out: dict[str, Any] = {"checkins": [str(k) for k in spec["checkins"]],
                           "safety": [dict(r) for r in (spec.get("safety") or [])]}
    if "diary" in spec:
        out["diary"] = [str(k) for k in (spec.get("diary") or [])]
    return out


def effective_procedure(session: Session, clinic_id: int, procedure_id: str) -> Procedure:
    """The clinic's protocol for `procedure_id`, else the default."""
    row = session.execute(select(Protocol).where(
        Protocol.clinic_id == clinic_id, Protocol.procedure == procedure_id)).scalar_one_or_none()
    if row is None:
        return get_content().procedure(procedure_id)
    default = get_content().procedure(procedure_id)
    proc = procedure_from_spec(procedure_id, row.spec, "protocol", get_content().questions)
    return Procedure(id=proc.id, label=default.label, family=default.family,
                     checkpoints=proc.checkpoints, safety=proc.safety, steroid=default.steroid)


def clinic_spec(session: Session, clinic_id: int, procedure_id: str) -> dict[str, Any] | None:
    """The clinic's own stored protocol for `procedure_id` (None: it uses the default)."""
    row = session.execute(select(Protocol).where(
        Protocol.clinic_id == clinic_id, Protocol.procedure == procedure_id)).scalar_one_or_none()
    return dict(row.spec) if row is not None else None


def effective_spec(session: Session, clinic_id: int, procedure_id: str) -> dict[str, Any]:
    """`{checkins, safety, diary}` as the clinic's protocol or the default has them."""
    proc = effective_procedure(session, clinic_id, procedure_id)
    own = clinic_spec(session, clinic_id, procedure_id)
    return {
        "checkins": [cp.key for cp in proc.checkpoints],
        "safety": [{k: v for k, v in vars(r).items() if v is not None} for r in proc.safety],
        "diary": [cp.key for cp in diary.effective_diary(procedure_id, own)],
    }


def plan_for(session: Session, enrollment: Enrollment, patient: Patient,
             ask_baseline: bool) -> list[diary.Planned]:
    """The enrolment's check-ins under its clinic's protocol, with the pain diary
    folded in when the procedure has one and the patient consented to it."""
    from painpath.enrollment import due_time
    from painpath.scheduling import in_quiet_hours

    proc = effective_procedure(session, patient.clinic_id, enrollment.procedure)
    regular = get_content().plan(enrollment.procedure, False, proc)
    prompts: tuple[Any, ...] = ()
    quiet = None
    if diary.has_consent(session, patient.id, diary.CONSENT_DIARY):
        prompts = diary.effective_diary(
            enrollment.procedure, clinic_spec(session, patient.clinic_id, enrollment.procedure))
        if not diary.has_consent(session, patient.id, diary.CONSENT_NIGHT):
            def quiet(when: datetime) -> bool:
                return in_quiet_hours(when, patient.timezone, patient.clinic)

    def due(offset: Any) -> datetime:
        return due_time(enrollment.procedure_at, offset, patient.timezone)

    planned = diary.merge_plan(regular, prompts, ask_baseline, due, quiet)
    planned = [diary.Planned(key=p.key, offset=p.offset,
                             items=tuple(pumps.drug_items(p.items, enrollment.pump_drug)))
               for p in planned]
    if enrollment.diabetic and proc.steroid:
        planned = with_glucose(planned)
    return planned


GLUCOSE_KEY_PREFIX = "glucose-"  # a check-in that only asks the blood sugar: "glucose-2d"


def with_glucose(planned: list[diary.Planned]) -> list[diary.Planned]:
    """`planned` with the steroid blood-sugar question on each of its days (§1.0):
    inside that day's check-in after the safety questions, or alone (pure)."""
    item = glucose.question_item()
    first_always = get_content().instruments["always"][0]
    out = list(planned)
    for day in glucose.question_days():
        offset = timedelta(days=day)
        at = next((i for i, p in enumerate(out) if p.offset == offset), None)
        if at is None:
            out.append(diary.Planned(key=f"{GLUCOSE_KEY_PREFIX}{day:g}d", offset=offset,
                                     items=(item,)))
            continue
        items = list(out[at].items)
        if item not in items:
            items.insert(items.index(first_always) if first_always in items else len(items),
                         item)
        out[at] = diary.Planned(key=out[at].key, offset=offset, items=tuple(items))
    out.sort(key=lambda p: p.offset)
    return out


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
    # nothing new goes before a check-in that already happened (pump events, tied to
    # the wall clock rather than the protocol, do not count and are kept)
    horizon = max((c.day for c in existing
                   if c.status != "scheduled" and not pumps.is_event_key(c.key)), default=-1.0)
    for c in existing:
        if c.status == "scheduled" and not pumps.is_event_key(c.key):
            session.delete(c)
    session.flush()
    ask_baseline = enrollment.baseline_pain is None and not kept
    created = []
    for planned in plan_for(session, enrollment, patient, ask_baseline):
        if planned.key in kept or planned.day <= horizon:
            continue
        checkin = CheckIn(enrollment_id=enrollment.id, patient_id=patient.id, key=planned.key,
                          day=planned.day, items=list(planned.items),
                          due_at=due_time(enrollment.procedure_at, planned.offset,
                                          patient.timezone))
        session.add(checkin)
        created.append(checkin)
    session.flush()
    return created


def load(session: Session, clinic_slug: str, text: str,
         where: str = "protocol file") -> dict[str, Any]:
    """Validate a protocol file, store it for the clinic and reschedule pending check-ins."""
    from painpath.enrollment import get_clinic

    parsed = parse_protocol_file(text, where)
    clinic = get_clinic(session, clinic_slug)
    data = yaml.safe_load(text)["procedures"]
    rescheduled = 0
    for pid in parsed:
        rescheduled += _store(session, clinic, pid, normal_spec(data[pid]))
    logger.info("clinic %s: protocols loaded for %s", clinic_slug, ", ".join(parsed))
    return {"clinic": clinic_slug, "procedures": sorted(parsed),
            "rescheduled_enrollments": rescheduled}


def _reschedule_clinic(session: Session, clinic: Clinic, pid: str) -> int:
    enrollments = session.execute(
        select(Enrollment).join(Patient).where(
            Patient.clinic_id == clinic.id, Enrollment.procedure == pid,
            Enrollment.status == "active")).scalars().all()
    for enrollment in enrollments:
        schedule(session, enrollment)
    return len(enrollments)


def _store(session: Session, clinic: Clinic, pid: str, spec: dict[str, Any] | None) -> int:
    """Store (None: delete) the clinic's protocol for `pid`; reschedule its active
    enrolments. Returns how many were rescheduled."""
    row = session.execute(select(Protocol).where(
        Protocol.clinic_id == clinic.id, Protocol.procedure == pid)).scalar_one_or_none()
    if spec is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(Protocol(clinic_id=clinic.id, procedure=pid, spec=spec))
    else:
        row.spec = spec
    session.flush()
    return _reschedule_clinic(session, clinic, pid)


def save(session: Session, clinic_slug: str, procedure_id: str,
         spec: dict[str, Any], where: str = "protocol") -> dict[str, Any]:
    """Validate and store one procedure's protocol for the clinic (the dashboard's
    form); reschedules pending check-ins like `load`.

    Raises:
        ProtocolError: with `.problems`, every problem by field (see `check_spec`).
    """
    from painpath.enrollment import get_clinic

    if procedure_id not in get_content().procedures:
        raise ProtocolError(f"{where}: unknown procedure {procedure_id!r}")
    problems = check_spec(procedure_id, spec, where)
    if problems:
        raise ProtocolError(next(iter(problems.values())), problems)
    clinic = get_clinic(session, clinic_slug)
    stored = normal_spec(spec)
    rescheduled = _store(session, clinic, procedure_id, stored)
    logger.info("clinic %s: protocol saved for %s", clinic_slug, procedure_id)
    return {"clinic": clinic_slug, "procedure": procedure_id, "spec": stored,
            "rescheduled_enrollments": rescheduled}


def reset(session: Session, clinic_slug: str, procedure_id: str) -> dict[str, Any]:
    """Drop the clinic's own protocol for `procedure_id` (back to the default);
    reschedules pending check-ins."""
    from painpath.enrollment import get_clinic

    if procedure_id not in get_content().procedures:
        raise ProtocolError(f"unknown procedure {procedure_id!r}")
    clinic = get_clinic(session, clinic_slug)
    rescheduled = _store(session, clinic, procedure_id, None)
    logger.info("clinic %s: protocol for %s reset to the default", clinic_slug, procedure_id)
    return {"clinic": clinic_slug, "procedure": procedure_id,
            "rescheduled_enrollments": rescheduled}


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
        planned = get_content().plan(pid, False, proc)
        out[pid] = {
            "source": "clinic" if pid in own else "default",
            "checkins": [{"key": cp.key, "items": items} for cp, items in planned],
            # where the PHQ-4 mood screen is asked (CLINICAL.md §5: baseline and ~4 weeks)
            "phq4": [proc.checkpoints[i].key
                     for i in sorted(get_content().mood_checkins(proc.checkpoints))],
            "safety": [{k: v for k, v in vars(r).items() if v is not None} for r in proc.safety],
            "diary": [cp.key for cp in diary.effective_diary(
                pid, clinic_spec(session, clinic.id, pid))],
        }
        events = pumps.describe(pid)
        if events:  # refill / dose-change check-in and refill reminders (§1.8, §5)
            out[pid]["events"] = events
        if proc.steroid:  # diabetic patients only (§1.0)
            out[pid]["diabetic_glucose_days"] = glucose.question_days()
    return {"clinic": clinic_slug, "procedures": out}


def active_enrollment(session: Session, patient_id: str) -> Enrollment:
    """The patient's active enrolment, or LookupError."""
    enrollment = session.execute(
        select(Enrollment).where(Enrollment.patient_id == patient_id,
                                 Enrollment.status == "active")
        .order_by(Enrollment.id.desc())).scalars().first()
    if enrollment is None:
        raise LookupError(f"patient {patient_id} has no active enrolment")
    return enrollment


def reschedule_patient(session: Session, patient_id: str, procedure_at: datetime | None = None,
                       cancel: bool = False) -> dict[str, Any]:
    """Change the active enrolment's procedure time (reschedules pending check-ins),
    or cancel it (cancels them)."""
    enrollment = active_enrollment(session, patient_id)
    if cancel:
        enrollment.status = "cancelled"
        revoke_chat_links(session, patient_id)  # links sent so far stop working
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
