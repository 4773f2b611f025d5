"""PHQ-4 mood screening (CLINICAL.md §2.2) and the ASQ questions it can lead to (§2.4).

The items are ordinary check-in questions (questions.yaml), placed by the schedule
(`Content.mood_checkins`). This module scores them and says when the ASQ items
1-4 follow: a PHQ-2 of `asq_at` or more (procedures.yaml `instruments.phq4`).
A yes to an ASQ item asks ASQ item 5 through the screening path (screens.yaml
`asq5`, painpath/screening.py), never a parallel one.
"""
from __future__ import annotations

from typing import Mapping

from painpath.content import get_content
from painpath.screens import IDEATION

ASQ_RIGHT_NOW = IDEATION  # ASQ item 5, the screen asked after a yes to items 1-4


def _total(values: Mapping[str, float], items: list[str]) -> int | None:
    """The sum of `items`' answers; None unless every one was answered."""
    if any(values.get(item) is None for item in items):
        return None
    return int(sum(values[item] for item in items))


def phq2_total(values: Mapping[str, float]) -> int | None:
    """PHQ-2 score 0-6 (interest + down), None when not both answered."""
    return _total(values, get_content().mood["phq2"])


def gad2_total(values: Mapping[str, float]) -> int | None:
    """GAD-2 score 0-6 (nervous + worry), None when not both answered."""
    return _total(values, get_content().mood["gad2"])


def positive(total: int | None) -> bool:
    """A positive PHQ-2 or GAD-2 screen (≥ 3, §2.2): a routine flag, not a diagnosis."""
    return total is not None and total >= int(get_content().mood["positive_at"])


def asq_due(values: Mapping[str, float]) -> bool:
    """Whether the ASQ items follow: PHQ-2 at or above `asq_at` (DESIGN.md)."""
    total = phq2_total(values)
    return total is not None and total >= int(get_content().mood["asq_at"])


def asq_items() -> list[str]:
    """ASQ items 1-4, in order."""
    return list(get_content().mood["asq"])


def is_asq(item: str) -> bool:
    return item in get_content().mood["asq"]


def is_mood_item(item: str) -> bool:
    """A PHQ-4 or ASQ question (sent by secure chat link when the clinic asks)."""
    return item in get_content().mood["items"] or is_asq(item)
