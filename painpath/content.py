"""Clinical content loaded from the YAML files in `painpath/content/`.

The YAML is the reviewed source of truth (CLINICAL.md); this module loads it,
checks it, and answers "which questions does this check-in ask?".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from painpath.sms_text import fits

CONTENT_DIR = Path(__file__).resolve().parent / "content"
KINDS = ("nrs", "percent", "pgic", "yesno", "worse_or_same", "phq", "glucose")
PUMP_DRUGS = ("opioid", "baclofen", "other")
# Kinds whose answer is a yes/no: True ("yes", "worse") raises the question's flag.
SAFETY_KINDS = ("yesno", "worse_or_same")
FLAG_TIERS = ("emergency", "crisis", "urgent", "routine")
_OFFSET = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhd])$")


class ContentError(ValueError):
    """The YAML content is inconsistent; the message names the file and entry."""


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    label: str
    text: str
    reask: str
    flag_tier: str | None = None
    flag_reason: str | None = None
    follow_up: str | None = None  # asked next after a "yes" (questions.yaml `follow_up`)
    parent: str | None = None  # the question whose "yes" leads here (a follow-up only)
    text_first: str | None = None  # the wording the first time it is asked in an enrolment
    pump_drug: str | None = None  # asked only for a pump with this drug (or drug not known)

    @property
    def is_safety(self) -> bool:
        """A safety question: a "yes" raises `flag_tier`; an unclear one goes a tier up."""
        return self.kind in SAFETY_KINDS and self.flag_tier is not None


@dataclass(frozen=True)
class SafetyRule:
    item: str
    from_day: float | None = None
    until_day: float | None = None

    def applies(self, day: float) -> bool:
        """Whether this safety question is asked at a check-in `day` days after."""
        if self.from_day is not None and day < self.from_day:
            return False
        return self.until_day is None or day <= self.until_day


@dataclass(frozen=True)
class Checkpoint:
    key: str  # "6h", "1d"
    offset: timedelta

    @property
    def day(self) -> float:
        return self.offset.total_seconds() / 86400


@dataclass(frozen=True)
class Procedure:
    id: str
    label: str
    family: str
    checkpoints: tuple[Checkpoint, ...]
    safety: tuple[SafetyRule, ...]
    steroid: bool = False  # a steroid is given: diabetics get glucose questions (§1.0)


@dataclass(frozen=True)
class Content:
    questions: dict[str, Question]
    procedures: dict[str, Procedure]
    instruments: dict[str, Any] = field(default_factory=dict)

    def procedure(self, procedure_id: str) -> Procedure:
        """The procedure `procedure_id`, or ValueError naming the known ids."""
        try:
            return self.procedures[procedure_id]
        except KeyError:
            known = ", ".join(sorted(self.procedures))
            raise ValueError(f"unknown procedure {procedure_id!r}; known: {known}") from None

    def plan(self, procedure_id: str, ask_baseline: bool,
             procedure: Procedure | None = None) -> list[tuple[Checkpoint, list[str]]]:
        """Every check-in of the schedule (the clinic's `procedure` protocol, else the
        default) with its ordered question ids.

        Red-flag screen first, then pain now and % relief (CLINICAL.md §5); the
        pre-procedure pain at the first check-in when enrolment did not record
        it; PEG-3 at most weekly from day 7; PGIC from day 14; PHQ-4 where
        `mood_checkins` puts it.
        """
        proc = procedure or self.procedure(procedure_id)
        inst = self.instruments
        every = float(inst["peg"]["every_days"])
        last_peg: float | None = None
        mood = self.mood_checkins(proc.checkpoints)
        planned = []
        for index, checkpoint in enumerate(proc.checkpoints):
            day = checkpoint.day
            items = [rule.item for rule in proc.safety if rule.applies(day)]
            if ask_baseline and index == 0:
                items.append(inst["baseline"])
            items.extend(inst["always"])
            if day >= every and (last_peg is None or day - last_peg >= every - 0.5):
                items.extend(inst["peg"]["items"])
                last_peg = day
            if day >= float(inst["pgic"]["from_day"]):
                items.append(inst["pgic"]["item"])
            if index in mood:
                items.extend(inst["phq4"]["items"])
            planned.append((checkpoint, items))
        return planned

    def mood_checkins(self, checkpoints: tuple[Checkpoint, ...]) -> set[int]:
        """Indexes of the check-ins that ask the PHQ-4 (CLINICAL.md §5: "at baseline
        and 4 weeks"): the first, and the first from `again_from_day` — or the last
        when the schedule ends sooner, so that a short schedule is screened twice
        and a one-check-in schedule once."""
        if not checkpoints:
            return set()
        again = float(self.instruments["phq4"]["again_from_day"])
        later = [i for i, cp in enumerate(checkpoints) if i > 0 and cp.day >= again]
        return {0, later[0] if later else len(checkpoints) - 1}

    @property
    def mood(self) -> dict[str, Any]:
        """The PHQ-4 settings (procedures.yaml `instruments.phq4`)."""
        return self.instruments["phq4"]


def parse_offset(text: str) -> timedelta:
    """'4h' → 4 hours, '7d' → 7 days, '15m' → 15 minutes."""
    m = _OFFSET.match(str(text).strip())
    if not m:
        raise ContentError(f"bad offset {text!r}: use e.g. 15m, 4h or 7d")
    n, unit = float(m.group(1)), m.group(2)
    return {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]


def _load_yaml(name: str) -> dict[str, Any]:
    with open(CONTENT_DIR / name, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ContentError(f"{name}: expected a mapping at the top level")
    return data


def procedure_from_spec(pid: str, spec: dict[str, Any], where: str,
                        questions: dict[str, Question] | None = None) -> Procedure:
    """Build and check one procedure's schedule from its YAML mapping.

    Raises:
        ContentError: naming `where`, the procedure and what is wrong.
    """
    if not isinstance(spec, dict):
        raise ContentError(f"{where}: {pid}: expected a mapping")
    checkins = spec.get("checkins")
    if not isinstance(checkins, list) or not checkins:
        raise ContentError(f"{where}: {pid}: 'checkins' must be a non-empty list like [4h, 1d, 7d]")
    checkpoints = []
    for k in checkins:
        try:
            checkpoints.append(Checkpoint(key=str(k), offset=parse_offset(k)))
        except ContentError as exc:
            raise ContentError(f"{where}: {pid}: {exc}") from None
    if [c.offset for c in checkpoints] != sorted(c.offset for c in checkpoints):
        raise ContentError(f"{where}: {pid}: check-ins must be in time order")
    if len({c.key for c in checkpoints}) != len(checkpoints):
        raise ContentError(f"{where}: {pid}: a check-in offset is listed twice")
    if any(c.offset.total_seconds() <= 0 or c.offset.days > 400 for c in checkpoints):
        raise ContentError(f"{where}: {pid}: offsets must be after the procedure, within 400 days")
    safety = []
    for rule in spec.get("safety") or []:
        if not isinstance(rule, dict) or "item" not in rule or \
                set(rule) - {"item", "from_day", "until_day"}:
            raise ContentError(f"{where}: {pid}: a safety rule is {{item, from_day?, until_day?}}")
        if questions is not None and rule["item"] not in questions:
            raise ContentError(f"{where}: {pid}: unknown safety question {rule['item']!r}")
        if questions is not None and questions[rule["item"]].parent is not None:
            raise ContentError(f"{where}: {pid}: {rule['item']!r} is only asked as the follow-up "
                               f"of {questions[rule['item']].parent!r}")
        safety.append(SafetyRule(**rule))
    return Procedure(id=pid, label=str(spec.get("label") or pid), family=str(spec.get("family") or ""),
                     checkpoints=tuple(checkpoints), safety=tuple(safety),
                     steroid=spec.get("steroid") is True)


def _question(qid: str, q: dict[str, Any]) -> Question:
    """One entry of questions.yaml, checked."""
    if q.get("kind") not in KINDS:
        raise ContentError(f"questions.yaml: {qid}: kind must be one of {KINDS}")
    for key in ("text", "reask", "label"):
        if not q.get(key):
            raise ContentError(f"questions.yaml: {qid}: missing {key}")
    for key in ("text", "reask", "text_first"):
        if not fits(q.get(key) or ""):
            raise ContentError(f"questions.yaml: {qid}: {key} does not fit two SMS segments "
                               "(306 GSM-7 characters, 134 otherwise)")
    if q["kind"] in SAFETY_KINDS and q.get("flag_tier") not in FLAG_TIERS:
        raise ContentError(f"questions.yaml: {qid}: a yes/no safety question needs flag_tier")
    if q.get("follow_up") and q["kind"] not in SAFETY_KINDS:
        raise ContentError(f"questions.yaml: {qid}: only a safety question has a follow_up")
    if q.get("pump_drug") is not None and q["pump_drug"] not in PUMP_DRUGS[:2]:
        raise ContentError(f"questions.yaml: {qid}: pump_drug must be one of {PUMP_DRUGS[:2]}")
    return Question(
        id=qid, kind=q["kind"], label=q["label"], text=q["text"].strip(),
        reask=q["reask"].strip(), flag_tier=q.get("flag_tier"),
        flag_reason=q.get("flag_reason"), follow_up=q.get("follow_up"),
        text_first=(q.get("text_first") or "").strip() or None,
        pump_drug=q.get("pump_drug"),
    )


def _link_follow_ups(questions: dict[str, Question]) -> dict[str, Question]:
    """Mark each follow-up with its parent; a follow-up is a safety question with one
    parent and no follow-up of its own (one extra question at most)."""
    linked = dict(questions)
    for qid, q in questions.items():
        if q.follow_up is None:
            continue
        target = questions.get(q.follow_up)
        if target is None or not target.is_safety or target.follow_up is not None:
            raise ContentError(f"questions.yaml: {qid}: follow_up {q.follow_up!r} must be a "
                               "safety question without a follow_up of its own")
        if linked[q.follow_up].parent is not None:
            raise ContentError(f"questions.yaml: {q.follow_up}: follow-up of two questions")
        linked[q.follow_up] = replace(linked[q.follow_up], parent=qid)
    return linked


def load_content() -> Content:
    """Load and check questions.yaml and procedures.yaml."""
    qdata = _load_yaml("questions.yaml")["items"]
    questions = _link_follow_ups({qid: _question(qid, q) for qid, q in qdata.items()})
    pdata = _load_yaml("procedures.yaml")
    instruments = pdata["instruments"]
    referenced = [instruments["baseline"], *instruments["always"],
                  *instruments["peg"]["items"], instruments["pgic"]["item"],
                  *instruments["phq4"]["items"], *instruments["phq4"]["asq"],
                  *instruments["pump_events"]["after_change_items"],
                  instruments["pump_events"]["reminder_item"],
                  instruments["pump_events"]["missed_item"],
                  instruments["steroid_glucose"]["item"]]
    procedures: dict[str, Procedure] = {}
    for pid, p in pdata["procedures"].items():
        procedures[pid] = procedure_from_spec(pid, p, "procedures.yaml", questions)
        referenced.extend(rule.item for rule in procedures[pid].safety)
    unknown = sorted(set(referenced) - set(questions))
    if unknown:
        raise ContentError(f"procedures.yaml refers to unknown questions: {', '.join(unknown)}")
    return Content(questions=questions, procedures=procedures, instruments=instruments)


@lru_cache(maxsize=1)
def get_content() -> Content:
    """The process-wide content (loaded once)."""
    return load_content()


PROCEDURE_IDS = (
    "epidural_steroid_injection", "facet_injection", "medial_branch_block",
    "radiofrequency_ablation", "sacroiliac_joint_injection", "sympathetic_block",
    "peripheral_nerve_block", "trigger_point_injection", "scs_trial", "scs_implant",
    "intrathecal_pump", "prp_injection", "vertebral_augmentation",
)


@lru_cache(maxsize=1)
def get_messages() -> dict[str, str]:
    """The bot's own wording (messages.yaml), checked for SMS length."""
    data = _load_yaml("messages.yaml")
    for key, text in data.items():
        if not fits(str(text)):
            raise ContentError(f"messages.yaml: {key} does not fit two SMS segments "
                               "(306 GSM-7 characters, 134 otherwise)")
    return {k: str(v).strip() for k, v in data.items()}


def message(key: str, **values: Any) -> str:
    """The message `key` with its {placeholders} filled in."""
    return get_messages()[key].format(**values)
