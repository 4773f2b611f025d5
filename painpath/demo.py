"""The demo clinic that `make run` seeds (idempotent)."""
from __future__ import annotations

import secrets
from datetime import timedelta

from argon2 import PasswordHasher

from sqlalchemy import select

from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll, ensure_clinic
from painpath.models import Clinician, Patient, utcnow
from painpath.settings import REPO_ROOT, get_settings
from painpath.weblink import chat_url

DEMO_PATIENT_PHONE = "+14155550100"
DEMO_FALLBACK_PHONE = "+14155550188"  # the demo clinic's answering service
DEMO_OUT_OF_HOURS = "call +14155550199 and choose the on-call doctor"


def _demo_password() -> str:
    """The demo nurse's password, kept in var/ (never committed)."""
    path = REPO_ROOT / "var" / "demo_nurse_password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(12))
    return path.read_text().strip()


def seed_demo() -> dict[str, str]:
    """Create clinic `demo`, an on-call nurse with a dashboard login and a web-chat
    demo patient if missing."""
    password = _demo_password()
    with new_session() as session, session.begin():
        clinic = ensure_clinic(session, "demo", "Demo Pain Clinic", phone="+14155550199",
                               tz_name="America/Los_Angeles")
        # the fallback number is paged when nobody is on shift; urgent patients out of
        # hours are told the out-of-hours route (painpath/contact.py)
        clinic.phone = clinic.phone or "+14155550199"
        clinic.fallback_phone = clinic.fallback_phone or DEMO_FALLBACK_PHONE
        clinic.out_of_hours = clinic.out_of_hours or DEMO_OUT_OF_HOURS
        if session.execute(select(Clinician).where(Clinician.clinic_id == clinic.id)).first() is None:
            session.add(Clinician(clinic_id=clinic.id, name="Nora Nurse", phone="+14155550142",
                                  role="nurse", on_call="primary", username="demo-nurse",
                                  password_hash=PasswordHasher().hash(password)))
        patient = session.execute(select(Patient).where(
            Patient.clinic_id == clinic.id, Patient.phone == DEMO_PATIENT_PHONE)).scalar_one_or_none()
        if patient is None:
            patient = enroll(session, EnrollmentRequest(
                clinic_slug="demo", phone=DEMO_PATIENT_PHONE,
                procedure="epidural_steroid_injection",
                procedure_at=utcnow() - timedelta(days=1), name="Dana Demo", channel="web"))
        patient_id = patient.id
    return {"clinic": "demo", "patient_id": patient_id, "chat_url": chat_url(patient_id),
            "dashboard_url": f"{get_settings().web_base_url}/login",
            "nurse_login": "demo-nurse", "nurse_password": password}
