"""The diagnostic-block pain diary (CLINICAL.md §2.5, §5, §6).

After a medial branch, facet or SI-joint block the patient rates their *usual*
pain during a normally painful activity every 15 minutes for an hour, hourly to
8 hours, then daily for two weeks. Each rating is a one-question check-in
(`diary_pain`). The schedule is the `diary:` list of the procedure's protocol
(procedures.yaml, or the clinic's own); a diary prompt that falls on a regular
check-in is asked within it.

Consent (§6): more than one message a day needs the patient's prior express
consent, so diary prompts are planned only for a patient with a `diary` consent
record from enrolment; those prompts are then exempt from the clinic's daily
contact cap. Prompts outside the send window need a second, explicit `diary_night`
opt-in; without it they are not planned at all (the day's first prompts after the
window opens carry on).

The dashboard shows the summary computed here: peak % relief against the
pre-procedure pain and how long relief stayed at or above 50 % and 80 %. Numbers
only: nothing here, nor anything the bot says, judges whether a block was
"positive" or whether the patient "qualifies" for radiofrequency ablation.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath.content import CONTENT_DIR, Checkpoint, ContentError, get_content, parse_offset
from painpath.models import Answer, CheckIn, Consent, Enrollment

logger = logging.getLogger(__name__)

KEY_PREFIX = "diary-"  # check-ins that are only a diary prompt: "diary-15m", "diary-5d"
CONSENT_DIARY = "diary"  # Consent.kind: the higher-frequency diary schedule
CONSENT_NIGHT = "diary_night"  # Consent.kind: diary prompts outside the send window
OPEN_STATUSES = ("in_progress", "paused")
MAX_DIARY_DAYS = 30


class DiaryError(ValueError):
    """An invalid diary schedule; the message names the procedure and the problem."""


@lru_cache(maxsize=1)
def _config() -> dict[str, Any]:
    with open(CONTENT_DIR / "diary.yaml", encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if data.get("item") not in get_content().questions:
        raise ContentError(f"diary.yaml: unknown question {data.get('item')!r}")
    return data


def diary_item() -> str:
    """The question id of a diary rating (`diary_pain`)."""
    return str(_config()["item"])


def thresholds() -> tuple[int, ...]:
    """The relief levels (%) the summary reports a duration for."""
    return tuple(int(t) for t in _config()["relief_thresholds"])


def text(key: str, **values: Any) -> str:
    """The diary wording `key` (diary.yaml `messages:`) with its placeholders filled."""
    return str(_config()["messages"][key]).strip().format(**values)


def consent_text(kind: str) -> str:
    """What the patient agrees to with consent `kind` (shown on the enrolment form)."""
    return " ".join(str(_config()["consent"][kind]).split())


# --------------------------------------------------------------------------- schedule


def parse_diary(value: Any, pid: str, where: str = "protocol") -> tuple[Checkpoint, ...]:
    """Check a `diary:` list of offsets (e.g. [15m, 30m, 1h, 1d]); [] means no diary.

    Raises:
        DiaryError: naming `where`, the procedure and the offending entry.
    """
    if value is None:
        return ()
    if not isinstance(value, list):
        raise DiaryError(f"{where}: {pid}: 'diary' must be a list like [15m, 30m, 1h, 1d]")
    points = []
    for raw in value:
        try:
            points.append(Checkpoint(key=str(raw), offset=parse_offset(raw)))
        except ContentError as exc:
            raise DiaryError(f"{where}: {pid}: diary: {exc}") from None
    offsets = [p.offset for p in points]
    if offsets != sorted(offsets):
        raise DiaryError(f"{where}: {pid}: diary prompts must be in time order")
    if len(set(offsets)) != len(offsets):
        raise DiaryError(f"{where}: {pid}: a diary offset is listed twice")
    if any(o.total_seconds() <= 0 or o > timedelta(days=MAX_DIARY_DAYS) for o in offsets):
        raise DiaryError(f"{where}: {pid}: diary prompts must be after the procedure, "
                         f"within {MAX_DIARY_DAYS} days")
    return tuple(points)


@lru_cache(maxsize=1)
def _defaults() -> dict[str, tuple[Checkpoint, ...]]:
    with open(CONTENT_DIR / "procedures.yaml", encoding="utf-8") as fh:
        data = yaml.safe_load(fh)["procedures"]
    return {pid: parse_diary(spec.get("diary"), pid, "procedures.yaml")
            for pid, spec in data.items()}


def default_diary(pid: str) -> tuple[Checkpoint, ...]:
    """The shipped diary schedule of procedure `pid` (empty when it has none)."""
    return _defaults().get(pid, ())


def effective_diary(pid: str, clinic_spec: dict[str, Any] | None) -> tuple[Checkpoint, ...]:
    """The clinic's diary for `pid`: its protocol's `diary:` when the protocol has
    one (`[]` = no diary), else the default."""
    if clinic_spec is None or "diary" not in clinic_spec:
        return default_diary(pid)
    return parse_diary(clinic_spec["diary"], pid)


@dataclass(frozen=True)
class Planned:
    """One check-in to create: key, offset from the procedure, ordered items."""

    key: str
    offset: timedelta
    items: tuple[str, ...]

    @property
    def day(self) -> float:
        return self.offset.total_seconds() / 86400

    @property
    def diary_only(self) -> bool:
        return self.key.startswith(KEY_PREFIX)


def merge_plan(plan: Sequence[tuple[Checkpoint, list[str]]], diary: Iterable[Checkpoint],
               ask_baseline: bool, due: Callable[[timedelta], datetime],
               quiet: Callable[[datetime], bool] | None) -> list[Planned]:
    """The check-ins of a schedule with its diary prompts folded in (pure).

    Args:
        plan: the regular check-ins and their items, without the baseline question.
        diary: diary prompt offsets (empty: none planned).
        ask_baseline: ask the pre-procedure pain at the first contact, whichever it is.
        due: when an offset falls due (UTC), for the quiet-hours test.
        quiet: True for a time outside the send window; None when the patient opted in
            to diary prompts at any hour. Same-day diary-only prompts that fall in quiet
            hours are left out (a daily one is kept: the scheduler defers it to the
            morning, as it does every check-in).
    """
    content = get_content()
    item = diary_item()
    baseline = content.instruments["baseline"]
    first_always = content.instruments["always"][0]
    regular = {cp.offset: (cp, list(items)) for cp, items in plan}
    out: list[Planned] = []
    for cp, items in regular.values():
        out.append(Planned(key=cp.key, offset=cp.offset, items=tuple(items)))
    for point in diary:
        if point.offset in regular:
            cp, items = regular[point.offset]
            if item not in items:
                at = items.index(first_always) if first_always in items else len(items)
                items.insert(at, item)
            out = [Planned(key=p.key, offset=p.offset, items=tuple(items))
                   if p.offset == point.offset else p for p in out]
            continue
        if quiet is not None and point.offset < timedelta(days=1) and quiet(due(point.offset)):
            continue
        out.append(Planned(key=KEY_PREFIX + point.key, offset=point.offset, items=(item,)))
    out.sort(key=lambda p: p.offset)
    if ask_baseline and out:
        first = list(out[0].items)
        if baseline not in first:
            if first_always in first:
                at = first.index(first_always)
            elif item in first:
                at = first.index(item)
            else:
                at = len(first)
            first.insert(at, baseline)
        out[0] = Planned(key=out[0].key, offset=out[0].offset, items=tuple(first))
    return out


# --------------------------------------------------------------------------- consent


def has_consent(session: Session, patient_id: str, kind: str) -> bool:
    """Whether the patient's latest consent event of `kind` is an opt-in."""
    event = session.execute(
        select(Consent.event).where(Consent.patient_id == patient_id, Consent.kind == kind)
        .order_by(Consent.id.desc()).limit(1)).scalar_one_or_none()
    return event == "opt_in"


def record_consent(session: Session, patient_id: str, kind: str, granted: bool,
                   source: str) -> None:
    """Log a diary consent event (`kind` is CONSENT_DIARY or CONSENT_NIGHT)."""
    if kind not in (CONSENT_DIARY, CONSENT_NIGHT):
        raise ValueError(f"not a diary consent: {kind!r}")
    session.add(Consent(patient_id=patient_id, kind=kind,
                        event="opt_in" if granted else "opt_out", source=source))
    session.flush()


def consents(session: Session, patient_id: str) -> dict[str, bool]:
    """{'diary': bool, 'diary_night': bool} for the patient."""
    return {kind: has_consent(session, patient_id, kind) for kind in (CONSENT_DIARY, CONSENT_NIGHT)}


def withdraw(session: Session, patient_id: str, source: str) -> dict[str, Any]:
    """The patient no longer wants the diary: consents withdrawn, pending diary prompts
    dropped from the active enrolment (its regular check-ins stay)."""
    from painpath.protocols import schedule

    for kind in (CONSENT_DIARY, CONSENT_NIGHT):
        if has_consent(session, patient_id, kind):
            record_consent(session, patient_id, kind, False, source)
    enrollment = session.execute(
        select(Enrollment).where(Enrollment.patient_id == patient_id,
                                 Enrollment.status == "active")
        .order_by(Enrollment.id.desc())).scalars().first()
    created = schedule(session, enrollment) if enrollment is not None else []
    logger.info("patient %s: diary consent withdrawn", patient_id)
    return {"patient_id": patient_id, "scheduled_checkins": len(created)}


# --------------------------------------------------------------------------- scheduler


def is_diary_only(checkin: CheckIn) -> bool:
    """A check-in that is just a diary prompt (no safety questions)."""
    return bool(checkin.key) and checkin.key.startswith(KEY_PREFIX)


def carries_diary(checkin: CheckIn) -> bool:
    """A check-in that asks the diary question (alone or within a regular check-in)."""
    return diary_item() in (checkin.items or [])


def cap_exempt(session: Session, checkin: CheckIn) -> bool:
    """Diary prompts do not count against, nor wait for, the daily contact cap when
    the patient consented to the diary."""
    return carries_diary(checkin) and has_consent(session, checkin.patient_id, CONSENT_DIARY)


def night_allowed(session: Session, checkin: CheckIn) -> bool:
    """A diary-only prompt may go out in quiet hours with the explicit night opt-in."""
    return (is_diary_only(checkin) and has_consent(session, checkin.patient_id, CONSENT_DIARY)
            and has_consent(session, checkin.patient_id, CONSENT_NIGHT))


def expire_superseded(session: Session, now: datetime) -> list[int]:
    """Close (as missed) a diary-only prompt still open when the patient's next
    check-in is due: a rating is only worth having at its time, and an unanswered
    prompt must not hold up the next one. Returns the closed check-in ids."""
    open_rows = session.execute(
        select(CheckIn).where(CheckIn.status.in_(OPEN_STATUSES),
                              CheckIn.key.like(KEY_PREFIX + "%"))).scalars().all()
    closed = []
    for checkin in open_rows:
        newer = session.execute(
            select(CheckIn.id).where(CheckIn.patient_id == checkin.patient_id,
                                     CheckIn.status == "scheduled",
                                     CheckIn.due_at > checkin.due_at,
                                     CheckIn.due_at <= now).limit(1)).first()
        if newer is not None:
            checkin.status = "missed"
            closed.append(checkin.id)
    if closed:
        logger.info("closed %d unanswered diary prompt(s) superseded by the next", len(closed))
    return closed


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class Reading:
    at: datetime
    hours: float  # since the procedure
    pain: float
    relief: float | None  # % vs the pre-procedure pain; negative = worse


@dataclass(frozen=True)
class ReliefRun:
    """The longest stretch of consecutive readings at or above `threshold` % relief."""

    threshold: int
    start_hours: float
    end_hours: float
    readings: int
    below_at_hours: float | None  # the next reading, back under the threshold (None: none yet)

    @property
    def hours(self) -> float:
        return self.end_hours - self.start_hours


@dataclass(frozen=True)
class DiarySummary:
    baseline: float | None
    readings: tuple[Reading, ...]
    peak_relief: float | None
    peak_hours: float | None
    runs: dict[int, ReliefRun | None]

    @property
    def has_relief(self) -> bool:
        return self.peak_relief is not None


def relief_percent(baseline: float | None, pain: float) -> float | None:
    """(baseline − now) / baseline, in %; None without a baseline above 0."""
    if baseline is None or baseline <= 0:
        return None
    return round((baseline - pain) / baseline * 100, 1)


def summarize(ratings: Iterable[tuple[datetime, float]], baseline: float | None,
              procedure_at: datetime, levels: Iterable[int] | None = None) -> DiarySummary:
    """Peak relief and its duration from timed diary ratings (pure).

    The duration at a level is measured between the first and the last consecutive
    readings at or above it (a lower bound: relief may have lasted until just before
    the next reading, `below_at_hours`).
    """
    readings = tuple(sorted(
        (Reading(at=at, hours=round((at - procedure_at).total_seconds() / 3600, 2),
                 pain=float(pain), relief=relief_percent(baseline, float(pain)))
         for at, pain in ratings), key=lambda r: r.at))
    scored = [r for r in readings if r.relief is not None]
    peak = max(scored, key=lambda r: (r.relief, -r.hours), default=None)
    runs: dict[int, ReliefRun | None] = {}
    for level in (levels if levels is not None else thresholds()):
        best: ReliefRun | None = None
        i = 0
        while i < len(scored):
            if scored[i].relief is None or scored[i].relief < level:
                i += 1
                continue
            j = i
            while j + 1 < len(scored) and scored[j + 1].relief >= level:
                j += 1
            below = scored[j + 1].hours if j + 1 < len(scored) else None
            run = ReliefRun(threshold=level, start_hours=scored[i].hours,
                            end_hours=scored[j].hours, readings=j - i + 1,
                            below_at_hours=below)
            if best is None or run.hours > best.hours:
                best = run
            i = j + 1
        runs[level] = best
    return DiarySummary(baseline=baseline, readings=readings,
                        peak_relief=peak.relief if peak else None,
                        peak_hours=peak.hours if peak else None, runs=runs)


def enrollment_summary(session: Session, enrollment: Enrollment) -> DiarySummary | None:
    """The diary summary of `enrollment`, or None when it has no diary prompts."""
    item = diary_item()
    checkins = session.execute(
        select(CheckIn).where(CheckIn.enrollment_id == enrollment.id)).scalars().all()
    ids = [c.id for c in checkins if item in (c.items or [])]
    if not ids:
        return None
    rows = session.execute(
        select(Answer).where(Answer.checkin_id.in_(ids), Answer.item == item,
                             Answer.status == "answered", Answer.value.is_not(None))
    ).scalars().all()
    return summarize(((a.created_at, a.value) for a in rows), enrollment.baseline_pain,
                     enrollment.procedure_at)


def hours_label(hours: float | None) -> str:
    """1.25 → '1 h 15 min', 0.5 → '30 min', 50 → '2 d 2 h'."""
    if hours is None:
        return ""
    minutes = int(round(hours * 60))
    if minutes < 60:
        return f"{minutes} min"
    h, m = divmod(minutes, 60)
    if h < 24:
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(h, 24)
    return f"{d} d {h} h" if h else f"{d} d"
