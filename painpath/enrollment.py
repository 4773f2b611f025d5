"""Clinics and enrolment: a patient, their procedure and their check-in schedule."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath.content import get_content
from painpath.models import CheckIn, Clinic, Consent, Enrollment, Patient
from painpath.phone import mask, normalize

logger = logging.getLogger(__name__)


class EnrollmentError(ValueError):
    """Invalid enrolment input; the message says which field and why."""


@dataclass(frozen=True)
class EnrollmentRequest:
    clinic_slug: str
    phone: str
    procedure: str
    procedure_at: str | datetime
    timezone: str | None = None
    name: str | None = None
    channel: str = "sms"
    baseline_pain: float | None = None


def check_timezone(name: str) -> str:
    """Return `name` if it is an IANA time zone name, else EnrollmentError."""
    if name not in available_timezones():
        raise EnrollmentError(f"unknown time zone {name!r}: use an IANA name like America/Chicago")
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError:
        raise EnrollmentError(f"unknown time zone {name!r}") from None
    return name


def parse_when(value: str | datetime, tz_name: str) -> datetime:
    """An ISO 8601 time; without an offset it is read in the patient's zone. Returns UTC."""
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise EnrollmentError(
                f"procedure time {value!r} is not ISO 8601 (e.g. 2026-11-20T09:30-05:00)"
            ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(tz_name))
    return when.astimezone(timezone.utc)


def due_time(procedure_at: datetime, offset: timedelta, tz_name: str) -> datetime:
    """When a check-in `offset` after the procedure falls due, in UTC.

    Whole-day offsets keep the patient's wall-clock time ("+7d" after a 9:30
    procedure is 9:30 a week later, across a daylight-saving change); hour and
    minute offsets are elapsed time.
    """
    if offset.total_seconds() % 86400 == 0:
        zone = ZoneInfo(tz_name)
        local = procedure_at.astimezone(zone)
        wall = local.replace(tzinfo=None) + offset
        return wall.replace(tzinfo=zone).astimezone(timezone.utc)
    return procedure_at + offset


def get_clinic(session: Session, slug: str) -> Clinic:
    """The clinic with `slug`, or EnrollmentError."""
    clinic = session.execute(select(Clinic).where(Clinic.slug == slug)).scalar_one_or_none()
    if clinic is None:
        raise EnrollmentError(f"no clinic {slug!r}")
    return clinic


def enroll(session: Session, req: EnrollmentRequest) -> Patient:
    """Validate everything, then create patient, enrolment, consent and check-ins.

    Runs inside the caller's transaction: on any error nothing is written.
    """
    content = get_content()
    clinic = get_clinic(session, req.clinic_slug)
    try:
        phone = normalize(req.phone)
    except ValueError as exc:
        raise EnrollmentError(str(exc)) from None
    if req.procedure not in content.procedures:
        known = ", ".join(sorted(content.procedures))
        raise EnrollmentError(f"unknown procedure {req.procedure!r}; known: {known}")
    tz_name = check_timezone(req.timezone or clinic.timezone)
    procedure_at = parse_when(req.procedure_at, tz_name)
    if req.channel not in ("sms", "web"):
        raise EnrollmentError("channel must be sms or web")
    if req.baseline_pain is not None and not 0 <= req.baseline_pain <= 10:
        raise EnrollmentError("baseline pain must be 0–10")
    existing = session.execute(
        select(Patient).where(Patient.clinic_id == clinic.id, Patient.phone == phone)
    ).scalar_one_or_none()
    if existing is not None:
        active = [e for e in existing.enrollments if e.status == "active"]
        if active:
            raise EnrollmentError(
                f"phone {mask(phone)} already belongs to patient {existing.id} with an active "
                "enrolment; cancel it first"
            )
        patient = existing
        patient.timezone = tz_name
        patient.name = req.name or patient.name
    else:
        patient = Patient(clinic_id=clinic.id, phone=phone, timezone=tz_name, name=req.name,
                          channel=req.channel)
        session.add(patient)
    session.flush()
    enrollment = Enrollment(patient_id=patient.id, procedure=req.procedure,
                            procedure_at=procedure_at, baseline_pain=req.baseline_pain)
    session.add(enrollment)
    session.add(Consent(patient_id=patient.id, kind="sms", event="opt_in", source="enrollment"))
    session.flush()
    from painpath.protocols import schedule

    schedule(session, enrollment)
    session.flush()
    logger.info("enrolled patient %s (%s) at clinic %s", patient.id, mask(phone), clinic.slug)
    return patient


def ensure_clinic(session: Session, slug: str, name: str, phone: str | None = None,
                  tz_name: str = "America/New_York") -> Clinic:
    """Create the clinic `slug` if missing (idempotent); returns it."""
    clinic = session.execute(select(Clinic).where(Clinic.slug == slug)).scalar_one_or_none()
    if clinic is None:
        clinic = Clinic(slug=slug, name=name, phone=normalize(phone) if phone else None,
                        timezone=check_timezone(tz_name))
        session.add(clinic)
        session.flush()
    return clinic


CSV_COLUMNS = ("phone", "procedure", "procedure_at", "timezone", "name", "channel", "baseline_pain")


def import_csv(text: str, clinic_slug: str, session_factory) -> dict:  # type: ignore[no-untyped-def]
    """Enrol one patient per CSV row, each row in its own transaction.

    Columns: phone, procedure, procedure_at (required); timezone, name, channel,
    baseline_pain (optional). Returns `{enrolled: [{row, id}], errors: [{row, error}]}`;
    a bad row writes nothing and does not stop the others.
    """
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in ("phone", "procedure", "procedure_at") if c not in header]
    if missing:
        raise EnrollmentError(f"CSV header lacks {', '.join(missing)}; columns: "
                              + ", ".join(CSV_COLUMNS))
    enrolled, errors = [], []
    for number, raw in enumerate(reader, start=2):  # row 1 is the header
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        try:
            baseline = float(row["baseline_pain"]) if row.get("baseline_pain") else None
        except ValueError:
            errors.append({"row": number, "error": "baseline_pain must be a number 0-10"})
            continue
        req = EnrollmentRequest(clinic_slug=clinic_slug, phone=row.get("phone", ""),
                                procedure=row.get("procedure", ""),
                                procedure_at=row.get("procedure_at", ""),
                                timezone=row.get("timezone") or None, name=row.get("name") or None,
                                channel=row.get("channel") or "sms", baseline_pain=baseline)
        try:
            with session_factory() as session, session.begin():
                patient_id = enroll(session, req).id
            enrolled.append({"row": number, "id": patient_id})
        except EnrollmentError as exc:
            errors.append({"row": number, "error": str(exc)})
    return {"enrolled": enrolled, "errors": errors}
