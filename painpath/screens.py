"""Screens: the one direct safety question asked when a message may be a red flag.

Content lives in ``painpath/content/screens.yaml``. This module only reads it:
which screen fits a message, its question in the patient's language, and the tier
that a YES, an unclear answer or silence escalates to.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import yaml

SCREENS_PATH = Path(__file__).resolve().parent / "content" / "screens.yaml"
IDEATION = "asq5"
GENERAL = "general"
NURSE_CALL = "nurse_call"
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Screen:
    id: str
    tier: str
    question: dict[str, str]
    cues: frozenset[str]

    def text(self, language: str = "en") -> str:
        return self.question.get(language) or self.question["en"]


@dataclass(frozen=True)
class ScreenBook:
    screens: dict[str, Screen]
    timeout_minutes: int
    unreadable_reason: str
    unreadable_screen: str

    def pick_emergency(self, normalised_text: str) -> str:
        """The targeted screen whose cue appears first in screens.yaml order."""
        words = set(_WORD.findall(normalised_text))
        for sid, screen in self.screens.items():
            if screen.cues and screen.tier == "emergency" and words & screen.cues:
                return sid
        return GENERAL


@functools.lru_cache(maxsize=1)
def screen_book(path: Path = SCREENS_PATH) -> ScreenBook:
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    screens = {
        sid: Screen(sid, spec["tier"], dict(spec["question"]),
                    frozenset(str(c).lower() for c in spec.get("cues") or ()))
        for sid, spec in raw["screens"].items()
    }
    unreadable = raw["unreadable_language"]
    if unreadable["screen"] not in screens:
        raise ValueError(f"unreadable_language names unknown screen {unreadable['screen']!r}")
    return ScreenBook(screens, int(raw.get("timeout_minutes", 10)), unreadable["reason"],
                      unreadable["screen"])


# Marks that only Vietnamese uses among Latin-script languages (after canonical
# decomposition: dot below, hook above, horn, breve; and the letter đ).
_VIETNAMESE = {"\u0323", "\u0309", "\u031b", "\u0306", "đ", "Đ"}


def unreadable(text: str) -> bool:
    """True when a message is written in a language PainPath cannot read: mostly in
    another script (Cyrillic, Arabic, Chinese...), or in Vietnamese."""
    letters = other_script = vietnamese = 0
    for ch in unicodedata.normalize("NFD", text):
        if ch in _VIETNAMESE:
            vietnamese += 1
        elif ch.isalpha():
            letters += 1
            other_script += ord(ch) > 0x24F  # beyond Latin Extended-B
    return vietnamese >= 2 or (letters > 0 and other_script >= max(3, 0.3 * letters))


def get_screen(screen_id: str) -> Screen:
    return screen_book().screens[screen_id]
