"""Activity pacing arithmetic (CLINICAL.md §3): pure functions, no I/O.

A plan starts with a *baseline* phase: the patient reports, on several days, how
long the activity was tolerated before pain forced a stop; the baseline is their
mean (good and bad days alike). The working *quota* starts at about 80% of it and
is the same on good and bad days (time-contingent, not pain-contingent).

Progress (§3.5 [76]): at most one step a week, and only after a week at the level
completed consistently (done on at least `GOOD_DAYS_TO_STEP` days, no day short,
missed or flared). A step is ~15% of the *baseline* (never of the current level,
so steps do not compound), never more than 20% of the current quota and never
above the cap (the activity's ceiling, or a procedure restriction, which always
wins, §3.7). So no plan exceeds baseline x (1 + 0.2 x weeks since it started).
A flare ("too much") steps back to the last comfortable level rather than
stopping. Calendar days (`today`, the patient's local date) are passed in.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import date
from typing import Iterable, Literal

BASELINE_DAYS = 3          # reports averaged into the baseline
START_FRACTION = 0.8       # start ~20% below the baseline [76]
STEP_OF_BASELINE = 0.15    # progress by ~10–20% of the baseline per step [76]
MAX_STEP_OF_QUOTA = 0.20   # and never more than 20% of the current level
DAYS_PER_STEP = 7          # at most one step a week [76]
GOOD_DAYS_TO_STEP = 5      # ...after a week with the level done on at least 5 days
FLARE_FRACTION = 0.8       # a flare at the first level: back to 80% of it
MIN_QUOTA = 1.0            # minutes
COMPLETE_FRACTION = 0.9    # reporting ≥ 90% of the quota counts as done
OVERDO_FRACTION = 1.25     # > 125% of the quota: the boom–bust reminder

ReportKind = Literal["done", "minutes", "too_much", "missed"]
OutcomeKind = Literal["baseline_recorded", "plan_started", "stepped_up", "kept",
                      "at_cap", "partial", "overdid", "flare", "missed"]
# Outcomes that start a new week to be judged: a new level, or a day that was not
# completed (the week was not consistent).
WEEK_RESTARTS = frozenset({"plan_started", "stepped_up", "at_cap", "partial", "flare", "missed"})


@dataclass(frozen=True)
class PacingState:
    """Everything the arithmetic needs; stored as columns of `PacingPlan`."""

    cap: float
    baseline_reports: tuple[float, ...] = ()
    baseline: float | None = None
    quota: float | None = None
    comfortable: tuple[float, ...] = ()  # levels that went well, lowest first
    good_streak: int = 0       # days the level was done since `week_start`
    started_on: date | None = None   # the plan's first level was set
    week_start: date | None = None   # the week being judged began (new level or setback)

    @property
    def phase(self) -> str:
        return "baseline" if self.quota is None else "active"


@dataclass(frozen=True)
class Report:
    kind: ReportKind
    minutes: float | None = None


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    before: float | None
    after: float | None


def _clamp(value: float, cap: float) -> float:
    return max(min(value, cap), min(MIN_QUOTA, cap))


def start_quota(baseline: float, cap: float) -> float:
    """The first working level: ~80% of the baseline, within the cap."""
    return _clamp(round(baseline * START_FRACTION, 1), cap)


def add_baseline_report(state: PacingState, minutes: float,
                        today: date) -> tuple[PacingState, Outcome]:
    """Record one baseline day; after `BASELINE_DAYS` the plan starts `today`."""
    if state.phase != "baseline":
        raise ValueError("the baseline is already set")
    minutes = max(0.0, float(minutes))
    reports = (*state.baseline_reports, minutes)
    if len(reports) < BASELINE_DAYS:
        return replace(state, baseline_reports=reports), Outcome("baseline_recorded", None, None)
    baseline = round(sum(reports) / len(reports), 1)
    quota = start_quota(baseline, state.cap)
    new = replace(state, baseline_reports=reports, baseline=baseline, quota=quota,
                  comfortable=(), good_streak=0, started_on=today, week_start=today)
    return new, Outcome("plan_started", None, quota)


def reference(baseline: float) -> float:
    """What steps are a share of: the baseline, or the smallest level for a
    baseline below it (a patient who managed almost nothing still starts at
    `MIN_QUOTA`)."""
    return max(baseline, MIN_QUOTA)


def step_size(state: PacingState) -> float:
    """The next increment: ~15% of the baseline (not of the current level, so
    steps never compound), at most 20% of the current level."""
    assert state.quota is not None and state.baseline is not None
    step = min(STEP_OF_BASELINE * reference(state.baseline), MAX_STEP_OF_QUOTA * state.quota)
    return math.floor(step * 10 + 1e-9) / 10  # tenths of a minute, rounded down


def week_completed(state: PacingState, today: date) -> bool:
    """A full week at this level since it was set (or since the last setback),
    done on at least `GOOD_DAYS_TO_STEP` of its days."""
    if state.week_start is None:
        return False
    return ((today - state.week_start).days >= DAYS_PER_STEP
            and state.good_streak >= GOOD_DAYS_TO_STEP)


def _restart_week(state: PacingState, today: date, quota: float | None = None,
                  comfortable: tuple[float, ...] | None = None) -> PacingState:
    """A new week to judge begins `today` (a new level, or a setback)."""
    return replace(state, good_streak=0, week_start=today,
                   quota=state.quota if quota is None else quota,
                   comfortable=state.comfortable if comfortable is None else comfortable)


def _flare(state: PacingState, today: date) -> tuple[PacingState, Outcome]:
    quota = state.quota
    assert quota is not None
    lower = [level for level in state.comfortable if level < quota]
    if lower:
        back = lower[-1]
        comfortable = tuple(level for level in state.comfortable if level <= back)
    else:
        back = _clamp(round(quota * FLARE_FRACTION, 1), quota)
        comfortable = ()
    back = min(back, quota)
    return (_restart_week(state, today, quota=back, comfortable=comfortable),
            Outcome("flare", quota, back))


def record(state: PacingState, report: Report, today: date) -> tuple[PacingState, Outcome]:
    """Apply one day's report (`today`, the patient's local date) to an active plan."""
    if state.quota is None:
        raise ValueError("the plan is still in its baseline phase")
    quota = state.quota
    if state.week_start is None:  # a plan from before weeks were tracked: start one now
        state = replace(state, week_start=today, started_on=state.started_on or today)
    if report.kind == "missed":
        return _restart_week(state, today), Outcome("missed", quota, quota)
    if report.kind == "too_much":
        return _flare(state, today)
    minutes = quota if report.kind == "done" else float(report.minutes or 0.0)
    if minutes < quota * COMPLETE_FRACTION:
        return _restart_week(state, today), Outcome("partial", quota, quota)
    overdid = minutes > quota * OVERDO_FRACTION
    state = replace(state, good_streak=state.good_streak + 1)
    if not week_completed(state, today):
        return state, Outcome("overdid" if overdid else "kept", quota, quota)
    comfortable = state.comfortable if quota in state.comfortable else (*state.comfortable, quota)
    new_quota = _clamp(quota + step_size(state), state.cap)
    if new_quota <= quota:
        return _restart_week(state, today, comfortable=comfortable), Outcome("at_cap", quota, quota)
    return (_restart_week(state, today, quota=new_quota, comfortable=comfortable),
            Outcome("stepped_up", quota, new_quota))


def week_dates(history: Iterable[tuple[str, date]]) -> tuple[date | None, date | None]:
    """(started_on, week_start) from a plan's logged outcomes, oldest first: the
    day the plan started and the day the week now being judged began."""
    started_on = week_start = None
    for kind, day in history:
        if kind == "plan_started":
            started_on = day
        if kind in WEEK_RESTARTS:
            week_start = day
    return started_on, week_start


def max_level(baseline: float, started_on: date, today: date) -> float:
    """The most any plan may ask for `today`: baseline x (1 + 0.2 x weeks since
    it started) (CLINICAL.md §3.3, §3.5), the baseline floored at `MIN_QUOTA`."""
    weeks = max(0, (today - started_on).days) / DAYS_PER_STEP
    return reference(baseline) * (1 + 0.2 * weeks)


def with_cap(state: PacingState, cap: float) -> PacingState:
    """The plan under a (new) cap: a restriction lowers the level at once."""
    quota = None if state.quota is None else _clamp(state.quota, cap)
    return replace(state, cap=cap, quota=quota,
                   comfortable=tuple(level for level in state.comfortable if level <= cap))


def blocks(quota: float, block_max: float) -> list[float]:
    """Split the day's quota into equal bouts of at most `block_max` minutes, each
    followed by a rest by the clock."""
    count = max(1, math.ceil(quota / block_max - 1e-9))
    return [round(quota / count, 1)] * count


def fmt_minutes(value: float) -> str:
    """'8 minutes', '1 minute', '2.5 minutes'."""
    rounded = round(value * 2) / 2
    text = f"{rounded:g}"
    return f"{text} minute" if rounded == 1 else f"{text} minutes"


_TOO_MUCH = re.compile(r"\b(too much|too hard|flare|flared|overdid|over did|hurt(s|ing)? (more|a lot)"
                       r"|worse|too painful|set ?back)\b")
_DONE = re.compile(r"\b(done|did it|finished|completed|went (well|fine|ok|okay)|yes|yep|all of it"
                   r"|managed it)\b")
_MISSED = re.compile(r"\b(no|nope|didn'?t|did not|couldn'?t|could not|skipped|missed|not today)\b")
_HOURS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:h|hr|hrs|hour|hours)\b")
_MINUTES = re.compile(r"(\d+(?:\.\d+)?)\s*(?:m|min|mins|minute|minutes)?\b")
_WORD_TIMES = {"half an hour": 30.0, "an hour": 60.0, "one hour": 60.0, "quarter of an hour": 15.0,
               "a few minutes": 3.0, "a couple of minutes": 2.0}


def parse_minutes(text: str) -> float | None:
    """Minutes in a free-text reply: '12', '12 min', '1.5 hours', 'half an hour'."""
    low = text.lower()
    hours = _HOURS.search(low)
    if hours:
        return float(hours.group(1)) * 60
    for phrase, value in _WORD_TIMES.items():
        if phrase in low:
            return value
    found = _MINUTES.search(low)
    return float(found.group(1)) if found else None


def parse_report(text: str) -> Report | None:
    """A daily pacing reply: DONE, the minutes managed, TOO MUCH, or not done."""
    low = " ".join(text.lower().split())
    if _TOO_MUCH.search(low):
        return Report("too_much")
    minutes = parse_minutes(low)
    if minutes is not None:
        return Report("minutes", minutes)
    if _MISSED.search(low):
        return Report("missed")
    if _DONE.search(low):
        return Report("done")
    return None
