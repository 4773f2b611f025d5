"""Self-management programs: the CBT exercises and activity pacing as short,
multi-turn flows (content in painpath/content/exercises.yaml).

An exercise runs as an `ExerciseSession` row: its step, its answers (`data`), its
status. The Rasa form `exercise_form` only relays the patient's replies here
(`advance`) and asks the current step (`prompt`); everything else — exits, re-asks,
what an answer means, pacing arithmetic (painpath/pacing.py), goals, follow-ups
scheduled for the next day — is plain Python, tested without a server.
"""
from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from painpath import mood, outreach, pacing
from painpath.models import (
    Answer,
    CheckIn,
    Enrollment,
    ExerciseSession,
    Goal,
    PacingLog,
    PacingPlan,
    Patient,
    ProgramSummary,
    SafetyScreen,
    ScreenStatus,
    utcnow,
)
from painpath.ownership import exercise_of
from painpath.parsing import parse_pain, parse_percent, parse_yes_no
from painpath.sms_text import fit_echoes, fits

logger = logging.getLogger(__name__)

CONTENT = Path(__file__).parent / "content" / "exercises.yaml"
MAX_FAILURES = 2               # a step re-asked once, then left empty
RESUMABLE_FOR = timedelta(days=7)
OFFER_VALID_FOR = timedelta(hours=24)
SCHEDULED_RELEVANT_FOR = outreach.EXERCISE_RELEVANT_FOR  # a pacing prompt sent later is missed
BUSY_FOR = timedelta(minutes=30)  # a conversation this recent is not interrupted
SUMMARY_EVERY = timedelta(days=7)
REVIEW_AT = time(19, 0)        # activity review: the next evening
CHECKIN_CONTEXT = timedelta(days=2)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_OK_WORDS = {"ok", "okay", "k", "ready", "go", "start", "fine", "nothing", "none", "nope",
             "no", "nah", "all good", "im fine", "i'm fine", "good", "yes go", "lets go",
             "let's go", "next", "done", "sure"}


class ProgramContentError(ValueError):
    """exercises.yaml is not valid; the message names the place."""


@dataclass(frozen=True)
class Step:
    kind: str                      # say | ask | safety
    text: str
    expect: str = "text"           # text | number | choice | minutes | pacing_report
    store: str | None = None
    low: float = 0
    high: float = 10
    options: dict[str, str] = field(default_factory=dict)
    regions: tuple[str, ...] = ()
    gentle: str | None = None
    hook: str | None = None
    only_if: dict[str, Any] | None = None
    allow_no: bool = False
    restricted: str | None = None  # said instead while lifting/bending/twisting is ruled out


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    minutes: int
    steps: tuple[Step, ...]
    done: str
    hook_on_done: str | None
    offerable: bool
    sources: tuple[int, ...]


@dataclass(frozen=True)
class Programs:
    exercises: dict[str, Exercise]
    requests: dict[str, str]
    keywords: dict[str, str]
    offers: list[dict[str, Any]]
    catastrophizing: tuple[str, ...]
    exit_words: dict[str, str]
    activities: dict[str, dict[str, Any]]
    restrictions: dict[str, dict[str, Any]]
    strain_words: tuple[str, ...]
    treated_regions: dict[str, tuple[str, ...]]
    messages: dict[str, str]


@dataclass
class Turn:
    """What one patient reply did."""

    replies: list[str] = field(default_factory=list)
    done: bool = False              # the exercise is over (completed, stopped or paused)
    status: str = "active"
    alert_message_ids: tuple[int, ...] = ()


HOOKS = ("start_pacing", "pacing_baseline", "pacing_report", "plan_activation_review",
         "review_activation", "save_goal")


def _check_len(where: str, text: str) -> None:
    """Two SMS segments as sent, with 12 characters for each placeholder (a longer
    echo of the patient's words is shortened when the message is filled)."""
    sample = _PLACEHOLDER.sub("x" * 12, text)
    if not fits(sample):
        raise ProgramContentError(f"exercises.yaml: {where}: {len(sample)} characters do not fit "
                                  "two SMS segments (306 GSM-7 characters, 134 otherwise)")


def _step(where: str, spec: dict[str, Any]) -> Step:
    if spec.get("safety_check"):
        return Step(kind="safety", text="")
    kind = "ask" if "ask" in spec else "say" if "say" in spec else None
    if kind is None:
        raise ProgramContentError(f"exercises.yaml: {where}: a step needs say, ask or safety_check")
    text = str(spec[kind]).strip()
    _check_len(where, text)
    for variant in ("gentle", "restricted"):
        if spec.get(variant):
            _check_len(f"{where} ({variant})", str(spec[variant]))
    hook = spec.get("hook")
    if hook is not None and hook not in HOOKS:
        raise ProgramContentError(f"exercises.yaml: {where}: unknown hook {hook!r}")
    expect = str(spec.get("expect", "text"))
    if expect not in ("text", "number", "choice", "minutes", "pacing_report"):
        raise ProgramContentError(f"exercises.yaml: {where}: unknown expect {expect!r}")
    low, high = (spec.get("range") or [0, 10])
    if kind == "ask" and not spec.get("store"):
        raise ProgramContentError(f"exercises.yaml: {where}: a question needs `store`")
    return Step(kind=kind, text=text, expect=expect, store=spec.get("store"), low=float(low),
                high=float(high), options={str(k): str(v) for k, v in (spec.get("options") or {}).items()},
                regions=tuple(spec.get("regions") or ()), gentle=spec.get("gentle"), hook=hook,
                only_if=spec.get("only_if"), allow_no=bool(spec.get("allow_no")),
                restricted=spec.get("restricted"))


def _check_activities(activities: dict[str, dict[str, Any]]) -> None:
    """A daily total needs its bout length; a limit per stretch, what to switch to."""
    for name, spec in activities.items():
        per = spec.get("per")
        if per not in ("day", "session"):
            raise ProgramContentError(
                f"exercises.yaml: activities.{name}: per must be day or session")
        needed = "block" if per == "day" else "change"
        if not spec.get(needed):
            raise ProgramContentError(
                f"exercises.yaml: activities.{name}: per {per} needs {needed}")


def load_programs(path: Path = CONTENT) -> Programs:
    """Load and check exercises.yaml."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    exercises = {}
    for eid, spec in data["exercises"].items():
        steps = tuple(_step(f"{eid} step {i + 1}", s) for i, s in enumerate(spec["steps"]))
        _check_len(f"{eid} done", spec["done"])
        hook_on_done = spec.get("hook_on_done")
        if hook_on_done is not None and hook_on_done not in HOOKS:
            raise ProgramContentError(f"exercises.yaml: {eid}: unknown hook {hook_on_done!r}")
        exercises[eid] = Exercise(id=eid, title=spec["title"], minutes=int(spec["minutes"]),
                                  steps=steps, done=spec["done"].strip(), hook_on_done=hook_on_done,
                                  offerable=bool(spec.get("offerable", True)),
                                  sources=tuple(spec.get("sources") or ()))
    messages = {k: str(v).strip() for k, v in data["messages"].items()}
    for key, text in messages.items():
        _check_len(f"messages.{key}", text)
    for intent, eid in data["requests"].items():
        if eid not in exercises:
            raise ProgramContentError(f"exercises.yaml: requests.{intent}: unknown exercise {eid!r}")
    for rule in data["offers"]:
        if rule["offer"] not in exercises:
            raise ProgramContentError(f"exercises.yaml: offers: unknown exercise {rule['offer']!r}")
    _check_activities(data["activities"])
    return Programs(
        exercises=exercises, requests=dict(data["requests"]),
        keywords={" ".join(k.lower().split()): v for k, v in (data.get("keywords") or {}).items()},
        offers=list(data["offers"]),
        catastrophizing=tuple(p.lower() for p in data["catastrophizing"]),
        exit_words={" ".join(k.lower().split()): v for k, v in data["exit_words"].items()},
        activities=dict(data["activities"]), restrictions=dict(data.get("restrictions") or {}),
        strain_words=tuple(str(w).lower() for w in data.get("strain_words") or ()),
        treated_regions={k: tuple(v) for k, v in (data.get("treated_regions") or {}).items()},
        messages=messages)


@lru_cache(maxsize=1)
def get_programs() -> Programs:
    return load_programs()


class _Blank(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return "–"


def fill(template: str, values: dict[str, Any]) -> str:
    """`template` with {placeholders} from `values`; unknown or unanswered (None)
    ones as '–', an empty string as nothing ("1 more day", not "1 more day–").
    The values are mostly the patient's own answers: when they would push the
    message past two SMS segments they are shortened (sms_text.fit_echoes)."""
    clean = {k: _show(v) for k, v in values.items() if v is not None}
    used = {k: clean[k] for k in _PLACEHOLDER.findall(template) if k in clean}

    def render(echoes: dict[str, str]) -> str:
        return string.Formatter().vformat(template, (), _Blank({**clean, **echoes}))

    return fit_echoes(render, used)


ECHO_MAX = 120  # characters of one answer repeated back


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if len(text) <= ECHO_MAX else text[:ECHO_MAX - 3].rstrip() + "..."


def say(key: str, **values: Any) -> str:
    return fill(get_programs().messages[key], values)


def compose(key: str, **values: str) -> str:
    """A message built from our own parts, as they are (no shortening)."""
    return string.Formatter().vformat(get_programs().messages[key], (), _Blank(values))


# --- where a patient stands ---------------------------------------------------

def _active_enrollment(session: Session, patient_id: str) -> Enrollment | None:
    return session.execute(
        select(Enrollment).where(Enrollment.patient_id == patient_id,
                                 Enrollment.status == "active")
        .order_by(Enrollment.procedure_at.desc())).scalars().first()


def _procedure_family(procedure_id: str) -> str:
    from painpath.content import get_content

    try:
        return get_content().procedure(procedure_id).family
    except ValueError:
        return ""


def treated_regions(session: Session, patient_id: str) -> list[str]:
    enrollment = _active_enrollment(session, patient_id)
    if enrollment is None:
        return []
    return list(get_programs().treated_regions.get(_procedure_family(enrollment.procedure), ()))


def restriction(session: Session, patient_id: str, now: datetime) -> dict[str, Any] | None:
    """The procedure restriction in force now, if any (CLINICAL.md §3.7)."""
    enrollment = _active_enrollment(session, patient_id)
    if enrollment is None:
        return None
    rule = get_programs().restrictions.get(enrollment.procedure)
    if rule is None:
        return None
    day = (now - enrollment.procedure_at).total_seconds() / 86400
    return rule if day < float(rule["until_day"]) else None


def activity_cap(session: Session, patient_id: str, activity: str, now: datetime) -> float:
    """The activity's ceiling in minutes under any restriction in force."""
    spec = get_programs().activities[activity]
    cap = float(spec["cap"])
    rule = restriction(session, patient_id, now)
    if rule and rule.get("cap") is not None:
        cap = min(cap, float(rule["cap"]))
    return cap


def latest_session(session: Session, patient_id: str, statuses: tuple[str, ...]) -> ExerciseSession | None:
    return session.execute(
        select(ExerciseSession).where(ExerciseSession.patient_id == patient_id,
                                      ExerciseSession.status.in_(statuses))
        .order_by(ExerciseSession.updated_at.desc(), ExerciseSession.id.desc())).scalars().first()


# --- running an exercise --------------------------------------------------------

def _set_data(row: ExerciseSession, **values: Any) -> None:
    row.data = {**(row.data or {}), **values}  # a new dict: JSON columns track assignment


def no_strain(session: Session, patient_id: str, now: datetime) -> bool:
    """Whether a procedure restriction rules out lifting, bending and twisting now."""
    rule = restriction(session, patient_id, now)
    return bool(rule and rule.get("no_strain"))


def _context(session: Session, patient_id: str, now: datetime) -> dict[str, Any]:
    """What an exercise's wording depends on: the treated regions (no tensing there)
    and whether lifting, bending and twisting are ruled out (SMART goals)."""
    return {"treated_regions": treated_regions(session, patient_id),
            "no_strain": no_strain(session, patient_id, now)}


def start(session: Session, patient_id: str, exercise_id: str, source: str = "request",
          now: datetime | None = None, data: dict[str, Any] | None = None) -> ExerciseSession:
    """Start `exercise_id` now; an exercise already running is paused (resumable)."""
    now = now or utcnow()
    exercise = get_programs().exercises[exercise_id]
    for running in session.execute(select(ExerciseSession).where(
            ExerciseSession.patient_id == patient_id,
            ExerciseSession.status == "active")).scalars():
        running.status = "paused"
    row = ExerciseSession(patient_id=patient_id, exercise=exercise.id, status="active",
                          source=source, step=0, attempts=0, created_at=now, updated_at=now,
                          data={**_context(session, patient_id, now), "intro": True,
                                **(data or {})})
    session.add(row)
    session.flush()
    _skip_inapplicable(row)
    return row


def activate(row: ExerciseSession, now: datetime | None = None) -> ExerciseSession:
    """Make an offered, scheduled or paused session the one in progress."""
    row.status = "active"
    row.attempts = 0
    row.updated_at = now or utcnow()
    _set_data(row, intro=True)
    _skip_inapplicable(row)
    return row


def resume(session: Session, patient_id: str, now: datetime | None = None) -> ExerciseSession | None:
    """The patient's most recent paused exercise (within a week), active again."""
    now = now or utcnow()
    row = latest_session(session, patient_id, ("paused",))
    if row is None or row.updated_at < now - RESUMABLE_FOR:
        return None
    for running in session.execute(select(ExerciseSession).where(
            ExerciseSession.patient_id == patient_id,
            ExerciseSession.status == "active")).scalars():
        running.status = "paused"
    return activate(row, now)


def pause_active_except(session: Session, patient_id: str, keep_id: int) -> None:
    """Pause every exercise in progress but `keep_id` (the scheduler's, starting)."""
    for running in session.execute(select(ExerciseSession).where(
            ExerciseSession.patient_id == patient_id, ExerciseSession.status == "active",
            ExerciseSession.id != keep_id)).scalars():
        running.status = "paused"


def pause_active(session: Session, patient_id: str) -> ExerciseSession | None:
    """Pause whatever exercise is in progress (a red flag, a check-in, STOP)."""
    row = latest_session(session, patient_id, ("active",))
    if row is not None:
        row.status = "paused"
    return row


def _applies(step: Step, data: dict[str, Any]) -> bool:
    if not step.only_if:
        return True
    value = data.get(step.only_if["field"])
    return value is not None and float(value) < float(step.only_if["below"])


def _skip_inapplicable(row: ExerciseSession) -> None:
    steps = get_programs().exercises[row.exercise].steps
    while row.step < len(steps) and not _applies(steps[row.step], row.data or {}):
        row.step += 1


def _step_text(row: ExerciseSession, step: Step) -> str:
    data = row.data or {}
    if step.kind == "safety":
        return say("safety_check")
    if step.regions and step.gentle and set(step.regions) & set(data.get("treated_regions") or ()):
        return fill(step.gentle, data)
    if step.restricted and data.get("no_strain"):
        return fill(step.restricted, data)
    return fill(step.text, {**_pacing_words(data), **data})


def prompt(row: ExerciseSession) -> str:
    """The current step's message (the first one starts with the exercise's title)."""
    exercise = get_programs().exercises[row.exercise]
    if row.step >= len(exercise.steps):
        return fill(exercise.done, row.data or {})
    step = exercise.steps[row.step]
    text = _step_text(row, step)
    if row.attempts:
        text = _reask(step, row.data or {})
    elif (row.data or {}).get("intro"):
        intro = say("resume", title=exercise.title) if row.step > 0 else \
            say("start_intro", title=exercise.title, minutes=exercise.minutes)
        if fits(f"{intro} {text}"):
            text = f"{intro} {text}"
    return text


def _reask(step: Step, data: dict[str, Any]) -> str:
    if step.kind == "safety":
        return say("safety_check_reask")
    return {"number": say("reask_number", low=_show(step.low), high=_show(step.high)),
            "choice": say("reask_choice"), "minutes": say("reask_minutes"),
            "pacing_report": say("reask_report")}.get(step.expect, say("reask_text"))


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", (text or "").lower()).split())


def exit_word(text: str) -> str | None:
    """'later' | 'stop' | 'skip' | 'quit' | 'stop_pacing' when the whole reply is an
    exit word."""
    return get_programs().exit_words.get(_normal(text))


def _parse(step: Step, text: str) -> tuple[bool, Any]:
    """(understood, value) for one reply to `step`."""
    if step.expect == "number":
        if step.allow_no and parse_yes_no(text) is False and not re.search(r"\d", text):
            return True, None
        parser = parse_percent if step.high > 10 else parse_pain
        value = parser(text)
        if value is None or not step.low <= float(value) <= step.high:
            return False, None
        return True, float(value)
    if step.expect == "choice":
        low = _normal(text)
        digits = re.findall(r"\d+", low)
        if len(digits) == 1 and digits[0] in step.options:
            return True, step.options[digits[0]]
        named = [v for v in step.options.values() if v.lower() in low]
        return (True, named[0]) if len(named) == 1 else (False, None)
    if step.expect == "minutes":
        minutes = pacing.parse_minutes(text)
        return (minutes is not None and 0 <= minutes <= 24 * 60), minutes
    if step.expect == "pacing_report":
        report = pacing.parse_report(text)
        return report is not None, report
    clean = " ".join((text or "").split())
    return bool(clean), clean[:500] or None


def advance(session: Session, session_id: int, text: str, now: datetime | None = None, *,
            patient_id: str | None = None) -> Turn:
    """Apply the patient's reply to the exercise in progress; with `patient_id` (the
    conversation's patient) only to that patient's exercise (NotThePatients)."""
    now = now or utcnow()
    row = exercise_of(session, session_id, patient_id) if patient_id is not None \
        else session.get(ExerciseSession, session_id)
    if row is None or row.status != "active":
        return Turn(done=True, status=row.status if row else "missing")
    exercise = get_programs().exercises[row.exercise]
    row.updated_at = now
    exit_kind = exit_word(text)
    if exit_kind:
        return _exit(session, row, exit_kind)
    if row.step >= len(exercise.steps):
        return _complete(session, row, exercise, now)
    step = exercise.steps[row.step]
    turn = Turn()
    if step.kind == "safety":
        answer = parse_yes_no(text)
        if answer is False or _normal(text) in _OK_WORDS:
            return _next(session, row, exercise, turn, now)
        return _safety_concern(session, row, text, now)
    if step.kind == "say":
        return _next(session, row, exercise, turn, now)
    understood, value = _parse(step, text)
    if not understood:
        row.attempts += 1
        if row.attempts < MAX_FAILURES:
            return turn  # the form asks again: prompt() words the re-ask
        value = None  # asked twice: leave it empty and move on
    if step.store:
        stored = value.kind if isinstance(value, pacing.Report) else value
        _set_data(row, **{step.store: stored})
    if step.hook:
        replies, finished = HOOK_FUNCTIONS[step.hook](session, row, value, now)
        turn.replies.extend(replies)
        if finished:
            row.status, row.completed_at = "completed", now
            return Turn(replies=turn.replies, done=True, status="completed")
    return _next(session, row, exercise, turn, now)


def answer_flagged(session: Session, patient_id: str, text: str,
                   now: datetime | None = None) -> Turn | None:
    """A reply that carried a routine red flag (already noted for the care team)
    still answers the step in progress; at the "anything new or worrying?" check
    the exercise waits instead. None when no exercise is in progress."""
    row = latest_session(session, patient_id, ("active",))
    if row is None:
        return None
    steps = get_programs().exercises[row.exercise].steps
    if row.step < len(steps) and steps[row.step].kind == "safety":
        row.status = "paused"
        return Turn(replies=[say("exit_later")], done=True, status="paused")
    return advance(session, row.id, text, now)


def _next(session: Session, row: ExerciseSession, exercise: Exercise, turn: Turn,
          now: datetime) -> Turn:
    row.step += 1
    row.attempts = 0
    _set_data(row, intro=False)
    _skip_inapplicable(row)
    if row.step >= len(exercise.steps):
        done = _complete(session, row, exercise, now)
        done.replies[:0] = turn.replies
        return done
    return turn


def _complete(session: Session, row: ExerciseSession, exercise: Exercise, now: datetime) -> Turn:
    replies = []
    if exercise.hook_on_done:
        extra, _ = HOOK_FUNCTIONS[exercise.hook_on_done](session, row, None, now)
        replies.extend(extra)
    replies.append(fill(exercise.done, row.data or {}))
    row.status, row.completed_at = "completed", now
    logger.info("exercise %s completed (session %s)", exercise.id, row.id)
    return Turn(replies=replies, done=True, status="completed")


def _exit(session: Session, row: ExerciseSession, kind: str) -> Turn:
    if kind == "later":
        row.status = "paused"
        return Turn(replies=[say("exit_later")], done=True, status="paused")
    row.status = "stopped"
    if kind == "stop_pacing":
        stop_pacing(session, row.patient_id)
        return Turn(replies=[say("exit_pacing")], done=True, status="stopped")
    if kind == "quit":  # a carrier opt-out word: say how to stop all texts if meant
        return Turn(replies=[say("exit_quit")], done=True, status="stopped")
    return Turn(replies=[say("exit_stop")], done=True, status="stopped")


def _safety_concern(session: Session, row: ExerciseSession, text: str, now: datetime) -> Turn:
    """Something new or worrying before an exercise: the exercise waits and the care
    team gets a routine note with the patient's words (the red-flag engine has
    already read them and found nothing more urgent)."""
    from painpath.checkins import get_settings_emergency
    from painpath.escalation import raise_flag

    raised = raise_flag(session, row.patient_id, "routine",
                        ["new or worrying symptom reported before an exercise"], text=text[:2000],
                        now=now)
    row.status = "paused"
    emergency = get_settings_emergency(session, row.patient_id)
    return Turn(replies=[say("safety_check_yes", emergency_number=emergency)], done=True,
                status="paused", alert_message_ids=raised.alert_message_ids)


# --- hooks: what some answers do --------------------------------------------------

HookResult = tuple[list[str], bool]


def _local_at(now: datetime, tz_name: str, at: time, days: int) -> datetime:
    zone = ZoneInfo(tz_name)
    day = now.astimezone(zone).date() + timedelta(days=days)
    return datetime.combine(day, at, tzinfo=zone).astimezone(timezone.utc)


def schedule(session: Session, patient_id: str, exercise_id: str, due_at: datetime,
             data: dict[str, Any] | None = None) -> ExerciseSession:
    """A session the scheduler starts at `due_at` (a pacing prompt, a review);
    replaces any not yet sent for the same exercise."""
    for old in session.execute(select(ExerciseSession).where(
            ExerciseSession.patient_id == patient_id, ExerciseSession.exercise == exercise_id,
            ExerciseSession.status == "scheduled")).scalars():
        old.status = "cancelled"
    row = ExerciseSession(patient_id=patient_id, exercise=exercise_id, status="scheduled",
                          source="schedule", step=0, attempts=0, due_at=due_at,
                          data=dict(data or {}))
    session.add(row)
    session.flush()
    return row


def active_plan(session: Session, patient_id: str) -> PacingPlan | None:
    return session.execute(
        select(PacingPlan).where(PacingPlan.patient_id == patient_id,
                                 PacingPlan.status.in_(("baseline", "active")))
        .order_by(PacingPlan.id.desc())).scalars().first()


def _local_date(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def _state(session: Session, plan: PacingPlan, zone: ZoneInfo) -> pacing.PacingState:
    """The plan as the arithmetic sees it; the days its first level and its current
    week began come from its log, in the patient's own calendar."""
    logs = session.execute(select(PacingLog.outcome, PacingLog.created_at)
                           .where(PacingLog.plan_id == plan.id).order_by(PacingLog.id)).all()
    started_on, week_start = pacing.week_dates(
        (outcome, _local_date(at, zone)) for outcome, at in logs)
    return pacing.PacingState(cap=plan.cap, baseline_reports=tuple(plan.baseline_reports or ()),
                              baseline=plan.baseline, quota=plan.quota,
                              comfortable=tuple(plan.comfortable or ()),
                              good_streak=plan.good_streak, started_on=started_on,
                              week_start=week_start)


def _store_state(plan: PacingPlan, state: pacing.PacingState) -> None:
    plan.cap, plan.baseline, plan.quota = state.cap, state.baseline, state.quota
    plan.baseline_reports = list(state.baseline_reports)
    plan.comfortable = list(state.comfortable)
    plan.good_streak = state.good_streak
    plan.status = state.phase


def per_session(activity: str) -> bool:
    """Sitting and standing: the level is a limit for one stretch, not a daily total."""
    return get_programs().activities[activity]["per"] == "session"


def plan_text(plan: PacingPlan) -> str:
    """'12 minutes of walking a day', 'sitting up to 20 minutes at a time'."""
    spec = get_programs().activities[plan.activity]
    key = "pacing_plan_session" if per_session(plan.activity) else "pacing_plan_day"
    return say(key, minutes=pacing.fmt_minutes(plan.quota or 0), activity=spec["label"])


def amount_text(activity: str) -> str:
    """What the baseline question counts: 'minutes of walking', 'minutes of sitting
    at a time'."""
    key = "pacing_amount_session" if per_session(activity) else "pacing_amount_day"
    return say(key, activity=get_programs().activities[activity]["label"])


def _pacing_words(data: dict[str, Any]) -> dict[str, str]:
    """`amount` for a pacing prompt scheduled before it was stored with one."""
    activities = get_programs().activities
    label = data.get("activity_label")
    activity = data.get("activity") or next(
        (name for name, spec in activities.items() if spec["label"] == label), None)
    return {"amount": amount_text(activity)} if activity in activities else {}


def blocks_text(plan: PacingPlan) -> str:
    """How the level is done: bouts with rests by the clock (a daily total), or what
    to switch to when a stretch of sitting or standing is up."""
    spec = get_programs().activities[plan.activity]
    if per_session(plan.activity):
        return say("pacing_session_break", change=spec["change"], rest=spec["rest"])
    bouts = pacing.blocks(plan.quota or 0, float(spec["block"]))
    if len(bouts) == 1:
        return say("pacing_one_block", bout=f"{pacing.fmt_minutes(bouts[0])} then rest by the clock")
    return say("pacing_blocks", bouts=len(bouts), bout=pacing.fmt_minutes(bouts[0]), rest=spec["rest"])


def _patient_tz(session: Session, patient_id: str) -> str:
    patient = session.get(Patient, patient_id)
    return patient.timezone if patient else "UTC"


def _schedule_pacing(session: Session, plan: PacingPlan, now: datetime) -> None:
    h, m = (int(x) for x in plan.prompt_time.split(":"))
    due = _local_at(now, _patient_tz(session, plan.patient_id), time(h, m), days=1)
    spec = get_programs().activities[plan.activity]
    if plan.status == "baseline":
        schedule(session, plan.patient_id, "pacing_baseline", due,
                 {"plan_id": plan.id, "activity": plan.activity, "activity_label": spec["label"],
                  "amount": amount_text(plan.activity)})
    else:
        schedule(session, plan.patient_id, "pacing_report", due,
                 {"plan_id": plan.id, "activity": plan.activity, "activity_label": spec["label"],
                  "plan": f"{plan_text(plan)} ({blocks_text(plan)})"})


def stop_pacing(session: Session, patient_id: str) -> None:
    for plan in session.execute(select(PacingPlan).where(
            PacingPlan.patient_id == patient_id,
            PacingPlan.status.in_(("baseline", "active")))).scalars():
        plan.status = "stopped"
    for row in session.execute(select(ExerciseSession).where(
            ExerciseSession.patient_id == patient_id,
            ExerciseSession.exercise.in_(("pacing_baseline", "pacing_report")),
            ExerciseSession.status == "scheduled")).scalars():
        row.status = "cancelled"


def _hook_start_pacing(session: Session, row: ExerciseSession, value: Any,
                       now: datetime) -> HookResult:
    programs = get_programs()
    activity = str(value or "walking")
    replies = []
    rule = restriction(session, row.patient_id, now)
    if rule and rule.get("no_strain") and programs.activities[activity].get("strain"):
        replies.append(say("pacing_restricted", activity=programs.activities[activity]["label"]))
        activity = "walking"
    stop_pacing(session, row.patient_id)
    plan = PacingPlan(patient_id=row.patient_id, activity=activity, status="baseline",
                      cap=activity_cap(session, row.patient_id, activity, now),
                      baseline_reports=[], comfortable=[], good_streak=0, created_at=now,
                      updated_at=now)
    session.add(plan)
    session.flush()
    _set_data(row, activity=activity, activity_label=programs.activities[activity]["label"],
              amount=amount_text(activity), plan_id=plan.id)
    return replies, False


def _plan_for(session: Session, row: ExerciseSession) -> PacingPlan | None:
    plan_id = (row.data or {}).get("plan_id")
    plan = session.get(PacingPlan, plan_id) if plan_id else None
    return plan if plan is not None and plan.status in ("baseline", "active") else None


def _hook_pacing_baseline(session: Session, row: ExerciseSession, value: Any,
                          now: datetime) -> HookResult:
    plan = _plan_for(session, row)
    if plan is None:
        return [say("exit_pacing")], True
    if value is None:  # no usable number twice: ask again tomorrow
        _schedule_pacing(session, plan, now)
        return [], False
    if plan.status != "baseline":
        return [], False
    zone = ZoneInfo(_patient_tz(session, plan.patient_id))
    state = pacing.with_cap(_state(session, plan, zone),
                            activity_cap(session, plan.patient_id, plan.activity, now))
    state, outcome = pacing.add_baseline_report(state, float(value), _local_date(now, zone))
    _store_state(plan, state)
    session.add(PacingLog(plan_id=plan.id, outcome=outcome.kind, minutes=float(value),
                          quota_before=outcome.before, quota_after=outcome.after, created_at=now))
    _schedule_pacing(session, plan, now)
    if outcome.kind == "plan_started":
        return [say("pacing_started", baseline=pacing.fmt_minutes(plan.baseline or 0),
                    quota=plan_text(plan), blocks=blocks_text(plan))], True
    left = pacing.BASELINE_DAYS - len(state.baseline_reports)
    return [say("pacing_baseline_more", minutes=pacing.fmt_minutes(float(value)), left=left,
                left_s="" if left == 1 else "s")], True


def _hook_pacing_report(session: Session, row: ExerciseSession, value: Any,
                        now: datetime) -> HookResult:
    plan = _plan_for(session, row)
    if plan is None or plan.quota is None:
        return [say("exit_pacing")], True
    report = value if isinstance(value, pacing.Report) else pacing.Report("missed")
    zone = ZoneInfo(_patient_tz(session, plan.patient_id))
    state = pacing.with_cap(_state(session, plan, zone),
                            activity_cap(session, plan.patient_id, plan.activity, now))
    state, outcome = pacing.record(state, report, _local_date(now, zone))
    _store_state(plan, state)
    session.add(PacingLog(plan_id=plan.id, outcome=outcome.kind, minutes=report.minutes,
                          quota_before=outcome.before, quota_after=outcome.after, created_at=now))
    _schedule_pacing(session, plan, now)
    key = {"stepped_up": "pacing_stepped_up", "kept": "pacing_kept", "at_cap": "pacing_at_cap",
           "partial": "pacing_partial", "overdid": "pacing_overdid", "flare": "pacing_flare",
           "missed": "pacing_missed"}[outcome.kind]
    return [say(key, quota=plan_text(plan), blocks=blocks_text(plan))], True


def _hook_plan_activation_review(session: Session, row: ExerciseSession, value: Any,
                                 now: datetime) -> HookResult:
    data = row.data or {}
    due = _local_at(now, _patient_tz(session, row.patient_id), REVIEW_AT, days=1)
    schedule(session, row.patient_id, "activation_review", due,
             {"activity": data.get("activity"), "when": data.get("when"),
              "predicted": data.get("predicted"), "planned_in": row.id})
    return [], False


def _hook_review_activation(session: Session, row: ExerciseSession, value: Any,
                            now: datetime) -> HookResult:
    if value is None:
        return [say("review_missed")], True
    return [], False


def _hook_save_goal(session: Session, row: ExerciseSession, value: Any, now: datetime) -> HookResult:
    data = row.data or {}
    text = {"sleep": data.get("habit"), "problem_solving": data.get("first_step"),
            "smart_goal": ", ".join(str(data[k]) for k in ("step", "when") if data.get(k))
            }.get(row.exercise)
    if not text:
        return [], False
    for old in session.execute(select(Goal).where(Goal.patient_id == row.patient_id,
                                                  Goal.kind == row.exercise,
                                                  Goal.status == "active")).scalars():
        old.status = "replaced"
    session.add(Goal(patient_id=row.patient_id, kind=row.exercise, text=str(text)[:500],
                     created_at=now))
    if row.exercise == "smart_goal" and no_strain(session, row.patient_id, now) \
            and names_strain(" ".join(str(data.get(k) or "") for k in ("aim", "step"))):
        return [say("goal_restricted")], False
    return [], False


def names_strain(text: str) -> bool:
    """Whether `text` names lifting, bending, twisting or a task that needs them."""
    words = f" {_normal(text)} "
    return any(f" {word} " in words for word in get_programs().strain_words)


HOOK_FUNCTIONS: dict[str, Callable[[Session, ExerciseSession, Any, datetime], HookResult]] = {
    "start_pacing": _hook_start_pacing,
    "pacing_baseline": _hook_pacing_baseline,
    "pacing_report": _hook_pacing_report,
    "plan_activation_review": _hook_plan_activation_review,
    "review_activation": _hook_review_activation,
    "save_goal": _hook_save_goal,
}


# --- offers after a check-in ------------------------------------------------------

def is_catastrophizing(text: str) -> bool:
    low = " ".join((text or "").lower().replace("’", "'").split())
    return any(phrase in low for phrase in get_programs().catastrophizing)


def _checkin_values(session: Session, checkin: CheckIn) -> tuple[dict[str, float], list[str]]:
    answers = session.execute(select(Answer).where(Answer.checkin_id == checkin.id)).scalars().all()
    values = {a.item: float(a.value) for a in answers if a.status == "answered" and a.value is not None}
    texts = [a.raw_text for a in answers if a.raw_text]
    return values, texts


def _matches(rule: dict[str, Any], values: dict[str, float], texts: list[str]) -> float | None:
    """The rule's score when it applies to the check-in, else None."""
    when = rule["when"]
    if "phq2_total_at_least" in when:
        total = mood.phq2_total(values)
        return total if total is not None and total >= float(when["phq2_total_at_least"]) else None
    if "gad2_total_at_least" in when:
        total = mood.gad2_total(values)
        return total if total is not None and total >= float(when["gad2_total_at_least"]) else None
    if when.get("catastrophizing"):
        return 1.0 if any(is_catastrophizing(t) for t in texts) else None
    if "peg_interference_at_least" in when:
        scores = [values[k] for k in ("peg_enjoyment", "peg_activity") if k in values]
        top = max(scores) if scores else None
        return top if top is not None and top >= float(when["peg_interference_at_least"]) else None
    if "pain_now_at_least" in when:
        pain = values.get("pain_now")
        return pain if pain is not None and pain >= float(when["pain_now_at_least"]) else None
    return None


def offer_after_checkin(session: Session, checkin: CheckIn, now: datetime | None = None) -> str | None:
    """What the finished check-in points to: an exercise offered (the patient replies
    YES), and for a positive mood screen a routine note to the care team."""
    now = now or utcnow()
    values, texts = _checkin_values(session, checkin)
    programs = get_programs()
    for rule in programs.offers:
        score = _matches(rule, values, texts)
        if score is None:
            continue
        parts = []
        if rule.get("note_to_team"):
            from painpath.escalation import raise_flag

            raise_flag(session, checkin.patient_id, "routine",
                       [fill(rule["note_to_team"], {"score": score})], checkin_id=checkin.id,
                       kind="mood_screen", now=now)
            parts.append(say("care_team_note"))
        if active_plan(session, checkin.patient_id) is not None and rule["offer"] == "pacing_setup":
            continue  # already pacing
        make_offer(session, checkin.patient_id, rule["offer"], now)
        exercise = programs.exercises[rule["offer"]]
        parts.append(say("offer", title=exercise.title.lower(), minutes=exercise.minutes))
        return " ".join(parts)
    return None


def make_offer(session: Session, patient_id: str, exercise_id: str,
               now: datetime | None = None) -> ExerciseSession:
    now = now or utcnow()
    for old in session.execute(select(ExerciseSession).where(
            ExerciseSession.patient_id == patient_id,
            ExerciseSession.status == "offered")).scalars():
        old.status = "declined"
    row = ExerciseSession(patient_id=patient_id, exercise=exercise_id, status="offered",
                          source="checkin", step=0, attempts=0, data={}, created_at=now,
                          updated_at=now)
    session.add(row)
    session.flush()
    return row


def offer_for_request(session: Session, patient_id: str, intent: str | None,
                      now: datetime | None = None) -> str | None:
    """A request that also carried a routine flag ("I can't sleep"): the care team
    has the note; the exercise asked for is offered rather than started."""
    exercise_id = get_programs().requests.get(intent or "")
    if exercise_id is None:
        return None
    make_offer(session, patient_id, exercise_id, now)
    exercise = get_programs().exercises[exercise_id]
    return say("offer", title=exercise.title.lower(), minutes=exercise.minutes)


def open_offer(session: Session, patient_id: str, now: datetime | None = None) -> ExerciseSession | None:
    now = now or utcnow()
    row = latest_session(session, patient_id, ("offered",))
    return row if row is not None and row.created_at >= now - OFFER_VALID_FOR else None


def accept_offer(session: Session, patient_id: str, now: datetime | None = None) -> ExerciseSession | None:
    """The offered exercise, started; None when nothing is on offer."""
    now = now or utcnow()
    row = open_offer(session, patient_id, now)
    if row is None:
        return None
    pause_active(session, patient_id)
    _set_data(row, **_context(session, patient_id, now))
    return activate(row, now)


def decline_offer(session: Session, patient_id: str, now: datetime | None = None) -> bool:
    row = open_offer(session, patient_id, now)
    if row is None:
        return False
    row.status = "declined"
    return True


# --- the scheduler's part -----------------------------------------------------------

def contacts_today(session: Session, patient: Patient, now: datetime) -> int:
    """Unprompted program contacts (scheduled prompts, weekly summaries) today."""
    zone = ZoneInfo(patient.timezone)
    local = now.astimezone(zone)
    day_start = datetime.combine(local.date(), time(0, 0), tzinfo=zone).astimezone(timezone.utc)
    prompts = session.execute(select(func.count()).select_from(ExerciseSession).where(
        ExerciseSession.patient_id == patient.id, ExerciseSession.sent_at >= day_start,
        ExerciseSession.sent_at <= now)).scalar_one()
    summary = session.get(ProgramSummary, patient.id)
    summaries = 1 if summary is not None and day_start <= summary.sent_at <= now else 0
    return int(prompts) + summaries


def recent_contacts(session: Session, since: datetime) -> dict[str, int]:
    """Per patient, program contacts since `since` (an upper bound for the sweep)."""
    out: dict[str, int] = {}
    for pid, count in session.execute(
            select(ExerciseSession.patient_id, func.count()).where(ExerciseSession.sent_at >= since)
            .group_by(ExerciseSession.patient_id)):
        out[pid] = out.get(pid, 0) + int(count)
    for pid in session.execute(select(ProgramSummary.patient_id).where(
            ProgramSummary.sent_at >= since)).scalars():
        out[pid] = out.get(pid, 0) + 1
    return out


IN_EXERCISE_FOR = timedelta(hours=2)  # an exercise answered this recently is "in progress"


def in_exercise(session: Session, patient_id: str, now: datetime | None = None) -> bool:
    """Whether the patient is in the middle of an exercise (one active and answered
    within IN_EXERCISE_FOR): QUIT, CANCEL or END then leave it instead of opting out."""
    now = now or utcnow()
    return session.execute(select(ExerciseSession.id).where(
        ExerciseSession.patient_id == patient_id, ExerciseSession.status == "active",
        ExerciseSession.updated_at >= now - IN_EXERCISE_FOR)).first() is not None


def _busy(session: Session, patient_id: str, now: datetime) -> bool:
    """A check-in, an exercise or a safety question under way: a scheduled prompt waits."""
    if session.execute(select(SafetyScreen.id).where(
            SafetyScreen.patient_id == patient_id,
            SafetyScreen.status == ScreenStatus.PENDING.value)).first() is not None:
        return True
    checkin = session.execute(select(CheckIn.id).where(
        CheckIn.patient_id == patient_id, CheckIn.status == "in_progress",
        CheckIn.started_at >= now - CHECKIN_CONTEXT)).first()
    if checkin is not None:
        return True
    return session.execute(select(ExerciseSession.id).where(
        ExerciseSession.patient_id == patient_id, ExerciseSession.status == "active",
        ExerciseSession.updated_at >= now - BUSY_FOR)).first() is not None


def due_sessions(now: datetime | None = None,
                 starter: Callable[[str, int], Any] | None = None) -> list[int]:
    """Start every scheduled session that is due, inside the patient's send window,
    under the clinic's daily cap, never after STOP, never while an emergency or crisis
    escalation is open; one left unsent for 12 h is missed (the next day's is
    scheduled). Returns the started session ids."""
    from painpath.db import new_session
    from painpath.scheduling import contacts_today as all_contacts
    from painpath.scheduling import in_quiet_hours

    now = now or utcnow()
    starter = starter or start_session_queued
    claimed: list[tuple[str, int]] = []
    with new_session() as session, session.begin():
        rows = session.execute(
            select(ExerciseSession, Patient).join(Patient, ExerciseSession.patient_id == Patient.id)
            .where(ExerciseSession.status == "scheduled", ExerciseSession.due_at <= now)
            .order_by(ExerciseSession.due_at)).all()
        holds = outreach.holds_for(session, [patient.id for _, patient in rows])
        for row, patient in rows:
            if row.due_at < now - SCHEDULED_RELEVANT_FOR:
                row.status = "missed"
                plan = _plan_for(session, row)
                if plan is not None:
                    _schedule_pacing(session, plan, now)
                continue
            if patient.channel == "sms" and patient.sms_opted_out:
                continue  # waits; missed after 12 h
            if outreach.held(session, patient.id, outreach.EXERCISE, row.id,
                             f"exercise prompt ({row.exercise})", now, holds):
                continue  # an emergency or crisis is open: waits (or is missed after 12 h)
            if in_quiet_hours(now, patient.timezone, patient.clinic) or _busy(session, patient.id, now):
                continue
            if all_contacts(session, patient, now) >= patient.clinic.daily_contact_cap:
                continue  # every unprompted contact of the day counts (scheduling.contacts_today)
            won = session.execute(
                update(ExerciseSession).where(ExerciseSession.id == row.id,
                                              ExerciseSession.status == "scheduled")
                .values(status="active", sent_at=now, updated_at=now, attempts=0)
                .execution_options(synchronize_session=False)).rowcount
            if won:
                claimed.append((patient.id, row.id))
    started = []
    for patient_id, session_id in claimed:
        try:
            starter(patient_id, session_id)
            started.append(session_id)
        except Exception:
            logger.exception("exercise session %s for patient %s not started", session_id, patient_id)
    return started


def start_session_queued(patient_id: str, session_id: int) -> dict[str, Any]:
    """Start a scheduled session through Rasa (`EXTERNAL_start_exercise`) and queue the
    bot's messages, keyed by the session so a repeat never sends twice."""
    from painpath.rasa_client import START_EXERCISE_INTENT
    from painpath.scheduling import trigger_and_record

    return trigger_and_record(patient_id, START_EXERCISE_INTENT,
                              {"exercise_session": str(session_id)},
                              key_prefix=f"exercise-start:{session_id}")


def weekly_summary(session: Session, patient_id: str, now: datetime,
                   since: datetime | None = None) -> str | None:
    """The patient's week (since the last summary) in one message, or None when
    there is nothing to tell."""
    since = since or now - SUMMARY_EVERY - timedelta(days=1)
    programs = get_programs()
    done = session.execute(select(ExerciseSession.exercise).where(
        ExerciseSession.patient_id == patient_id, ExerciseSession.status == "completed",
        ExerciseSession.completed_at >= since)).scalars().all()
    done = [e for e in done if programs.exercises[e].offerable]
    parts = []
    if done:
        names = sorted({programs.exercises[e].title.lower() for e in done})
        parts.append(say("weekly_exercises", count=len(done), count_s="" if len(done) == 1 else "s",
                         names=", ".join(names)))
    plan = active_plan(session, patient_id)
    if plan is not None and plan.quota is not None:
        parts.append(say("weekly_pacing", plan=plan_text(plan)))
    goal = session.execute(select(Goal).where(Goal.patient_id == patient_id, Goal.status == "active")
                           .order_by(Goal.id.desc())).scalars().first()
    if not parts and goal is None:
        return None

    def render(echo: dict[str, str]) -> str:
        goal_part = [compose("weekly_goal", goal=echo["goal"])] if goal is not None else []
        return compose("weekly_summary", parts="; ".join(parts + goal_part))

    # the goal is the patient's own words: shortened if the summary would not fit
    return fit_echoes(render, {"goal": goal.text[:80] if goal is not None else ""})


def send_weekly_summaries(now: datetime | None = None) -> list[str]:
    """Every patient active in the programs gets a summary once a week, inside the
    send window and the daily cap, never after STOP, never while an emergency or
    crisis escalation is open. Returns the patient ids."""
    from painpath.db import new_session
    from painpath.messaging import deliver, record_outbound
    from painpath.scheduling import contacts_today as all_contacts
    from painpath.scheduling import in_quiet_hours

    now = now or utcnow()
    sent, to_deliver = [], []
    with new_session() as session, session.begin():
        first_activity = dict(session.execute(
            select(ExerciseSession.patient_id, func.min(ExerciseSession.created_at))
            .where(ExerciseSession.status.in_(("completed", "active", "paused")))
            .group_by(ExerciseSession.patient_id)).all())
        for patient_id, first in first_activity.items():
            summary = session.get(ProgramSummary, patient_id)
            last = summary.sent_at if summary else first
            if last > now - SUMMARY_EVERY:
                continue
            patient = session.get(Patient, patient_id)
            if patient is None or (patient.channel == "sms" and patient.sms_opted_out):
                continue
            if in_quiet_hours(now, patient.timezone, patient.clinic):
                continue
            if outreach.held(session, patient_id, outreach.SUMMARY, "weekly", "weekly summary",
                             now):
                continue  # an emergency or crisis is open: the next run after it sends it
            if all_contacts(session, patient, now) >= patient.clinic.daily_contact_cap:
                continue
            text = weekly_summary(session, patient_id, now, since=summary.sent_at if summary else first)
            if summary is None:
                summary = ProgramSummary(patient_id=patient_id, sent_at=now)
                session.add(summary)
            summary.sent_at = now
            if text is None:
                continue
            msg = record_outbound(session, to=patient.phone if patient.channel == "sms" else "web",
                                  body=text, channel=patient.channel, patient_id=patient_id,
                                  idempotency_key=f"weekly:{patient_id}:{now.date().isoformat()}",
                                  purpose=outreach.OUTREACH)
            sent.append(patient_id)
            if msg is not None and patient.channel == "sms":
                to_deliver.append(msg.id)
            elif msg is not None:
                msg.from_, msg.status = "bot", "delivered"
    for message_id in to_deliver:
        deliver(message_id)
    return sent


# --- the dashboard's view ---------------------------------------------------------

def progress(session: Session, patient_id: str) -> dict[str, Any]:
    """Completions, the pacing plan and its history, goals and saved thought records."""
    programs = get_programs()
    rows = session.execute(select(ExerciseSession).where(
        ExerciseSession.patient_id == patient_id,
        ExerciseSession.status.in_(("completed", "paused", "stopped", "active")))
        .order_by(ExerciseSession.id.desc())).scalars().all()
    completions: dict[str, int] = {}
    for r in rows:
        if r.status == "completed" and programs.exercises[r.exercise].offerable:
            completions[programs.exercises[r.exercise].title] = \
                completions.get(programs.exercises[r.exercise].title, 0) + 1
    plan = session.execute(select(PacingPlan).where(PacingPlan.patient_id == patient_id)
                           .order_by(PacingPlan.id.desc())).scalars().first()
    pacing_view = None
    if plan is not None:
        pacing_view = {
            "activity": programs.activities[plan.activity]["label"], "status": plan.status,
            "baseline": plan.baseline, "quota": plan.quota, "cap": plan.cap,
            "per": "at a time" if per_session(plan.activity) else "a day",
            "baseline_reports": list(plan.baseline_reports or ()),
            "log": [{"at": log.created_at, "outcome": log.outcome, "minutes": log.minutes,
                     "before": log.quota_before, "after": log.quota_after} for log in plan.logs][-14:],
        }
    goals = session.execute(select(Goal).where(Goal.patient_id == patient_id)
                            .order_by(Goal.id.desc())).scalars().all()
    thoughts = [{"at": r.completed_at or r.updated_at, **{k: (r.data or {}).get(k) for k in (
        "situation", "thought", "feeling_before", "evidence_for", "evidence_against",
        "balanced", "feeling_after")}} for r in rows if r.exercise == "thought_record"
        and (r.data or {}).get("thought")]
    return {
        "completions": completions,
        "sessions": [{"exercise": programs.exercises[r.exercise].title, "status": r.status,
                      "at": r.completed_at or r.updated_at, "source": r.source}
                     for r in rows if programs.exercises[r.exercise].offerable][:20],
        "pacing": pacing_view,
        "goals": [{"kind": g.kind, "text": g.text, "status": g.status, "at": g.created_at}
                  for g in goals][:10],
        "thought_records": thoughts[:10],
    }
