"""SMS text: keep bodies in the GSM-7 alphabet so two segments carry 306 characters.

One character outside GSM-7 (an arrow, a curly quote, a degree sign, an accented
letter such as á or í, an emoji) switches the whole message to UCS-2, where a
segment holds 70 characters instead of 160, and two concatenated segments hold
134 (2 x 67) instead of 306 (2 x 153). Every patient-facing text fits
`MAX_SEGMENTS` segments *as sent* (after `to_gsm`); a text that repeats the
patient's own words (`fit_echoes`) shortens those words so the total still fits.
"""
from __future__ import annotations

import math
import re
import unicodedata
from typing import Callable

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENDED = set("^{}\\[~]|€")  # two septets each

REPLACEMENTS = {
    "→": "->", "←": "<-", "–": "-", "—": "-", "‘": "'", "’": "'", "“": '"', "”": '"',
    "…": "...", "°": " ", "•": "-", "\u00a0": " ", "×": "x", "½": "1/2",
}

MAX_SEGMENTS = 2     # the most segments any patient-facing text may take
GSM7_SINGLE = 160    # septets in a message of one segment
GSM7_PART = 153      # septets per segment of a longer message (7 go to the header)
UCS2_SINGLE = 70     # UTF-16 units in a message of one segment
UCS2_PART = 67       # UTF-16 units per segment of a longer message
ELLIPSIS = "..."     # marks a shortened echo (GSM-7, unlike "…")


def to_gsm(text: str) -> str:
    """Replace the common non-GSM characters with GSM-7 equivalents."""
    out = "".join(REPLACEMENTS.get(ch, ch) for ch in text)
    return out.replace("  ", " ")


def is_gsm(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


def _units(text: str) -> tuple[int, int, int]:
    """(length in the message's encoding, one-segment size, per-segment size)."""
    if is_gsm(text):
        return sum(2 if ch in GSM7_EXTENDED else 1 for ch in text), GSM7_SINGLE, GSM7_PART
    return len(text.encode("utf-16-le")) // 2, UCS2_SINGLE, UCS2_PART


def segments(text: str) -> int:
    """How many SMS segments `text` takes (GSM-7 or UCS-2)."""
    units, single, part = _units(text)
    return 1 if units <= single else math.ceil(units / part)


def capacity(text: str, max_segments: int = MAX_SEGMENTS) -> int:
    """How many septets (GSM-7) or UTF-16 units (UCS-2) `max_segments` segments hold
    in `text`'s encoding: 306 or 134 for two."""
    _, single, part = _units(text)
    return single if max_segments == 1 else part * max_segments


def overflow(text: str, max_segments: int = MAX_SEGMENTS) -> int:
    """How far `text` as sent runs past `max_segments` segments (0 when it fits)."""
    sent = to_gsm(text)
    return max(0, _units(sent)[0] - capacity(sent, max_segments))


def fits(text: str, max_segments: int = MAX_SEGMENTS) -> bool:
    """Whether `text`, as sent (after `to_gsm`), takes at most `max_segments` segments."""
    return segments(to_gsm(text)) <= max_segments


def fold(text: str) -> str:
    """`text` in GSM-7 only: look-alikes replaced, accents dropped (á -> a), any other
    character (an emoji) left out. For the patient's own words put into our message."""
    out = []
    for ch in to_gsm(text):
        if is_gsm(ch):
            out.append(ch)
        else:
            out.append("".join(c for c in unicodedata.normalize("NFKD", ch) if is_gsm(c)))
    return re.sub(" {2,}", " ", "".join(out))


def _capped(value: str, cap: int) -> str:
    """`value` in at most `cap` characters, a shortened one ending in "..."."""
    if len(value) <= cap:
        return value
    keep = cap - len(ELLIPSIS)
    return value[:keep].rstrip() + ELLIPSIS if keep > 0 else ""


def fit_echoes(render: Callable[[dict[str, str]], str], echoes: dict[str, str],
               max_segments: int = MAX_SEGMENTS) -> str:
    """`render(echoes)` within `max_segments` segments.

    `echoes` are the patient's own words repeated in one of our messages ("Your
    goal: ..."); they may be long or hold a character (an emoji, an accent) that
    would make the whole message UCS-2 and so three or more segments. When the
    message does not fit, the echoes are folded to GSM-7, then each is capped at
    the longest length that lets the message fit (shared fairly: a short answer
    stays whole, long ones are cut to the same length, ending in "..."). Our own
    words are never cut.
    """
    text = render(echoes)
    if fits(text, max_segments):
        return text
    folded = {key: fold(value) for key, value in echoes.items()}

    def with_cap(cap: int) -> str:
        return render({key: _capped(value, cap) for key, value in folded.items()})

    low, high = 0, max((len(v) for v in folded.values()), default=0)
    while low < high:  # the longest cap that fits (longer echoes, longer message)
        middle = (low + high + 1) // 2
        if fits(with_cap(middle), max_segments):
            low = middle
        else:
            high = middle - 1
    while low > 0 and not fits(with_cap(low), max_segments):
        low -= 1  # (a cut that ends on spaces is shorter: the length is not strictly monotonic)
    return with_cap(low)
