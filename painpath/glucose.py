"""Blood sugar after a steroid, judged against the patient's own diabetes-plan limit
(CLINICAL.md §1.0).

A diabetic patient's plan says when to call their diabetes prescriber; that limit
(recorded at enrolment, editable by the nurse) decides URGENT. The fixed
thresholds of redflags.yaml `measurements.glucose` (300 / 180 mg/dL) are only the
default for a patient without one. The alert says it is for the diabetes
prescriber: the pain clinic passes it on, it does not manage the diabetes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from painpath.content import _load_yaml, get_content

MIN_LIMIT, MAX_LIMIT = 70.0, 600.0  # a plausible plan limit, mg/dL


class GlucoseLimitError(ValueError):
    """A limit outside what any diabetes plan would say."""


@dataclass(frozen=True)
class Limits:
    """Where a reading becomes URGENT (`urgent`) and worth a note (`routine`), mg/dL."""

    urgent: float
    routine: float
    own: bool  # the patient's own plan limit (False: the default)


@lru_cache(maxsize=1)
def defaults() -> dict[str, Any]:
    """redflags.yaml `measurements.glucose` (the default thresholds)."""
    return dict(_load_yaml("redflags.yaml")["measurements"]["glucose"])


def check_limit(value: Any) -> float | None:
    """`value` (mg/dL; empty: none) as a plan limit, or GlucoseLimitError."""
    if value is None or str(value).strip() == "":
        return None
    try:
        limit = float(value)
    except (TypeError, ValueError):
        raise GlucoseLimitError("glucose limit must be a number in mg/dL") from None
    if not MIN_LIMIT <= limit <= MAX_LIMIT:
        raise GlucoseLimitError(f"glucose limit must be {MIN_LIMIT:g}-{MAX_LIMIT:g} mg/dL")
    return limit


def limits(own_limit: float | None) -> Limits:
    """The thresholds for a patient: their own plan limit for URGENT (the routine
    note never above it), else the defaults."""
    d = defaults()
    if own_limit is None:
        return Limits(float(d["urgent_mg_dl"]), float(d["routine_mg_dl"]), own=False)
    return Limits(float(own_limit), min(float(d["routine_mg_dl"]), float(own_limit)), own=True)


def judge(mg_dl: float, own_limit: float | None) -> tuple[str, str] | None:
    """(tier, reason) for a reading after a steroid, or None when it is below both."""
    lim = limits(own_limit)
    which = "their diabetes-plan limit" if lim.own else "the default limit"
    if mg_dl >= lim.urgent:
        return "urgent", (f"blood sugar {mg_dl:g} mg/dL after steroid, at or above {which} "
                          f"of {lim.urgent:g}: for the diabetes prescriber")
    if mg_dl >= lim.routine:
        return "routine", (f"blood sugar {mg_dl:g} mg/dL after steroid (limit {lim.urgent:g}): "
                           "for the diabetes prescriber")
    return None


def question_item() -> str:
    """The check-in question that asks the reading."""
    return get_content().instruments["steroid_glucose"]["item"]


def question_days() -> list[float]:
    """The days after the procedure on which it is asked."""
    return [float(d) for d in get_content().instruments["steroid_glucose"]["days"]]
