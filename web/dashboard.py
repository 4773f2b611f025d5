"""The care team's dashboard: login, the escalation queue, patient pages.

Mounted by :func:`web.app.create_app` with ``app.include_router(dashboard_router(settings))``.

Sessions are a cookie signed with ``settings.key_for("session")`` (itsdangerous) holding the
clinician id, a random session id, the issue and last-activity times and the
session's CSRF token; it is HttpOnly, SameSite=Lax and Secure when the dashboard's
base URL is https. The server enforces a 12 h absolute and a 30 min idle limit, and
a logout is recorded in the audit log so that a copy of the cookie stops working in
every web process. Polling the queue does not count as activity.

Every query is scoped to the signed-in clinician's clinic: another clinic's patient
or escalation is a 404, indistinguishable from one that does not exist. Every view
of a patient page and every acknowledge/resolve writes an :class:`AuditLog` row.
Patient text is only ever rendered through Jinja2's autoescaping (and textContent
in ``dashboard.js``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath.contact import OUT_OF_HOURS_MAX, check_out_of_hours, out_of_hours_route
from painpath.content import get_content
from painpath.programs import progress
from painpath.db import new_session
from painpath.escalation import (
    OUTCOMES,
    TransitionError,
    acknowledge,
    is_on_shift,
    on_call,
    resolve,
)
from painpath.inbound import clean_text
from painpath.models import (
    Answer,
    AuditLog,
    CheckIn,
    Clinic,
    Clinician,
    Enrollment,
    Escalation,
    EscalationEvent,
    Message,
    Patient,
    utcnow,
)
from painpath.phone import InvalidPhone, normalize
from painpath.privacy import (
    PatientNotFound,
    TrackerStoreUnavailable,
    delete_patient,
    export_patient,
    tracker_store_url,
)
from painpath.settings import Settings
from web.throttle import LoginThrottle, throttle_for  # noqa: F401  (LoginThrottle: tests)

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

SESSION_COOKIE = "pp_session"
LOGIN_COOKIE = "pp_login"  # pre-login CSRF token for the login form
SESSION_SALT = "painpath.dashboard.session"
LOGIN_SALT = "painpath.dashboard.login"
ABSOLUTE_TTL = timedelta(hours=12)
IDLE_TTL = timedelta(minutes=30)
TOUCH_EVERY = timedelta(seconds=60)  # re-sign the cookie at most this often
ROLES = ("nurse", "admin")
ROLE_LABELS = {"nurse": "Nurse", "admin": "Clinic admin"}

QUEUE_KINDS = ("red_flag", "missed_checkin", "picture", "mood_screen", "opted_out",
               "unrouted_sms")
QUEUE_STATUSES = ("open", "acknowledged")
TIER_ORDER = {"emergency": 0, "crisis": 1, "urgent": 2, "routine": 3}
TIER_LABELS = {"emergency": "Emergency", "crisis": "Crisis", "urgent": "Urgent",
               "routine": "Routine"}
KIND_LABELS = {"red_flag": "Red flag", "missed_checkin": "Missed check-in",
               "picture": "Picture sent", "mood_screen": "Mood screen (PHQ-2)",
               "opted_out": "Opted out of monitoring",
               "unrouted_sms": "Text not matched to one clinic"}
STATUS_LABELS = {"open": "Open", "acknowledged": "Acknowledged", "resolved": "Resolved",
                 "noted": "Noted"}
OUTCOME_LABELS = {"called_patient": "Called the patient",
                  "sent_to_ed": "Sent to the emergency department",
                  "scheduled_visit": "Scheduled a visit",
                  "no_action_needed": "No action needed"}
NOTED_LIMIT = 50
NOTE_MAX_CHARS = 4000
POLL_SECONDS = 5

LOGIN_FAILED = "Wrong username or password."
LOGIN_LOCKED = "Too many failed sign-ins from this computer. Please wait {seconds} seconds " \
               "and try again."

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
}

_hasher = PasswordHasher()
_dummy_hash: str | None = None


def _now() -> datetime:
    """The current time (UTC); tests move it to expire sessions."""
    return utcnow()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- #
# Sessions
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Authed:
    """The signed-in clinician for one request."""

    clinician_id: int
    name: str
    role: str
    clinic_id: int
    clinic_name: str
    clinic_tz: str
    sid: str
    issued: float
    seen: float
    csrf: str
    fp: str
    touch: bool  # the cookie should be re-signed with a new last-activity time

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)


def _fingerprint(password_hash: str | None) -> str:
    """Changes when the password does, ending that clinician's sessions."""
    return _digest(password_hash or "")


def verify_password(password_hash: str | None, password: str) -> bool:
    """Argon2 verification; an unknown user costs the same time as a wrong password."""
    global _dummy_hash
    if not password_hash:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
        password_hash = _dummy_hash
        password = password + "\x00never"
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def safe_next(value: str | None) -> str:
    """A local path to return to after login (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/queue"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return "/queue"
    return value


def _security(response: Response) -> Response:
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


# --------------------------------------------------------------------------- #
# Formatting
# --------------------------------------------------------------------------- #


def waiting_label(seconds: float) -> str:
    """'waiting 4 min', 'waiting 2 h 5 min', 'waiting 3 d 1 h'."""
    minutes = max(int(seconds // 60), 0)
    if minutes < 1:
        return "waiting <1 min"
    if minutes < 60:
        return f"waiting {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"waiting {hours} h {minutes} min" if minutes else f"waiting {hours} h"
    days, hours = divmod(hours, 24)
    return f"waiting {days} d {hours} h" if hours else f"waiting {days} d"


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def _local(dt: datetime | None, tz_name: str) -> str:
    if dt is None:
        return ""
    local = dt.astimezone(ZoneInfo(tz_name))
    return local.strftime("%b %-d, %Y %-H:%M %Z")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _answer_text(kind: str | None, answer: Answer) -> str:
    if answer.status == "pending":
        return "pending"
    if answer.status == "unclear":
        return "unclear twice (escalated one tier up)"
    if answer.status != "answered" or answer.value is None:
        return "no answer"
    if kind == "yesno":
        return "Yes" if answer.value else "No"
    if kind == "worse_or_same":
        return "Worse" if answer.value else "Same or better"
    if kind == "percent":
        return f"{_number(answer.value)}%"
    if kind == "nrs":
        return f"{_number(answer.value)} / 10"
    if kind == "pgic":
        return f"{_number(answer.value)} (1 much better – 7 much worse)"
    if kind == "glucose":
        return f"{_number(answer.value)} mg/dL"
    return _number(answer.value)


# --------------------------------------------------------------------------- #
# Read models (blocking; routes are plain `def` so FastAPI runs them in a thread)
# --------------------------------------------------------------------------- #


def _escalation_json(e: Escalation, p: Patient, names: dict[int, str],
                     now: datetime, tz: str) -> dict[str, Any]:
    waited = (now - e.created_at).total_seconds()
    return {
        "id": e.id,
        "tier": e.tier,
        "tier_label": TIER_LABELS.get(e.tier, e.tier),
        "kind": e.kind,
        "kind_label": KIND_LABELS.get(e.kind, e.kind),
        "status": e.status,
        "status_label": STATUS_LABELS.get(e.status, e.status),
        "acknowledged_by": names.get(e.acknowledged_by) if e.acknowledged_by else None,
        "reasons": [str(r) for r in (e.reasons or [])],
        "text": (e.text or "")[:280],
        "patient_id": p.id,
        "patient_name": p.name or "Unnamed patient",
        "created_at": _iso(e.created_at),
        "created_label": _local(e.created_at, tz),
        "waiting_seconds": int(waited),
        "waiting_label": waiting_label(waited),
        "url": f"/patients/{p.id}#escalation-{e.id}",
    }


def _clinician_names(session: Session, clinic_id: int) -> dict[int, str]:
    rows = session.execute(select(Clinician.id, Clinician.name)
                           .where(Clinician.clinic_id == clinic_id)).all()
    return {cid: name for cid, name in rows}


def queue_data(session: Session, clinic_id: int, tz: str, now: datetime) -> dict[str, Any]:
    """Open and acknowledged escalations and tasks of the clinic, by tier then age;
    the most recent routine "noted" flags separately."""
    names = _clinician_names(session, clinic_id)
    rows = session.execute(
        select(Escalation, Patient).join(Patient, Patient.id == Escalation.patient_id)
        .where(Patient.clinic_id == clinic_id, Escalation.kind.in_(QUEUE_KINDS),
               Escalation.status.in_(QUEUE_STATUSES))
    ).all()
    rows.sort(key=lambda r: (TIER_ORDER.get(r[0].tier, len(TIER_ORDER)), r[0].created_at,
                             r[0].id))
    noted = session.execute(
        select(Escalation, Patient).join(Patient, Patient.id == Escalation.patient_id)
        .where(Patient.clinic_id == clinic_id, Escalation.status == "noted")
        .order_by(Escalation.created_at.desc(), Escalation.id.desc()).limit(NOTED_LIMIT)
    ).all()
    return {
        "now": _iso(now),
        "items": [_escalation_json(e, p, names, now, tz) for e, p in rows],
        "noted": [_escalation_json(e, p, names, now, tz) for e, p in noted],
    }


def _scoped_patient(session: Session, clinic_id: int, patient_id: str) -> Patient | None:
    return session.execute(
        select(Patient).where(Patient.id == patient_id, Patient.clinic_id == clinic_id)
    ).scalar_one_or_none()


def _scoped_escalation(session: Session, clinic_id: int,
                       escalation_id: int) -> Escalation | None:
    return session.execute(
        select(Escalation).join(Patient, Patient.id == Escalation.patient_id)
        .where(Escalation.id == escalation_id, Patient.clinic_id == clinic_id)
    ).scalar_one_or_none()


CHART_W, CHART_H = 640, 240
CHART_PAD = {"left": 44, "right": 52, "top": 16, "bottom": 40}


def chart_data(points: list[dict[str, Any]], baseline: float | None) -> dict[str, Any]:
    """Coordinates for the inline SVG chart of pain (0–10) and relief (0–100 %) by day."""
    left, right = CHART_PAD["left"], CHART_W - CHART_PAD["right"]
    top, bottom = CHART_PAD["top"], CHART_H - CHART_PAD["bottom"]
    max_day = max([1.0, *[p["day"] for p in points]])
    step = next(s for s in (1, 2, 5, 7, 14, 30, 60, 90, 180, 365, 10_000) if max_day / s <= 8)
    max_day = step * -(-max_day // step)

    def x(day: float) -> float:
        return round(left + (right - left) * day / max_day, 1)

    def y(fraction: float) -> float:
        return round(bottom - (bottom - top) * fraction, 1)

    def series(key: str, scale: float) -> list[dict[str, Any]]:
        return [{"x": x(p["day"]), "y": y(p[key] / scale), "day": _number(p["day"]),
                 "label": _number(p[key])}
                for p in points if p.get(key) is not None]

    pain, relief = series("pain", 10), series("relief", 100)
    return {
        "width": CHART_W, "height": CHART_H, "left": left, "right": right, "top": top,
        "bottom": bottom,
        "pain": pain, "relief": relief,
        "pain_line": " ".join(f"{p['x']},{p['y']}" for p in pain),
        "relief_line": " ".join(f"{p['x']},{p['y']}" for p in relief),
        "gridlines": [{"y": y(f), "pain": _number(10 * f), "relief": f"{int(100 * f)}%"}
                      for f in (0, 0.25, 0.5, 0.75, 1)],
        "xticks": [{"x": x(d), "label": _number(d)} for d in range(0, int(max_day) + 1, step)],
        "baseline": None if baseline is None else {"y": y(baseline / 10),
                                                    "value": _number(baseline)},
        "empty": not pain and not relief,
    }


def _event_view(ev: EscalationEvent, names: dict[int, str], tz: str) -> dict[str, str | None]:
    """One line of an escalation's history: 'paged Ned Nurse', 'resolved by Nia Nurse'."""
    who = names.get(ev.clinician_id, "a clinician") if ev.clinician_id else None
    detail = ev.detail or ""
    if ev.action == "paged":
        text = f"paged {who}" if who else "paged the clinic's fallback number"
    elif ev.action == "resolved":
        text = f"resolved by {who}" if who else "resolved"
        detail = OUTCOME_LABELS.get(detail, detail)
    else:
        text = f"{ev.action.replace('_', ' ')} by {who}" if who else ev.action.replace("_", " ")
    return {"action": ev.action, "text": text, "detail": detail, "at": _local(ev.at, tz),
            "at_iso": _iso(ev.at)}


def patient_view(session: Session, auth: Authed, patient: Patient,
                 now: datetime) -> dict[str, Any]:
    """Everything the patient page shows (clinic already checked)."""
    content = get_content()
    tz = auth.clinic_tz
    names = _clinician_names(session, auth.clinic_id)
    enrollment = session.execute(
        select(Enrollment).where(Enrollment.patient_id == patient.id)
        .order_by(Enrollment.id.desc())
    ).scalars().first()
    procedure_label = None
    checkins: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    if enrollment is not None:
        proc = content.procedures.get(enrollment.procedure)
        procedure_label = proc.label if proc else enrollment.procedure
        rows = session.execute(
            select(CheckIn).where(CheckIn.enrollment_id == enrollment.id)
            .order_by(CheckIn.due_at, CheckIn.id)
        ).scalars().all()
        answers_by: dict[int, list[Answer]] = {}
        for a in session.execute(
            select(Answer).where(Answer.checkin_id.in_([c.id for c in rows]))
            .order_by(Answer.id)
        ).scalars():
            answers_by.setdefault(a.checkin_id, []).append(a)
        for c in rows:
            answers = []
            values: dict[str, float] = {}
            for a in answers_by.get(c.id, []):
                q = content.questions.get(a.item)
                answers.append({"item": a.item, "label": q.label if q else a.item,
                                "value": _answer_text(q.kind if q else None, a),
                                "raw": a.raw_text or "", "status": a.status})
                if a.status == "answered" and a.value is not None:
                    values[a.item] = a.value
            when = c.completed_at or c.started_at or c.due_at
            day = max((when - enrollment.procedure_at).total_seconds() / 86400, 0)
            if "pain_now" in values or "percent_relief" in values:
                points.append({"day": round(day, 2), "pain": values.get("pain_now"),
                               "relief": values.get("percent_relief")})
            checkins.append({"id": c.id, "key": c.key, "status": c.status,
                             "due": _local(c.due_at, tz),
                             "completed": _local(c.completed_at, tz),
                             "day": _number(round(c.day, 1)), "answers": answers})
    escalations = []
    for e in session.execute(
        select(Escalation).where(Escalation.patient_id == patient.id)
        .order_by(Escalation.id.desc())
    ).scalars():
        events = session.execute(
            select(EscalationEvent).where(EscalationEvent.escalation_id == e.id)
            .order_by(EscalationEvent.at, EscalationEvent.id)
        ).scalars().all()
        escalations.append({
            **_escalation_json(e, patient, names, now, tz),
            "text": e.text or "",
            "created": _local(e.created_at, tz),
            "acknowledged": _local(e.acknowledged_at, tz),
            "resolved": _local(e.resolved_at, tz),
            "resolved_by": names.get(e.resolved_by) if e.resolved_by else None,
            "outcome": e.outcome,
            "outcome_label": OUTCOME_LABELS.get(e.outcome or "", e.outcome),
            "note": e.resolution_note or "",
            "can_ack": e.status in ("open", "noted"),
            "can_resolve": e.status != "resolved",
            "events": [_event_view(ev, names, tz) for ev in events],
        })
    messages = []
    for m in session.execute(
        select(Message).where(Message.patient_id == patient.id).order_by(Message.id)
    ).scalars():
        if m.clinician_id is not None:
            who = f"Alert to {names.get(m.clinician_id, 'clinician')}" if m.direction == "out" \
                else f"From {names.get(m.clinician_id, 'clinician')}"
        elif m.direction == "in":
            who = "Patient"
        else:
            who = "PainPath to patient"
        messages.append({"id": m.id, "direction": m.direction, "channel": m.channel,
                         "who": who, "body": m.body, "status": m.status,
                         "error": m.error or "", "at": _local(m.created_at, tz),
                         "at_iso": _iso(m.created_at),
                         "alert": m.clinician_id is not None})
    baseline = enrollment.baseline_pain if enrollment is not None else None
    days_since = None
    if enrollment is not None:
        days_since = (now - enrollment.procedure_at).total_seconds() / 86400
    return {
        "patient": {"id": patient.id, "name": patient.name or "Unnamed patient",
                    "phone": patient.phone, "timezone": patient.timezone,
                    "channel": patient.channel, "sms_opted_out": patient.sms_opted_out},
        "procedure_label": procedure_label,
        "procedure_at": _local(enrollment.procedure_at, tz) if enrollment else "",
        "days_since": None if days_since is None else _number(round(days_since, 1)),
        "baseline": _number(baseline) if baseline is not None else "",
        "checkins": checkins,
        "chart": chart_data(points, baseline),
        "escalations": escalations,
        "messages": messages,
        "programs": programs_view(session, patient.id, tz),
    }


def programs_view(session: Session, patient_id: str, tz: str) -> dict[str, Any]:
    """Self-management progress (painpath/programs.py) with local times and numbers."""
    view = progress(session, patient_id)
    for row in view["sessions"] + view["goals"] + view["thought_records"]:
        row["at"] = _local(row["at"], tz)
    plan = view["pacing"]
    if plan is not None:
        for key in ("baseline", "quota", "cap"):
            plan[key] = "" if plan[key] is None else _number(round(plan[key], 1))
        for log in plan["log"]:
            log["at"] = _local(log["at"], tz)
            for key in ("minutes", "before", "after"):
                log[key] = "" if log[key] is None else _number(round(log[key], 1))
    return view



# --------------------------------------------------------------------------- #
# On-call roster (clinic admins)
# --------------------------------------------------------------------------- #

ON_CALL_ROLES = ("primary", "backup")
ON_CALL_LABELS = {"": "Not on call", "primary": "Primary", "backup": "Backup"}
ROSTER_FIELDS = {"name": "Name", "phone": "Mobile number", "role": "Role",
                 "on_call_role": "On-call role", "on_call_start": "On call from",
                 "on_call_end": "On call until", "active": "Deactivate",
                 "ack_minutes_emergency": "Emergency and crisis minutes",
                 "ack_minutes_urgent": "Urgent minutes", "fallback_phone": "Fallback number",
                 "clinic_phone": "Clinic phone number", "out_of_hours": "Out-of-hours instruction"}
ACK_MINUTES_RANGE = (1, 240)
NAME_MAX_CHARS = 200
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?::00)?")
ROSTER_SAVED = {
    "on_call": "On-call role and hours saved.",
    "added": "Clinician added.",
    "deactivated": "Clinician deactivated. They are no longer paged and cannot sign in.",
    "reactivated": "Clinician reactivated.",
    "settings": "Escalation settings saved.",
    "contact": "Patient contact details saved.",
}
HOURS_FORMAT = "Enter a time as HH:MM (24-hour clock), from 00:00 to 23:59."


def parse_hhmm(value: str) -> str | None:
    """'8:05' / '08:05' → '08:05'; None when it is not a time of day 00:00–23:59."""
    match = _HHMM.fullmatch(value.strip())
    if not match:
        return None
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def validate_hours(start: str, end: str) -> tuple[str | None, str | None, dict[str, str]]:
    """On-call hours from a form: both HH:MM or both empty (= always on shift)."""
    start, end = start.strip(), end.strip()
    errors: dict[str, str] = {}
    s = parse_hhmm(start) if start else None
    e = parse_hhmm(end) if end else None
    if start and s is None:
        errors["on_call_start"] = HOURS_FORMAT
    if end and e is None:
        errors["on_call_end"] = HOURS_FORMAT
    if not errors:
        if s and not e:
            errors["on_call_end"] = ("Enter the end time too, or leave both times empty "
                                     "for all day.")
        elif e and not s:
            errors["on_call_start"] = ("Enter the start time too, or leave both times empty "
                                       "for all day.")
        elif s and s == e:
            errors["on_call_end"] = ("The end must differ from the start. Leave both times "
                                     "empty for all day.")
    return s, e, errors


def validate_ack_minutes(value: str) -> int | None:
    """A whole number of minutes within ACK_MINUTES_RANGE, else None."""
    value = value.strip()
    if not re.fullmatch(r"\d{1,4}", value):
        return None
    minutes = int(value)
    low, high = ACK_MINUTES_RANGE
    return minutes if low <= minutes <= high else None


def validate_contact(clinic: Clinic, phone: str, out_of_hours: str
                     ) -> tuple[str | None, str | None, dict[str, str]]:
    """The clinic's number for patients (required) and its out-of-hours instruction
    (optional: the default applies) from the roster page's form."""
    errors: dict[str, str] = {}
    number = None
    if not phone.strip():
        errors["clinic_phone"] = ("Enter the number patients should call; urgent replies and "
                                  "the welcome text give it.")
    else:
        try:
            number = normalize(phone.strip())
        except InvalidPhone:
            errors["clinic_phone"] = ("This is not a valid phone number. Use the full number "
                                      "with area code.")
    route = None
    trial = Clinic(name=clinic.name, phone=number or clinic.phone,
                   emergency_number=clinic.emergency_number)
    try:
        route = check_out_of_hours(out_of_hours, trial)
    except ValueError as exc:
        errors["out_of_hours"] = str(exc)[:1].upper() + str(exc)[1:] + "."
    return number, route, errors


def hours_label(start: str | None, end: str | None) -> str:
    if not start or not end:
        return "All day"
    return f"{start}–{end}" + (" (overnight)" if start > end else "")


def roster_view(session: Session, clinic: Clinic, now: datetime) -> dict[str, Any]:
    """Every clinician of `clinic` and who would be paged right now."""
    rows = session.execute(
        select(Clinician).where(Clinician.clinic_id == clinic.id)
        .order_by(Clinician.active.desc(), Clinician.name, Clinician.id)
    ).scalars().all()
    clinicians = [{
        "id": c.id, "name": c.name, "phone": c.phone, "role": c.role,
        "role_label": ROLE_LABELS.get(c.role, c.role),
        "on_call": c.on_call or "", "on_call_label": ON_CALL_LABELS.get(c.on_call or "",
                                                                        c.on_call),
        "on_call_start": c.on_call_start or "", "on_call_end": c.on_call_end or "",
        "hours_label": hours_label(c.on_call_start, c.on_call_end),
        "active": bool(c.active),
        "on_shift": bool(c.active) and is_on_shift(c, now, clinic.timezone),
        "can_sign_in": bool(c.username and c.password_hash),
    } for c in rows]
    primary = on_call(session, clinic.id, "primary", now)
    backup = on_call(session, clinic.id, "backup", now)

    def who(picked: list[Clinician]) -> dict[str, Any] | None:
        if not picked:
            return None
        c = picked[0]
        return {"id": c.id, "name": c.name, "phone": c.phone, "on_call": c.on_call or ""}

    return {
        "clinic": {"name": clinic.name, "timezone": clinic.timezone,
                   "ack_minutes_emergency": clinic.ack_minutes_emergency,
                   "ack_minutes_urgent": clinic.ack_minutes_urgent,
                   "fallback_phone": clinic.fallback_phone or "",
                   "phone": clinic.phone or "", "out_of_hours": clinic.out_of_hours or "",
                   "out_of_hours_said": out_of_hours_route(clinic)},
        "out_of_hours_max": OUT_OF_HOURS_MAX,
        "local_now": _local(now, clinic.timezone),
        "primary_now": who(primary),
        "backup_now": who(backup),
        "clinicians": clinicians,
    }


# --------------------------------------------------------------------------- #
# Router
# --------------------------------------------------------------------------- #


def dashboard_router(settings: Settings) -> APIRouter:
    """The dashboard's routes for `settings` (database, secret key, base URL)."""
    router = APIRouter()
    db_url = settings.database_url
    secure = settings.web_base_url.lower().startswith("https://")
    # keys of their own (settings.key_for): nothing signed for another purpose passes
    serializer = URLSafeTimedSerializer(settings.key_for("session"), salt=SESSION_SALT)
    login_serializer = URLSafeTimedSerializer(settings.key_for("login"), salt=LOGIN_SALT)
    throttle = throttle_for(settings.redis_url)
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    router.throttle = throttle  # type: ignore[attr-defined]  # tests reach it

    def render(request: Request, name: str, context: dict[str, Any],
               status_code: int = 200) -> Response:
        return _security(templates.TemplateResponse(request, name, context,
                                                    status_code=status_code))

    def set_session(response: Response, data: dict[str, Any]) -> None:
        response.set_cookie(SESSION_COOKIE, serializer.dumps(data), httponly=True,
                            samesite="lax", secure=secure, path="/")

    def clear_session(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                               secure=secure)

    def authenticate(request: Request) -> Authed | None:
        """The clinician behind the session cookie, or None (expired, revoked, forged)."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = serializer.loads(raw, max_age=int(ABSOLUTE_TTL.total_seconds()))
            cid, sid, issued, seen, csrf, fp = (int(data["c"]), str(data["s"]),
                                                float(data["i"]), float(data["l"]),
                                                str(data["t"]), str(data["f"]))
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        now = _now().timestamp()
        if now - issued > ABSOLUTE_TTL.total_seconds() or now - seen > IDLE_TTL.total_seconds():
            return None
        with new_session(db_url) as session:
            row = session.execute(
                select(Clinician, Clinic).join(Clinic, Clinic.id == Clinician.clinic_id)
                .where(Clinician.id == cid)
            ).first()
            if row is None:
                return None
            clinician, clinic = row
            if (not clinician.active or clinician.role not in ROLES
                    or not hmac.compare_digest(fp, _fingerprint(clinician.password_hash))):
                return None
            revoked = session.execute(
                select(AuditLog.id).where(AuditLog.clinician_id == cid,
                                          AuditLog.action == "logout",
                                          AuditLog.detail == f"session {_digest(sid)}")
                .limit(1)
            ).first()
            if revoked is not None:
                return None
            return Authed(clinician_id=cid, name=clinician.name, role=clinician.role,
                          clinic_id=clinic.id, clinic_name=clinic.name,
                          clinic_tz=clinic.timezone, sid=sid, issued=issued, seen=seen,
                          csrf=csrf, fp=fp, touch=now - seen >= TOUCH_EVERY.total_seconds())

    def finish(response: Response, auth: Authed, activity: bool = True) -> Response:
        """Security headers; slide the idle timer when this request was activity."""
        if activity and auth.touch:
            set_session(response, {"c": auth.clinician_id, "s": auth.sid, "i": auth.issued,
                                   "l": _now().timestamp(), "t": auth.csrf,
                                   "f": auth.fp})
        return _security(response)

    def to_login(request: Request) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        response = RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            clear_session(response)
        return _security(response)

    def csrf_ok(auth: Authed, token: str) -> bool:
        return bool(token) and hmac.compare_digest(token.encode(), auth.csrf.encode())

    def forbidden(request: Request, auth: Authed | None) -> Response:
        return render(request, "dashboard/error.html",
                      {"auth": auth, "title": "Request refused",
                       "message": "This form has expired or did not come from this page. "
                                  "Go back, reload the page and try again."},
                      status_code=403)

    def not_found(request: Request, auth: Authed) -> Response:
        return finish(render(request, "dashboard/error.html",
                             {"auth": auth, "title": "Not found",
                              "message": "There is no such record in your clinic."},
                             status_code=404), auth)

    def audit(session: Session, auth: Authed | None, action: str,
              patient_id: str | None = None, detail: str | None = None) -> None:
        session.add(AuditLog(clinician_id=auth.clinician_id if auth else None,
                             patient_id=patient_id, action=action, detail=detail, at=_now()))

    # ------------------------------------------------------------------ login

    def login_page(request: Request, next_url: str, error: str | None = None,
                   username: str = "", status_code: int = 200) -> Response:
        token = secrets.token_urlsafe(32)
        response = render(request, "dashboard/login.html",
                          {"auth": None, "csrf": token, "next": next_url, "error": error,
                           "username": username}, status_code=status_code)
        response.set_cookie(LOGIN_COOKIE, login_serializer.dumps(token), httponly=True,
                            samesite="lax", secure=secure, path="/login", max_age=3600)
        return response

    @router.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        auth = authenticate(request)
        target = "/queue" if auth else "/login"
        return _security(RedirectResponse(target, status_code=303))

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/queue") -> Response:  # noqa: A002
        if authenticate(request) is not None:
            return _security(RedirectResponse(safe_next(next), status_code=303))
        return login_page(request, safe_next(next))

    @router.post("/login")
    def login(request: Request, username: str = Form(""), password: str = Form(""),
              csrf_token: str = Form(""), next: str = Form("/queue")) -> Response:  # noqa: A002
        next_url = safe_next(next)
        try:
            expected = login_serializer.loads(request.cookies.get(LOGIN_COOKIE, ""),
                                              max_age=3600)
        except BadSignature:
            expected = None
        if not expected or not csrf_token or not hmac.compare_digest(str(expected), csrf_token):
            return forbidden(request, None)
        ip = request.client.host if request.client else "unknown"
        username = clean_text(username).strip()[:100]  # no NUL (PostgreSQL refuses it)
        wait = throttle.wait_seconds(username, ip)
        if wait > 0:  # refused before any password is hashed
            logger.warning("dashboard login refused: too many failures from this client")
            seconds = math.ceil(wait)
            page = login_page(request, next_url, LOGIN_LOCKED.format(seconds=seconds),
                              username, status_code=429)
            page.headers["Retry-After"] = str(seconds)
            return page
        with new_session(db_url) as session, session.begin():
            clinician = session.execute(
                select(Clinician).where(Clinician.username == username)
            ).scalar_one_or_none() if username else None
            ok = verify_password(clinician.password_hash if clinician else None, password)
            ok = ok and clinician is not None and clinician.active and clinician.role in ROLES
            if not ok:
                throttle.failed(username, ip)
                session.add(AuditLog(clinician_id=clinician.id if clinician else None,
                                     action="login_failed", at=_now()))
            else:
                assert clinician is not None
                if _hasher.check_needs_rehash(clinician.password_hash):
                    clinician.password_hash = _hasher.hash(password)
                sid = secrets.token_urlsafe(24)
                session.add(AuditLog(clinician_id=clinician.id, action="login",
                                     detail=f"session {_digest(sid)}", at=_now()))
                now = _now().timestamp()
                data = {"c": clinician.id, "s": sid, "i": now, "l": now,
                        "t": secrets.token_urlsafe(32),
                        "f": _fingerprint(clinician.password_hash)}
        if not ok:
            return login_page(request, next_url, LOGIN_FAILED, username, status_code=401)
        throttle.succeeded(username, ip)
        response = RedirectResponse(next_url, status_code=303)
        set_session(response, data)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return _security(response)

    @router.post("/logout")
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        auth = authenticate(request)
        if auth is None:
            return to_login(request)
        if not csrf_ok(auth, csrf_token):
            return forbidden(request, auth)
        with new_session(db_url) as session, session.begin():
            audit(session, auth, "logout", detail=f"session {_digest(auth.sid)}")
        response = RedirectResponse("/login", status_code=303)
        clear_session(response)
        return _security(response)

    # ------------------------------------------------------------------ queue

    @router.get("/queue", response_class=HTMLResponse)
    def queue(request: Request) -> Response:
        auth = authenticate(request)
        if auth is None:
            return to_login(request)
        with new_session(db_url) as session:
            data = queue_data(session, auth.clinic_id, auth.clinic_tz, _now())
        return finish(render(request, "dashboard/queue.html",
                             {"auth": auth, "queue": data, "poll_seconds": POLL_SECONDS}),
                      auth)

    @router.get("/queue.json")
    def queue_json(request: Request) -> Response:
        auth = authenticate(request)
        if auth is None:
            return _security(JSONResponse({"error": "login required", "login": "/login"},
                                          status_code=401))
        with new_session(db_url) as session:
            data = queue_data(session, auth.clinic_id, auth.clinic_tz, _now())
        return finish(JSONResponse(data), auth, activity=False)

    # ------------------------------------------------------------ escalations

    @router.get("/escalations/{escalation_id:int}")
    def escalation_link(request: Request, escalation_id: int) -> Response:
        auth = authenticate(request)
        if auth is None:
            return to_login(request)
        with new_session(db_url) as session:
            e = _scoped_escalation(session, auth.clinic_id, escalation_id)
            if e is None:
                return not_found(request, auth)
            target = f"/patients/{e.patient_id}#escalation-{e.id}"
        return finish(RedirectResponse(target, status_code=303), auth)

    def act(request: Request, escalation_id: int, csrf_token: str, action: str,
            outcome: str = "", note: str = "") -> Response:
        auth = authenticate(request)
        if auth is None:
            return to_login(request)
        if not csrf_ok(auth, csrf_token):
            return forbidden(request, auth)
        error = None
        with new_session(db_url) as session, session.begin():
            e = _scoped_escalation(session, auth.clinic_id, escalation_id)
            if e is None:
                return not_found(request, auth)
            patient_id = e.patient_id
            try:
                if action == "acknowledge":
                    acknowledge(session, e.id, auth.clinician_id, via="dashboard", now=_now())
                    audit(session, auth, "acknowledge", patient_id, f"escalation {e.id}")
                else:
                    if outcome not in OUTCOMES:
                        raise TransitionError("Choose an outcome to resolve this escalation.")
                    resolve(session, e.id, auth.clinician_id, outcome,
                            note[:NOTE_MAX_CHARS], now=_now())
                    audit(session, auth, "resolve", patient_id,
                          f"escalation {e.id}: {outcome}")
            except TransitionError as exc:
                error = str(exc)
                session.rollback()
        if error is not None:
            return patient_page(request, patient_id, error=error, status_code=409)
        return finish(RedirectResponse(f"/patients/{patient_id}#escalation-{escalation_id}",
                                       status_code=303), auth)

    @router.post("/escalations/{escalation_id:int}/acknowledge")
    def acknowledge_route(request: Request, escalation_id: int,
                          csrf_token: str = Form("")) -> Response:
        return act(request, escalation_id, csrf_token, "acknowledge")

    @router.post("/escalations/{escalation_id:int}/resolve")
    def resolve_route(request: Request, escalation_id: int, csrf_token: str = Form(""),
                      outcome: str = Form(""), note: str = Form("")) -> Response:
        return act(request, escalation_id, csrf_token, "resolve", outcome, note)

    # --------------------------------------------------------------- patients

    def patient_page(request: Request, patient_id: str, error: str | None = None,
                     status_code: int = 200, extra: dict[str, Any] | None = None) -> Response:
        from web.route_helpers import patient_extras

        auth = authenticate(request)
        if auth is None:
            return to_login(request)
        now = _now()
        with new_session(db_url) as session, session.begin():
            patient = _scoped_patient(session, auth.clinic_id, patient_id)
            if patient is None:
                return not_found(request, auth)
            view = patient_view(session, auth, patient, now)
            view.update(patient_extras(session, auth, patient, now))  # enrolment, diary
            audit(session, auth, "view_patient", patient.id)
        return finish(render(request, "dashboard/patient.html",
                             {"auth": auth, "error": error, "outcomes": OUTCOME_LABELS,
                              "note_max": NOTE_MAX_CHARS, **view, **(extra or {})},
                             status_code=status_code), auth)

    @router.get("/patients/{patient_id}", response_class=HTMLResponse)
    def patient(request: Request, patient_id: str) -> Response:
        return patient_page(request, patient_id)

    # ------------------------------------ patient data: export, delete (admins)

    def privacy_post(request: Request, csrf_token: str) -> tuple[Authed | None, Response | None]:
        """The signed-in clinic admin posting this page's CSRF token, or the refusal."""
        auth = authenticate(request)
        if auth is None:
            return None, to_login(request)
        if auth.role != "admin":
            return auth, finish(render(request, "dashboard/error.html",
                                       {"auth": auth, "title": "Clinic admins only",
                                        "message": "Only a clinic admin can export or delete "
                                                   "a patient's data."},
                                       status_code=403), auth)
        if not csrf_ok(auth, csrf_token):
            return auth, forbidden(request, auth)
        return auth, None

    @router.post("/patients/{patient_id}/export")
    def patient_export(request: Request, patient_id: str,
                       csrf_token: str = Form("")) -> Response:
        auth, refused = privacy_post(request, csrf_token)
        if refused is not None:
            return refused
        assert auth is not None
        try:
            data = export_patient(patient_id, clinic_id=auth.clinic_id,
                                  clinician_id=auth.clinician_id, via="dashboard",
                                  database_url=db_url)
        except PatientNotFound:
            return not_found(request, auth)
        name = f"painpath-patient-{data['patient_id']}.json"
        return finish(Response(json.dumps(data, ensure_ascii=False, indent=2),
                               media_type="application/json",
                               headers={"Content-Disposition": f'attachment; filename="{name}"'}),
                      auth)

    @router.post("/patients/{patient_id}/delete")
    def patient_delete(request: Request, patient_id: str, csrf_token: str = Form(""),
                       confirm: str = Form("")) -> Response:
        auth, refused = privacy_post(request, csrf_token)
        if refused is not None:
            return refused
        assert auth is not None
        if confirm.strip() != patient_id:
            with new_session(db_url) as session:
                if _scoped_patient(session, auth.clinic_id, patient_id) is None:
                    return not_found(request, auth)
            return patient_page(request, patient_id, status_code=422,
                                error="Nothing was deleted: type the patient ID exactly as "
                                      "shown to confirm the deletion.")
        try:
            deletion = delete_patient(patient_id, clinic_id=auth.clinic_id,
                                      clinician_id=auth.clinician_id, via="dashboard",
                                      database_url=db_url,
                                      tracker_url=tracker_store_url(settings.rasa_endpoints))
        except PatientNotFound:
            return not_found(request, auth)
        except TrackerStoreUnavailable as exc:
            logger.error("patient deletion refused: %s", exc)
            return patient_page(request, patient_id, status_code=503,
                                error="Nothing was deleted: the assistant's conversation "
                                      "store did not answer. Please try again later.")
        return finish(render(request, "dashboard/patient_deleted.html",
                             {"auth": auth, "deletion": deletion}), auth)

    # ----------------------------------------------------------- admin: roster

    def admin_only(request: Request) -> tuple[Authed | None, Response | None]:
        """The signed-in clinic admin, or the response refusing everyone else."""
        auth = authenticate(request)
        if auth is None:
            return None, to_login(request)
        if auth.role != "admin":
            return auth, finish(render(request, "dashboard/error.html",
                                       {"auth": auth, "title": "Clinic admins only",
                                        "message": "Only a clinic admin can see or change "
                                                   "the on-call roster."},
                                       status_code=403), auth)
        return auth, None

    def admin_post(request: Request, csrf_token: str) -> tuple[Authed | None, Response | None]:
        """`admin_only` for a form post: also refuses a missing or wrong CSRF token."""
        auth, refused = admin_only(request)
        if refused is None and auth is not None and not csrf_ok(auth, csrf_token):
            refused = forbidden(request, auth)
        return auth, refused

    def roster_page(request: Request, auth: Authed, form: dict[str, Any] | None = None,
                    saved: str | None = None, status_code: int = 200) -> Response:
        with new_session(db_url) as session:
            clinic = session.get(Clinic, auth.clinic_id)
            view = roster_view(session, clinic, _now())
        return finish(render(request, "dashboard/roster.html",
                             {"auth": auth, "active": "roster", "form": form,
                              "saved": ROSTER_SAVED.get(saved or ""),
                              "on_call_labels": ON_CALL_LABELS, "roles": ROLE_LABELS,
                              "field_labels": ROSTER_FIELDS,
                              "ack_range": ACK_MINUTES_RANGE, "name_max": NAME_MAX_CHARS,
                              **view},
                             status_code=status_code), auth)

    def invalid(request: Request, auth: Authed, form_id: str, values: dict[str, str],
                errors: dict[str, str]) -> Response:
        """Re-render the roster with the submitted values and an error per field."""
        return roster_page(request, auth, {"id": form_id, "values": values, "errors": errors},
                           status_code=422)

    def saved_redirect(auth: Authed, what: str, anchor: str) -> Response:
        return finish(RedirectResponse(f"/admin/roster?saved={what}#{anchor}", status_code=303),
                      auth)

    def scoped_clinician(session: Session, auth: Authed, clinician_id: int) -> Clinician | None:
        return session.execute(
            select(Clinician).where(Clinician.id == clinician_id,
                                    Clinician.clinic_id == auth.clinic_id)
        ).scalar_one_or_none()

    def take_on_call_role(session: Session, auth: Authed, clinician: Clinician,
                          role: str) -> list[int]:
        """Give `clinician` the on-call `role`, clearing it from whoever held it."""
        cleared = []
        if role:
            for other in session.execute(
                select(Clinician).where(Clinician.clinic_id == auth.clinic_id,
                                        Clinician.on_call == role,
                                        Clinician.id != clinician.id)
            ).scalars():
                other.on_call = None
                cleared.append(other.id)
        clinician.on_call = role or None
        return cleared

    def on_call_errors(role: str, start: str, end: str
                       ) -> tuple[str | None, str | None, dict[str, str]]:
        s, e, errors = validate_hours(start, end)
        if role and role not in ON_CALL_ROLES:
            errors["on_call_role"] = "Choose primary, backup or not on call."
        return s, e, errors

    @router.get("/admin/roster", response_class=HTMLResponse)
    def roster(request: Request, saved: str = "") -> Response:
        auth, refused = admin_only(request)
        if refused is not None:
            return refused
        assert auth is not None
        return roster_page(request, auth, saved=saved)

    @router.post("/admin/roster/clinicians/{clinician_id:int}/on-call")
    def roster_on_call(request: Request, clinician_id: int, csrf_token: str = Form(""),
                       on_call_role: str = Form(""), on_call_start: str = Form(""),
                       on_call_end: str = Form("")) -> Response:
        auth, refused = admin_post(request, csrf_token)
        if refused is not None:
            return refused
        assert auth is not None
        role = on_call_role.strip()
        start, end, errors = on_call_errors(role, on_call_start, on_call_end)
        with new_session(db_url) as session, session.begin():
            session.get(Clinic, auth.clinic_id, with_for_update=True)  # one primary at a time
            c = scoped_clinician(session, auth, clinician_id)
            if c is None:
                return not_found(request, auth)
            if role and not c.active and "on_call_role" not in errors:
                errors["on_call_role"] = ("Reactivate this clinician before putting them "
                                          "on call.")
            if errors:
                session.rollback()
            else:
                before = (f"{c.on_call or 'none'} "
                          f"{hours_label(c.on_call_start, c.on_call_end)}")
                cleared = take_on_call_role(session, auth, c, role)
                c.on_call_start, c.on_call_end = start, end
                detail = (f"clinician {c.id} on call: {role or 'none'} "
                          f"{hours_label(start, end)} (was {before})")
                if cleared:
                    detail += f"; {role} taken from clinician " + \
                              ", ".join(str(i) for i in cleared)
                audit(session, auth, "roster_change", detail=detail)
        if errors:
            return invalid(request, auth, f"on-call-{clinician_id}",
                           {"on_call_role": role, "on_call_start": on_call_start,
                            "on_call_end": on_call_end}, errors)
        return saved_redirect(auth, "on_call", f"clinician-{clinician_id}")

    @router.post("/admin/roster/clinicians")
    def roster_add(request: Request, csrf_token: str = Form(""), name: str = Form(""),
                   phone: str = Form(""), role: str = Form("nurse"),
                   on_call_role: str = Form(""), on_call_start: str = Form(""),
                   on_call_end: str = Form("")) -> Response:
        auth, refused = admin_post(request, csrf_token)
        if refused is not None:
            return refused
        assert auth is not None
        on_role = on_call_role.strip()
        start, end, errors = on_call_errors(on_role, on_call_start, on_call_end)
        clean_name = " ".join(name.split())
        if not clean_name:
            errors["name"] = "Enter the clinician's name."
        elif len(clean_name) > NAME_MAX_CHARS:
            errors["name"] = f"Use at most {NAME_MAX_CHARS} characters."
        e164 = None
        if not phone.strip():
            errors["phone"] = "Enter a mobile number for alert texts, e.g. +1 415 555 0123."
        else:
            try:
                e164 = normalize(phone.strip())
            except InvalidPhone:
                errors["phone"] = ("This is not a valid phone number. Use the full number "
                                   "with area code, e.g. +1 415 555 0123.")
        if role not in ROLES:
            errors["role"] = "Choose nurse or clinic admin."
        if errors:
            return invalid(request, auth, "add",
                           {"name": name, "phone": phone, "role": role,
                            "on_call_role": on_role, "on_call_start": on_call_start,
                            "on_call_end": on_call_end}, errors)
        with new_session(db_url) as session, session.begin():
            session.get(Clinic, auth.clinic_id, with_for_update=True)
            c = Clinician(clinic_id=auth.clinic_id, name=clean_name, phone=e164, role=role,
                          on_call_start=start, on_call_end=end, active=True)
            session.add(c)
            session.flush()
            cleared = take_on_call_role(session, auth, c, on_role)
            new_id = c.id
            detail = (f"clinician {c.id} added: {role}, on call {on_role or 'none'} "
                      f"{hours_label(start, end)}")
            if cleared:
                detail += f"; {on_role} taken from clinician " + \
                          ", ".join(str(i) for i in cleared)
            audit(session, auth, "roster_change", detail=detail)
        return saved_redirect(auth, "added", f"clinician-{new_id}")

    def set_active(request: Request, clinician_id: int, csrf_token: str,
                   active: bool) -> Response:
        auth, refused = admin_post(request, csrf_token)
        if refused is not None:
            return refused
        assert auth is not None
        error = None
        with new_session(db_url) as session, session.begin():
            c = scoped_clinician(session, auth, clinician_id)
            if c is None:
                return not_found(request, auth)
            if not active and c.id == auth.clinician_id:
                error = "You cannot deactivate your own account; ask another clinic admin."
            elif bool(c.active) != active:
                c.active = active
                detail = f"clinician {c.id} {'reactivated' if active else 'deactivated'}"
                if not active and c.on_call:
                    detail += f" (was {c.on_call} on call)"
                    c.on_call = None  # not paged; reactivating does not silently restore it
                audit(session, auth, "roster_change", detail=detail)
        if error:
            return invalid(request, auth, f"active-{clinician_id}", {}, {"active": error})
        return saved_redirect(auth, "reactivated" if active else "deactivated",
                              f"clinician-{clinician_id}")

    @router.post("/admin/roster/clinicians/{clinician_id:int}/deactivate")
    def roster_deactivate(request: Request, clinician_id: int,
                          csrf_token: str = Form("")) -> Response:
        return set_active(request, clinician_id, csrf_token, False)

    @router.post("/admin/roster/clinicians/{clinician_id:int}/reactivate")
    def roster_reactivate(request: Request, clinician_id: int,
                          csrf_token: str = Form("")) -> Response:
        return set_active(request, clinician_id, csrf_token, True)

    @router.post("/admin/roster/settings")
    def roster_settings(request: Request, csrf_token: str = Form(""),
                        ack_minutes_emergency: str = Form(""), ack_minutes_urgent: str = Form(""),
                        fallback_phone: str = Form("")) -> Response:
        auth, refused = admin_post(request, csrf_token)
        if refused is not None:
            return refused
        assert auth is not None
        errors: dict[str, str] = {}
        low, high = ACK_MINUTES_RANGE
        emergency = validate_ack_minutes(ack_minutes_emergency)
        urgent = validate_ack_minutes(ack_minutes_urgent)
        if emergency is None:
            errors["ack_minutes_emergency"] = f"Enter a whole number of minutes, {low} to {high}."
        if urgent is None:
            errors["ack_minutes_urgent"] = f"Enter a whole number of minutes, {low} to {high}."
        fallback = None
        if fallback_phone.strip():
            try:
                fallback = normalize(fallback_phone.strip())
            except InvalidPhone:
                errors["fallback_phone"] = ("This is not a valid phone number. Use the full "
                                            "number with area code, or leave it empty.")
        if errors:
            return invalid(request, auth, "settings",
                           {"ack_minutes_emergency": ack_minutes_emergency,
                            "ack_minutes_urgent": ack_minutes_urgent,
                            "fallback_phone": fallback_phone}, errors)
        with new_session(db_url) as session, session.begin():
            clinic = session.get(Clinic, auth.clinic_id, with_for_update=True)
            before = (f"{clinic.ack_minutes_emergency}/{clinic.ack_minutes_urgent} min, "
                      f"fallback {clinic.fallback_phone or 'none'}")
            clinic.ack_minutes_emergency, clinic.ack_minutes_urgent = emergency, urgent
            clinic.fallback_phone = fallback
            audit(session, auth, "escalation_settings",
                  detail=f"ack emergency/crisis {emergency} min, urgent {urgent} min, "
                         f"fallback {fallback or 'none'} (was {before})")
        return saved_redirect(auth, "settings", "settings")

    @router.post("/admin/roster/contact")
    def roster_contact(request: Request, csrf_token: str = Form(""), clinic_phone: str = Form(""),
                       out_of_hours: str = Form("")) -> Response:
        """The clinic's number for patients and its out-of-hours instruction."""
        auth, refused = admin_post(request, csrf_token)
        if refused is not None:
            return refused
        assert auth is not None
        with new_session(db_url) as session, session.begin():
            clinic = session.get(Clinic, auth.clinic_id, with_for_update=True)
            phone, route, errors = validate_contact(clinic, clinic_phone, out_of_hours)
            if not errors:
                before = (f"phone {clinic.phone or 'none'}, "
                          f"out of hours {clinic.out_of_hours or 'default'}")
                clinic.phone, clinic.out_of_hours = phone, route
                audit(session, auth, "clinic_contact",
                      detail=f"phone {phone}, out of hours {route or 'default'} (was {before})")
        if errors:
            return invalid(request, auth, "contact", {"clinic_phone": clinic_phone,
                                                      "out_of_hours": out_of_hours}, errors)
        return saved_redirect(auth, "contact", "contact")

    # enrolment (web/enroll.py) and protocol pages (web/admin_protocols.py) share these
    from web.route_helpers import DashboardKit, mount_extensions

    mount_extensions(router, DashboardKit(
        db_url=db_url, authenticate=authenticate, render=render, finish=finish,
        to_login=to_login, csrf_ok=csrf_ok, forbidden=forbidden, not_found=not_found,
        audit=audit, patient_page=patient_page, now=lambda: _now()))
    return router
