"""What arrives from outside, made safe before it reaches storage or the assistant.

Shared by the edges that take text from people PainPath does not control: the
Twilio SMS webhook (Rasa channel), the web chat and Twilio status callbacks.

- Text is cleaned, never rejected for its content: lone UTF-16 surrogates (valid
  in JSON, not encodable as UTF-8) become U+FFFD, NUL and other control
  characters that no keyboard sends are dropped (PostgreSQL refuses NUL in text),
  and the length is capped. Emoji, HTML, SQL fragments and every script pass
  through unchanged: they are a patient's words, stored with bound parameters
  and shown only through escaping templates.
- Twilio form bodies are parsed strictly (bad UTF-8 is an error, blank values
  are kept because Twilio signs them) into a mapping that Twilio's
  `RequestValidator` reads with `getall`, like Flask's MultiDict.
- A Twilio message SID has a fixed shape; anything else is refused before it
  reaches a column or a lookup.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterable
from urllib.parse import parse_qsl

from sqlalchemy import select

from painpath.db import new_session
from painpath.models import Message

# Twilio: "SM"/"MM" + 32 hex for messages; status callbacks carry the same SID.
MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
# Twilio delivery states (https://www.twilio.com/docs/sms/api/message-resource#message-status-values)
MESSAGE_STATUSES = frozenset({
    "accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered",
    "failed", "read", "receiving", "received", "canceled", "partially_delivered",
})
ERROR_CODE = re.compile(r"\d{1,6}")
# Twilio concatenates at most 10 segments: 1600 characters is the longest SMS body.
SMS_MAX_CHARS = 1600

_KEEP_CONTROLS = {"\t", "\n", "\r"}


def _keep(ch: str) -> bool:
    if ch in _KEEP_CONTROLS:
        return True
    category = unicodedata.category(ch)
    # Cc: C0/C1 controls (NUL, ESC, DEL, …); Cs: lone surrogates (handled before);
    # Cn/Co stay: unassigned and private-use characters are still someone's text.
    return category != "Cc"


def clean_text(text: str, max_chars: int | None = None) -> str:
    """`text` safe to store and to send on: valid Unicode, no control characters
    but tab and newlines, at most `max_chars` characters. Never raises."""
    if not isinstance(text, str):
        text = str(text)
    # lone surrogates ("\\ud800" in JSON) cannot be encoded as UTF-8
    text = text.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(text) else text
    if any(not _keep(ch) for ch in text):
        text = "".join(ch for ch in text if _keep(ch))
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars]
    return text


_COMMAND_PREFIX = re.compile(r"^[\s/]+")


def neutralise_command(text: str) -> str:
    """A patient's message as the assistant should read it: Rasa reads a message that
    starts with "/" as an intent and skips every NLU component, red-flag triage
    included ("/I want to end my life tonight" got neither 988 nor a page). The
    leading slashes (and the spaces around them) are dropped; a message of slashes
    only becomes "?" (nothing to triage, still a turn that is answered)."""
    if not text.lstrip().startswith("/"):
        return text
    return _COMMAND_PREFIX.sub("", text) or "?"


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class FormParams(dict):  # type: ignore[type-arg]
    """Form fields, first value by key (`form[k]`), every value with `getall(k)`."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._all: dict[str, list[str]] = {}
        for key, value in pairs:
            self._all.setdefault(key, []).append(value)
        super().__init__({k: v[0] for k, v in self._all.items()})

    def getall(self, key: str) -> list[str]:
        """Every value sent for `key` (Twilio's RequestValidator signs them all)."""
        return list(self._all[key])


def parse_form(body: bytes) -> FormParams:
    """An `application/x-www-form-urlencoded` body, keeping blank values.

    Raises:
        ValueError: the body or a percent-encoded value is not UTF-8.
    """
    text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError
    pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict",
                      max_num_fields=200)
    return FormParams(pairs)


def valid_message_sid(sid: str | None) -> bool:
    """True for a Twilio message SID ("SM" or "MM" and 32 hex digits)."""
    return bool(sid) and MESSAGE_SID.fullmatch(sid or "") is not None


def inbound_already_received(sid: str, database_url: str | None = None) -> bool:
    """An inbound SMS with this Twilio SID has already been recorded (a replay or
    Twilio's own retry): it must not be processed again."""
    with new_session(database_url) as session:
        return session.execute(
            select(Message.id).where(Message.provider_sid == sid, Message.direction == "in")
            .limit(1)
        ).first() is not None
