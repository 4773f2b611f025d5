"""Enrolment in the dashboard: the form (nurses and clinic admins), and on the
patient page the enrolment panel (change the procedure time, cancel, withdraw the
diary consent) and the pain-diary summary.

Thin routes: everything goes through painpath/enrollment.py, painpath/protocols.py
and painpath/diary.py, exactly as `painpath enroll` and `painpath enrollment
update|cancel` do. Every change writes an audit-log row.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from painpath import care_details, diary, pumps
from painpath.content import PUMP_DRUGS, get_content
from painpath.db import new_session
from painpath.enrollment import (
    EnrollmentError,
    EnrollmentRequest,
    check_local_time,
    check_timezone,
    enroll,
    parse_refill_date,
    validate_request,
)
from painpath.models import CheckIn, Clinic, Enrollment, Patient
from painpath.phone import InvalidPhone, mask, normalize
from painpath.protocols import clinic_spec, reschedule_patient
from web.route_helpers import DashboardKit

logger = logging.getLogger(__name__)

NAME_MAX_CHARS = 200
PAST_LIMIT = timedelta(days=7)  # older procedures: every early check-in would be missed
FUTURE_LIMIT = timedelta(days=366)
COMMON_TIMEZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
                    "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu",
                    "America/Puerto_Rico")
FIELD_LABELS = {"name": "Patient name", "phone": "Mobile number", "timezone": "Time zone",
                "procedure": "Procedure", "procedure_at": "Procedure date and time",
                "baseline_pain": "Pain before the procedure", "channel": "Channel",
                "diary": "Pain diary consent", "clinic": "Clinic", "pump_drug": "Pump drug",
                "pump_refill_due": "Next pump refill date",
                "glucose_limit_mg_dl": "Blood sugar limit from the diabetes plan"}
PUMP_DRUG_LABELS = {"opioid": "Opioid (e.g. morphine, hydromorphone)", "baclofen": "Baclofen",
                    "other": "Other or a mix"}
CHANGE_LABELS = {"refill": "Refill", "dose_change": "Dose change"}
PENDING = ("scheduled", "starting", "in_progress", "paused")
WALL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")


def parse_wall_time(value: str) -> datetime | None:
    """'2026-11-20T09:30' (an <input type=datetime-local>) → naive datetime, or None."""
    for fmt in WALL_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
    return None


def procedure_time(value: str, tz_name: str, now: datetime) -> tuple[datetime | None, str | None]:
    """The procedure time from the form, in the patient's zone → (UTC, None) or (None, error)."""
    if not value.strip():
        return None, "Enter the date and time of the procedure."
    wall = parse_wall_time(value)
    if wall is None:
        return None, "Enter the date and time as YYYY-MM-DD HH:MM, e.g. 2026-11-20 09:30."
    try:
        when = check_local_time(wall, tz_name)
    except EnrollmentError as exc:
        return None, str(exc)[0].upper() + str(exc)[1:] + "."
    if when < now - PAST_LIMIT:
        return None, ("This is more than 7 days ago: its early check-ins would all be missed. "
                      "Check the date.")
    if when > now + FUTURE_LIMIT:
        return None, "This is more than a year ahead. Check the date."
    return when, None


def diary_procedures(session: Session, clinic_id: int) -> list[str]:
    """Procedure ids that have a pain diary under the clinic's protocols."""
    return [pid for pid in sorted(get_content().procedures)
            if diary.effective_diary(pid, clinic_spec(session, clinic_id, pid))]


def check_form(session: Session, clinic: Clinic, values: dict[str, str],
               now: datetime) -> tuple[EnrollmentRequest | None, dict[str, str]]:
    """Check the enrolment form field by field: (request, {}) or (None, errors)."""
    errors: dict[str, str] = {}
    name = " ".join(values["name"].split())
    if not name:
        errors["name"] = "Enter the patient's name."
    elif len(name) > NAME_MAX_CHARS:
        errors["name"] = f"Use at most {NAME_MAX_CHARS} characters."
    if not values["phone"].strip():
        errors["phone"] = "Enter the patient's mobile number, e.g. +1 415 555 0123."
    else:
        try:
            normalize(values["phone"].strip())
        except InvalidPhone:
            errors["phone"] = ("This is not a valid phone number. Use the full number with area "
                               "code, e.g. +1 415 555 0123.")
    tz_name = values["timezone"].strip() or clinic.timezone
    try:
        check_timezone(tz_name)
    except EnrollmentError:
        errors["timezone"] = "Unknown time zone. Use an IANA name such as America/Chicago."
    procedure = values["procedure"]
    if procedure not in get_content().procedures:
        errors["procedure"] = "Choose the procedure."
    when = None
    if "timezone" not in errors:
        when, problem = procedure_time(values["procedure_at"], tz_name, now)
        if problem:
            errors["procedure_at"] = problem
    baseline = None
    if values["baseline_pain"].strip():
        try:
            baseline = float(values["baseline_pain"].strip().replace(",", "."))
        except ValueError:
            baseline = -1.0
        if not 0 <= baseline <= 10:
            errors["baseline_pain"] = "Enter a number from 0 (no pain) to 10, or leave it empty."
    if values["channel"] not in ("sms", "web"):
        errors["channel"] = "Choose text messages (SMS) or web chat."
    consent, night = values["diary_consent"] == "yes", values["diary_night_consent"] == "yes"
    if night and not consent:
        errors["diary"] = ("Diary texts outside the usual hours need the patient's consent to "
                           "the diary itself: tick both, or neither.")
    elif consent and procedure in get_content().procedures \
            and procedure not in diary_procedures(session, clinic.id):
        errors["diary"] = "This procedure has no pain diary: leave the diary consent unticked."
    if errors:
        return None, errors
    is_pump = procedure == pumps.PUMP_PROCEDURE
    req = EnrollmentRequest(clinic_slug=clinic.slug, phone=values["phone"].strip(),
                            procedure=procedure, procedure_at=when, timezone=tz_name, name=name,
                            channel=values["channel"], baseline_pain=baseline,
                            diary_consent=consent, diary_night_consent=night,
                            pump_drug=(values.get("pump_drug") or None) if is_pump else None,
                            pump_refill_due=(values.get("pump_refill_due") or None)
                            if is_pump else None,
                            diabetic=values.get("diabetic") == "yes",
                            glucose_limit_mg_dl=values.get("glucose_limit_mg_dl") or None)
    # the same checks `painpath enroll` runs (e.g. a phone with an active enrolment)
    for field, message in validate_request(session, req).items():
        errors[field] = message[0].upper() + message[1:] + "."
    return (None, errors) if errors else (req, {})


def _hours(h: float | None) -> str:
    return diary.hours_label(h)


def _pct(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}%"


def diary_view(summary: diary.DiarySummary, tz: str) -> dict[str, Any]:
    """The patient page's diary panel: numbers only, no verdict (CLINICAL.md §2.5)."""
    runs = []
    for level, run in summary.runs.items():
        if run is None:
            runs.append({"level": level, "reached": False})
            continue
        runs.append({
            "level": level, "reached": True, "duration": _hours(run.hours),
            "from": _hours(run.start_hours) or "0 min", "to": _hours(run.end_hours),
            "readings": run.readings,
            "below": _hours(run.below_at_hours) if run.below_at_hours is not None else None,
        })
    zone = ZoneInfo(tz)
    return {
        "baseline": None if summary.baseline is None else f"{summary.baseline:g}",
        "peak": _pct(summary.peak_relief), "peak_after": _hours(summary.peak_hours),
        "runs": runs, "count": len(summary.readings),
        "readings": [{"at": r.at.astimezone(zone).strftime("%b %-d %-H:%M"),
                      "after": _hours(r.hours), "pain": f"{r.pain:g}",
                      "relief": _pct(r.relief)} for r in summary.readings],
    }


def enrollment_panel(session: Session, auth: Any, patient: Patient,
                     now: datetime) -> dict[str, Any]:
    """Context for the patient page's enrolment and diary panels."""
    enrollment = session.execute(
        select(Enrollment).where(Enrollment.patient_id == patient.id)
        .order_by(Enrollment.id.desc())).scalars().first()
    if enrollment is None:
        return {"enrollment": None, "diary": None}
    zone = ZoneInfo(patient.timezone)
    local = enrollment.procedure_at.astimezone(zone)
    pending = session.execute(
        select(func.count()).select_from(CheckIn).where(
            CheckIn.enrollment_id == enrollment.id, CheckIn.status.in_(PENDING))).scalar_one()
    consents = diary.consents(session, patient.id)
    summary = diary.enrollment_summary(session, enrollment)
    proc = get_content().procedures.get(enrollment.procedure)
    return {
        "enrollment": {
            "id": enrollment.id, "status": enrollment.status,
            "active": enrollment.status == "active",
            "procedure": proc.label if proc else enrollment.procedure,
            "procedure_at_local": local.strftime("%b %-d, %Y %-H:%M %Z"),
            "procedure_at_input": local.strftime("%Y-%m-%dT%H:%M"),
            "timezone": patient.timezone, "pending": pending,
            "diary_consent": consents[diary.CONSENT_DIARY],
            "diary_night_consent": consents[diary.CONSENT_NIGHT],
            **care_view(enrollment, patient.timezone),
        },
        "diary": diary_view(summary, auth.clinic_tz) if summary is not None else None,
    }


def care_view(enrollment: Enrollment, tz_name: str) -> dict[str, Any]:
    """The pump and diabetes details of the enrolment panel."""
    refill = pumps.refill_day(enrollment, tz_name)
    return {
        "is_pump": enrollment.procedure == pumps.PUMP_PROCEDURE,
        "pump_drug": enrollment.pump_drug or "",
        "pump_drug_label": PUMP_DRUG_LABELS.get(enrollment.pump_drug or "",
                                                "Not recorded (both withdrawal questions)"),
        "pump_refill_due": refill.isoformat() if refill else "",
        "diabetic": bool(enrollment.diabetic),
        "glucose_limit": ("" if enrollment.glucose_limit_mg_dl is None
                          else f"{enrollment.glucose_limit_mg_dl:g}"),
        "pump_drugs": [(d, PUMP_DRUG_LABELS[d]) for d in PUMP_DRUGS],
        "change_kinds": list(CHANGE_LABELS.items()),
    }


def enroll_routes(router: APIRouter, kit: DashboardKit) -> None:
    """GET/POST /enroll; POST /patients/{id}/procedure-time, /cancel-enrollment,
    /diary-consent/withdraw."""

    def clinic_of(session: Session, auth: Any) -> Clinic:
        return session.get(Clinic, auth.clinic_id)

    def form_page(request: Request, auth: Any, values: dict[str, str] | None = None,
                  errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
        with new_session(kit.db_url) as session:
            clinic = clinic_of(session, auth)
            with_diary = diary_procedures(session, clinic.id)
        content = get_content()
        values = values or {"name": "", "phone": "", "timezone": clinic.timezone,
                            "procedure": "", "procedure_at": "", "baseline_pain": "",
                            "channel": "sms", "diary_consent": "", "diary_night_consent": "",
                            "pump_drug": "", "pump_refill_due": "", "diabetic": "",
                            "glucose_limit_mg_dl": ""}
        timezones = list(COMMON_TIMEZONES)
        if clinic.timezone not in timezones:
            timezones.insert(0, clinic.timezone)
        return kit.finish(kit.render(request, "dashboard/enroll.html", {
            "auth": auth, "active": "enroll", "values": values, "errors": errors or {},
            "field_labels": FIELD_LABELS, "timezones": timezones, "clinic_tz": clinic.timezone,
            "procedures": [(pid, p.label) for pid, p in sorted(content.procedures.items(),
                                                                key=lambda kv: kv[1].label)],
            "diary_labels": [content.procedures[pid].label for pid in with_diary],
            "consent_diary": diary.consent_text(diary.CONSENT_DIARY),
            "consent_night": diary.consent_text(diary.CONSENT_NIGHT),
            "name_max": NAME_MAX_CHARS,
            "pump_drugs": [(d, PUMP_DRUG_LABELS[d]) for d in PUMP_DRUGS],
        }, status_code=status_code), auth)

    @router.get("/enroll", response_class=HTMLResponse)
    def enroll_form(request: Request) -> Response:
        auth, refused = kit.signed_in(request)
        if refused is not None:
            return refused
        return form_page(request, auth)

    @router.post("/enroll")
    def enroll_submit(request: Request, csrf_token: str = Form(""), name: str = Form(""),
                      phone: str = Form(""), timezone: str = Form(""),
                      procedure: str = Form(""), procedure_at: str = Form(""),
                      baseline_pain: str = Form(""), channel: str = Form("sms"),
                      diary_consent: str = Form(""),
                      diary_night_consent: str = Form(""), pump_drug: str = Form(""),
                      pump_refill_due: str = Form(""), diabetic: str = Form(""),
                      glucose_limit_mg_dl: str = Form("")) -> Response:
        auth, refused = kit.signed_in(request, csrf_token)
        if refused is not None:
            return refused
        values = {"name": name[:1000], "phone": phone[:100], "timezone": timezone[:100],
                  "procedure": procedure[:100], "procedure_at": procedure_at[:100],
                  "baseline_pain": baseline_pain[:20], "channel": channel[:10],
                  "diary_consent": diary_consent[:5],
                  "diary_night_consent": diary_night_consent[:5],
                  "pump_drug": pump_drug[:20], "pump_refill_due": pump_refill_due[:20],
                  "diabetic": diabetic[:5], "glucose_limit_mg_dl": glucose_limit_mg_dl[:20]}
        errors: dict[str, str] = {}
        with new_session(kit.db_url) as session, session.begin():
            clinic = clinic_of(session, auth)
            req, errors = check_form(session, clinic, values, kit.now())
            if req is not None:
                try:
                    patient = enroll(session, req)
                except EnrollmentError as exc:  # e.g. the same phone enrolled meanwhile
                    errors = {exc.field or "phone": str(exc)}
                    session.rollback()
                else:
                    patient_id = patient.id
                    # no procedure here: the audit log outlives a deletion
                    kit.audit(session, auth, "enroll", patient_id,
                              "diary consent "
                              f"{'yes' if req.diary_consent else 'no'}"
                              f"{', night too' if req.diary_night_consent else ''}")
        if errors:
            return form_page(request, auth, values, errors, status_code=422)
        logger.info("patient %s (%s) enrolled from the dashboard", patient_id,
                    mask(normalize(values["phone"].strip())))
        return kit.finish(RedirectResponse(f"/patients/{patient_id}#enrollment",
                                           status_code=303), auth)

    def patient_post(request: Request, patient_id: str, csrf_token: str
                     ) -> tuple[Any, Patient | None, Response | None]:
        from web.dashboard import _scoped_patient

        auth, refused = kit.signed_in(request, csrf_token)
        if refused is not None:
            return auth, None, refused
        with new_session(kit.db_url) as session:
            patient = _scoped_patient(session, auth.clinic_id, patient_id)
        if patient is None:
            return auth, None, kit.not_found(request, auth)
        return auth, patient, None

    def invalid(request: Request, patient_id: str, message: str,
                values: dict[str, str] | None = None) -> Response:
        return kit.patient_page(request, patient_id, error=message, status_code=422,
                                extra={"enrollment_form": {"values": values or {},
                                                           "error": message}})

    @router.post("/patients/{patient_id}/procedure-time")
    def change_time(request: Request, patient_id: str, csrf_token: str = Form(""),
                    procedure_at: str = Form("")) -> Response:
        auth, patient, refused = patient_post(request, patient_id, csrf_token)
        if refused is not None:
            return refused
        when, problem = procedure_time(procedure_at[:100], patient.timezone, kit.now())
        if problem:
            return invalid(request, patient_id, f"Procedure time not changed: {problem}",
                           {"procedure_at": procedure_at[:100]})
        with new_session(kit.db_url) as session, session.begin():
            before = session.execute(
                select(Enrollment.procedure_at).where(Enrollment.patient_id == patient_id,
                                                      Enrollment.status == "active")
                .order_by(Enrollment.id.desc())).scalars().first()
            try:
                result = reschedule_patient(session, patient_id, procedure_at=when)
            except LookupError:
                session.rollback()
                return invalid(request, patient_id,
                               "Procedure time not changed: this patient has no active "
                               "enrolment.")
            kit.audit(session, auth, "enrollment_change", patient_id,
                      f"procedure time {result['procedure_at']} (was "
                      f"{before.isoformat() if before else '?'}); "
                      f"{result['scheduled_checkins']} check-ins rescheduled")
        return kit.finish(RedirectResponse(f"/patients/{patient_id}#enrollment",
                                           status_code=303), auth)

    @router.post("/patients/{patient_id}/cancel-enrollment")
    def cancel(request: Request, patient_id: str, csrf_token: str = Form(""),
               confirm: str = Form("")) -> Response:
        auth, patient, refused = patient_post(request, patient_id, csrf_token)
        if refused is not None:
            return refused
        if confirm != "yes":
            return invalid(request, patient_id, "Nothing was cancelled: tick the box to confirm "
                                                "the cancellation.")
        with new_session(kit.db_url) as session, session.begin():
            try:
                result = reschedule_patient(session, patient_id, cancel=True)
            except LookupError:
                session.rollback()
                return invalid(request, patient_id,
                               "Nothing was cancelled: this patient has no active enrolment.")
            kit.audit(session, auth, "enrollment_cancel", patient_id,
                      f"{result['cancelled_checkins']} pending check-ins cancelled")
        return kit.finish(RedirectResponse(f"/patients/{patient_id}#enrollment",
                                           status_code=303), auth)

    @router.post("/patients/{patient_id}/diary-consent/withdraw")
    def withdraw_diary(request: Request, patient_id: str,
                       csrf_token: str = Form("")) -> Response:
        auth, patient, refused = patient_post(request, patient_id, csrf_token)
        if refused is not None:
            return refused
        with new_session(kit.db_url) as session, session.begin():
            if not diary.has_consent(session, patient_id, diary.CONSENT_DIARY):
                session.rollback()
                return invalid(request, patient_id, "The patient has no diary consent to "
                                                    "withdraw.")
            diary.withdraw(session, patient_id, source="dashboard")
            kit.audit(session, auth, "diary_consent_withdrawn", patient_id,
                      "pending diary prompts removed")
        return kit.finish(RedirectResponse(f"/patients/{patient_id}#enrollment",
                                           status_code=303), auth)

    @router.post("/patients/{patient_id}/care-details")
    def care(request: Request, patient_id: str, csrf_token: str = Form(""),
             pump_drug: str = Form(""), pump_refill_due: str = Form(""),
             diabetic: str = Form(""), glucose_limit_mg_dl: str = Form("")) -> Response:
        """The nurse edits the pump drug and refill date, and the diabetes details."""
        auth, patient, refused = patient_post(request, patient_id, csrf_token)
        if refused is not None:
            return refused
        try:
            refill = parse_refill_date(pump_refill_due[:20])
        except EnrollmentError as exc:
            return invalid(request, patient_id, f"Nothing was changed: {exc}.")
        details = care_details.CareDetails(
            pump_drug=pump_drug[:20] or None, pump_refill_due=refill,
            clear_refill_due=not pump_refill_due.strip(),  # a pump's form shows the date
            diabetic=diabetic == "yes", glucose_limit_mg_dl=glucose_limit_mg_dl[:20])
        with new_session(kit.db_url) as session, session.begin():
            try:
                changed = care_details.update(session, patient_id, details, kit.now())
            except (LookupError, care_details.CareDetailsError) as exc:
                session.rollback()
                return invalid(request, patient_id, f"Nothing was changed: {exc}.")
            kit.audit(session, auth, "care_details_change", patient_id,
                      ", ".join(f"{k} {v}" for k, v in changed.items()) or "no change")
        return kit.finish(RedirectResponse(f"/patients/{patient_id}#enrollment",
                                           status_code=303), auth)

    @router.post("/patients/{patient_id}/pump-change")
    def pump_change(request: Request, patient_id: str, csrf_token: str = Form(""),
                    kind: str = Form(""), next_refill: str = Form("")) -> Response:
        """The nurse records a refill or dose change done now: a safety check-in
        follows 24 h later (CLINICAL.md §1.8, §5); with a refill, the next date."""
        auth, patient, refused = patient_post(request, patient_id, csrf_token)
        if refused is not None:
            return refused
        try:
            next_due = parse_refill_date(next_refill[:20])
        except EnrollmentError as exc:
            return invalid(request, patient_id, f"Nothing was recorded: {exc}.")
        with new_session(kit.db_url) as session, session.begin():
            try:
                checkin = pumps.record_change(session, patient_id, kind[:20], kit.now(),
                                              next_due)
            except pumps.PumpError as exc:
                session.rollback()
                return invalid(request, patient_id, f"Nothing was recorded: {exc}.")
            kit.audit(session, auth, "pump_change", patient_id,
                      f"{kind}; safety check-in {checkin.key} due {checkin.due_at.isoformat()}")
        return kit.finish(RedirectResponse(f"/patients/{patient_id}#enrollment",
                                           status_code=303), auth)
