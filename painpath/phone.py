"""Phone numbers: validate and normalise with `phonenumbers`; mask for logs."""
from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    """Not a valid, dialable phone number."""


def normalize(raw: str, region: str = "US") -> str:
    """Return `raw` in E.164 (e.g. "+15551234567").

    Raises:
        InvalidPhone: when the number cannot be parsed or is not valid.
    """
    try:
        parsed = phonenumbers.parse(str(raw), region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {raw!r} ({exc})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone(f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask(number: str | None) -> str:
    """'+15551234567' → '+1******4567' (for logs: never a full number)."""
    if not number:
        return "-"
    if len(number) <= 6:
        return "*" * len(number)
    return number[:2] + "*" * (len(number) - 6) + number[-4:]
