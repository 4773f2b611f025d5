"""SMS text: keep bodies in the GSM-7 alphabet so two segments carry 306 characters.

One character outside GSM-7 (an arrow, a curly quote, a degree sign) switches the
whole message to UCS-2, where a segment holds 70 characters instead of 160.
"""
from __future__ import annotations

import math

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENDED = set("^{}\\[~]|€")  # two septets each

REPLACEMENTS = {
    "→": "->", "←": "<-", "–": "-", "—": "-", "‘": "'", "’": "'", "“": '"', "”": '"',
    "…": "...", "°": " ", "•": "-", "\u00a0": " ", "×": "x", "½": "1/2",
}


def to_gsm(text: str) -> str:
    """Replace the common non-GSM characters with GSM-7 equivalents."""
    out = "".join(REPLACEMENTS.get(ch, ch) for ch in text)
    return out.replace("  ", " ")


def is_gsm(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


def segments(text: str) -> int:
    """How many SMS segments `text` takes (GSM-7 or UCS-2)."""
    if is_gsm(text):
        septets = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)
