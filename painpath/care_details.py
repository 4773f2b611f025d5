"""Clinical details of an enrolment the nurse keeps up to date (dashboard): the pump's
drug and next refill date (CLINICAL.md §1.8) and the patient's diabetes and own
blood-sugar limit (§1.0). Each change reaches the check-ins not yet sent.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from painpath import glucose, pumps
from painpath.protocols import active_enrollment, schedule


class CareDetailsError(ValueError):
    """An invalid detail; `field` names it (pump_drug, pump_refill_due, glucose_limit_mg_dl)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CareDetails:
    """The details as the nurse submits them (None: leave as it is)."""

    pump_drug: str | None = None
    pump_refill_due: date | None = None
    clear_refill_due: bool = False  # no date given: clear it (pump patients only)
    diabetic: bool | None = None
    glucose_limit_mg_dl: float | str | None = None  # "" clears it (back to the default)


def update(session: Session, patient_id: str, details: CareDetails,
           now: datetime | None = None) -> dict[str, Any]:
    """Apply `details` to the active enrolment; returns what changed (for the audit log).

    Raises:
        LookupError: no active enrolment.
        CareDetailsError: an invalid value (nothing is changed).
    """
    enrollment = active_enrollment(session, patient_id)
    is_pump = enrollment.procedure == pumps.PUMP_PROCEDURE
    try:
        drug = pumps.check_drug(details.pump_drug)
    except pumps.PumpError as exc:
        raise CareDetailsError(str(exc), "pump_drug") from None
    try:
        limit = glucose.check_limit(details.glucose_limit_mg_dl)
    except glucose.GlucoseLimitError as exc:
        raise CareDetailsError(str(exc), "glucose_limit_mg_dl") from None
    if not is_pump and (drug is not None or details.pump_refill_due is not None):
        raise CareDetailsError("pump details are only for an intrathecal pump", "pump_drug")
    changed: dict[str, Any] = {}
    if drug is not None and drug != enrollment.pump_drug:
        pumps.set_drug(session, patient_id, drug)
        changed["pump_drug"] = drug
    if is_pump and (details.pump_refill_due is not None or details.clear_refill_due):
        pumps.set_refill_due(session, patient_id, details.pump_refill_due, now)
        changed["pump_refill_due"] = (details.pump_refill_due.isoformat()
                                      if details.pump_refill_due else None)
    diabetic = details.diabetic if details.diabetic is not None else enrollment.diabetic
    diabetic = bool(diabetic or limit is not None)
    if details.glucose_limit_mg_dl is not None and limit != enrollment.glucose_limit_mg_dl:
        enrollment.glucose_limit_mg_dl = limit
        changed["glucose_limit_mg_dl"] = limit
    if diabetic != enrollment.diabetic:
        enrollment.diabetic = diabetic
        changed["diabetic"] = diabetic
        schedule(session, enrollment)  # the blood-sugar questions come or go
    session.flush()
    return changed
