"""Clinics and enrolment: a patient, their procedure and their check-in schedule."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath import contact, glucose, outreach, pumps
from painpath.content import get_content
from painpath.messaging import record_outbound
from painpath.models import CheckIn, Clinic, Consent, Enrollment, Patient, utcnow
from painpath.phone import mask, normalize

logger = logging.getLogger(__name__)


class EnrollmentError(ValueError):
    """Invalid enrolment input; the message says which field and why (`field` names it:
    phone, procedure, procedure_at, timezone, channel, baseline_pain, diary, clinic)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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
    # express consent to the diagnostic-block pain diary (more than one text a day),
    # and to diary texts outside the send window (CLINICAL.md §6; painpath/diary.py)
    diary_consent: bool = False
    diary_night_consent: bool = False
    # intrathecal pump (CLINICAL.md §1.8): opioid | baclofen | other, next refill date
    pump_drug: str | None = None
    pump_refill_due: str | date | None = None  # YYYY-MM-DD
    # steroid hyperglycaemia (§1.0): diabetic, and the limit of their diabetes plan
    diabetic: bool = False
    glucose_limit_mg_dl: float | str | None = None


def check_timezone(name: str) -> str:
    """Return `name` if it is an IANA time zone name, else EnrollmentError."""
    if name not in available_timezones():
        raise EnrollmentError(f"unknown time zone {name!r}: use an IANA name like America/Chicago",
                              "timezone")
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError:
        raise EnrollmentError(f"unknown time zone {name!r}", "timezone") from None
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
                f"procedure time {value!r} is not ISO 8601 (e.g. 2026-11-20T09:30-05:00)",
                "procedure_at") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(tz_name))
    return when.astimezone(timezone.utc)


def check_local_time(wall: datetime, tz_name: str) -> datetime:
    """A wall-clock time in `tz_name` (naive) → UTC; EnrollmentError when the clocks
    skip it (spring forward) or pass it twice (fall back), so no one guesses."""
    zone = ZoneInfo(tz_name)
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        back = first.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
        if back != wall:
            raise EnrollmentError(f"{wall:%Y-%m-%d %H:%M} does not exist in {tz_name} "
                                  "(the clocks skip that hour); check the time", "procedure_at")
        raise EnrollmentError(f"{wall:%Y-%m-%d %H:%M} happens twice in {tz_name} (the clocks "
                              "go back); give the time with its UTC offset", "procedure_at")
    return first.astimezone(timezone.utc)


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
        raise EnrollmentError(f"no clinic {slug!r}", "clinic")
    return clinic


def enroll(session: Session, req: EnrollmentRequest, now: datetime | None = None) -> Patient:
    """Validate everything, then create patient, enrolment, consent, check-ins and,
    for an SMS patient, the welcome message (`queue_welcome`).

    Runs inside the caller's transaction: on any error nothing is written.
    """
    clinic, phone, tz_name, procedure_at, existing = _checked(session, req)
    if existing is not None:
        patient = existing
        patient.timezone = tz_name
        patient.name = req.name or patient.name
        patient.channel = req.channel
    else:
        patient = Patient(clinic_id=clinic.id, phone=phone, timezone=tz_name, name=req.name,
                          channel=req.channel)
        session.add(patient)
    session.flush()
    limit = glucose.check_limit(req.glucose_limit_mg_dl)
    enrollment = Enrollment(patient_id=patient.id, procedure=req.procedure,
                            procedure_at=procedure_at, baseline_pain=req.baseline_pain,
                            pump_drug=pumps.check_drug(req.pump_drug),
                            diabetic=bool(req.diabetic or limit is not None),
                            glucose_limit_mg_dl=limit)
    session.add(enrollment)
    session.add(Consent(patient_id=patient.id, kind="sms", event="opt_in", source="enrollment"))
    session.flush()
    from painpath import diary
    from painpath.protocols import schedule

    # a re-enrolled patient consents afresh: an earlier diary consent does not carry over
    for kind, granted in ((diary.CONSENT_DIARY, req.diary_consent),
                          (diary.CONSENT_NIGHT, req.diary_consent and req.diary_night_consent)):
        if granted or diary.has_consent(session, patient.id, kind):
            diary.record_consent(session, patient.id, kind, granted, "enrollment")

    schedule(session, enrollment)
    refill = parse_refill_date(req.pump_refill_due)
    if refill is not None:
        pumps.set_refill_due(session, patient.id, refill, now)
    session.flush()
    queue_welcome(session, patient, enrollment, now or utcnow())
    logger.info("enrolled patient %s (%s) at clinic %s", patient.id, mask(phone), clinic.slug)
    return patient


def queue_welcome(session: Session, patient: Patient, enrollment: Enrollment,
                  now: datetime) -> list[int]:
    """The welcome SMS of an enrolment, written to the outbox in the enrolment's own
    transaction (never lost) and sent by the dispatcher: at once inside the clinic's
    send window, else when the window opens in the patient's morning. Once per
    enrolment (its idempotency key). Web-chat patients see the same safety notice on
    the chat page instead. Returns the message ids written."""
    if patient.channel != "sms":
        return []
    clinic = patient.clinic or session.get(Clinic, patient.clinic_id)
    opens = outreach.window_opens(now, patient.timezone, clinic)
    ids = []
    for i, text in enumerate(contact.welcome_texts(clinic)):
        msg = record_outbound(session, to=patient.phone, body=text, patient_id=patient.id,
                              idempotency_key=f"welcome:{enrollment.id}:{i}",
                              purpose=outreach.WELCOME, not_before=opens if opens > now else None)
        if msg is not None:
            ids.append(msg.id)
    return ids


def _checked(session: Session, req: EnrollmentRequest
             ) -> tuple[Clinic, str, str, datetime, Patient | None]:
    """Validate `req` field by field; raise the first problem (EnrollmentError)."""
    problems = validate_request(session, req)
    if problems:
        field, message = next(iter(problems.items()))
        raise EnrollmentError(message, field)
    clinic = get_clinic(session, req.clinic_slug)
    phone = normalize(req.phone)
    tz_name = req.timezone or clinic.timezone
    existing = session.execute(
        select(Patient).where(Patient.clinic_id == clinic.id, Patient.phone == phone)
    ).scalar_one_or_none()
    return clinic, phone, tz_name, parse_when(req.procedure_at, tz_name), existing


def validate_request(session: Session, req: EnrollmentRequest) -> dict[str, str]:
    """Every problem of an enrolment request, by field (empty when it can be enrolled).

    Fields: clinic, phone, procedure, timezone, procedure_at, channel, baseline_pain,
    diary. The web form shows each next to its input; the CLI prints the first.
    """
    problems: dict[str, str] = {}
    try:
        clinic = get_clinic(session, req.clinic_slug)
    except EnrollmentError as exc:
        return {"clinic": str(exc)}
    phone = None
    try:
        phone = normalize(req.phone)
    except ValueError as exc:
        problems["phone"] = str(exc)
    content = get_content()
    if req.procedure not in content.procedures:
        known = ", ".join(sorted(content.procedures))
        problems["procedure"] = f"unknown procedure {req.procedure!r}; known: {known}"
    tz_name = req.timezone or clinic.timezone
    try:
        check_timezone(tz_name)
    except EnrollmentError as exc:
        problems["timezone"] = str(exc)
        tz_name = ""
    if tz_name:
        try:
            parse_when(req.procedure_at, tz_name)
        except EnrollmentError as exc:
            problems["procedure_at"] = str(exc)
    if req.channel not in ("sms", "web"):
        problems["channel"] = "channel must be sms or web"
    if req.baseline_pain is not None and not 0 <= req.baseline_pain <= 10:
        problems["baseline_pain"] = "baseline pain must be 0–10"
    problems.update(_pump_and_glucose_problems(req))
    if req.diary_night_consent and not req.diary_consent:
        problems["diary"] = "diary texts outside the usual hours need consent to the diary itself"
    if phone is not None:
        existing = session.execute(
            select(Patient).where(Patient.clinic_id == clinic.id, Patient.phone == phone)
        ).scalar_one_or_none()
        if existing is not None and any(e.status == "active" for e in existing.enrollments):
            problems["phone"] = (f"phone {mask(phone)} already belongs to patient {existing.id} "
                                 "with an active enrolment; cancel it first")
    return problems


def parse_refill_date(value: str | date | None) -> date | None:
    """A pump refill date, YYYY-MM-DD (empty: none), or EnrollmentError."""
    if value is None or isinstance(value, date):
        return value
    if not str(value).strip():
        return None
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise EnrollmentError("pump refill date must be YYYY-MM-DD", "pump_refill_due") from None


def _pump_and_glucose_problems(req: EnrollmentRequest) -> dict[str, str]:
    """Problems of the pump and diabetes fields, by field (pump_drug, pump_refill_due,
    glucose_limit_mg_dl)."""
    problems: dict[str, str] = {}
    is_pump = req.procedure == pumps.PUMP_PROCEDURE
    try:
        if pumps.check_drug(req.pump_drug) is not None and not is_pump:
            problems["pump_drug"] = "a pump drug is only for an intrathecal pump"
    except pumps.PumpError as exc:
        problems["pump_drug"] = str(exc)
    try:
        refill = parse_refill_date(req.pump_refill_due)
        if refill is not None and not is_pump:
            problems["pump_refill_due"] = "a refill date is only for an intrathecal pump"
        elif refill is not None and refill < utcnow().date() - timedelta(days=1):
            problems["pump_refill_due"] = "the refill date is in the past"
    except EnrollmentError as exc:
        problems["pump_refill_due"] = str(exc)
    try:
        glucose.check_limit(req.glucose_limit_mg_dl)
    except glucose.GlucoseLimitError as exc:
        problems["glucose_limit_mg_dl"] = str(exc)
    return problems


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


CSV_COLUMNS = ("phone", "procedure", "procedure_at", "timezone", "name", "channel", "baseline_pain",
               "diary_consent", "diary_night_consent", "pump_drug", "pump_refill_due",
               "diabetic", "glucose_limit_mg_dl")
_YES = {"yes", "y", "true", "1", "x"}
_NO = {"", "no", "n", "false", "0"}


def import_csv(text: str, clinic_slug: str, session_factory) -> dict:  # type: ignore[no-untyped-def]
    """Enrol one patient per CSV row, each row in its own transaction.

    Columns: phone, procedure, procedure_at (required); timezone, name, channel,
    baseline_pain, diary_consent, diary_night_consent (yes/no), pump_drug, pump_refill_due
    (YYYY-MM-DD), diabetic (yes/no), glucose_limit_mg_dl (optional). Returns
    `{enrolled: [{row, id}], errors: [{row, error}]}`; a bad row writes nothing and
    does not stop the others.
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
        flags = {}
        for column in ("diary_consent", "diary_night_consent", "diabetic"):
            value = (row.get(column) or "").lower()
            if value not in _YES | _NO:
                errors.append({"row": number, "error": f"{column} must be yes or no"})
                break
            flags[column] = value in _YES
        if len(flags) < 3:
            continue
        req = EnrollmentRequest(clinic_slug=clinic_slug, phone=row.get("phone", ""),
                                procedure=row.get("procedure", ""),
                                procedure_at=row.get("procedure_at", ""),
                                timezone=row.get("timezone") or None, name=row.get("name") or None,
                                channel=row.get("channel") or "sms", baseline_pain=baseline,
                                pump_drug=row.get("pump_drug") or None,
                                pump_refill_due=row.get("pump_refill_due") or None,
                                glucose_limit_mg_dl=row.get("glucose_limit_mg_dl") or None,
                                **flags)
        try:
            with session_factory() as session, session.begin():
                patient_id = enroll(session, req).id
            enrolled.append({"row": number, "id": patient_id})
        except EnrollmentError as exc:
            errors.append({"row": number, "error": str(exc)})
    return {"enrolled": enrolled, "errors": errors}
