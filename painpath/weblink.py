"""Signed, expiring per-patient web-chat links.

A chat link carries the patient id signed with a key derived from the
deployment's secret key (`settings.key_for("chat-link")`), so the link itself is the patient's credential for the
web chat: anyone holding a valid, unexpired link can read and write that
patient's conversation. Links expire after `CHAT_LINK_TTL_HOURS`; the clinic
sends a fresh one with each check-in.

Never log a token: it is as good as a password until it expires.
"""
from __future__ import annotations

import logging
from typing import Literal

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from painpath.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SALT = "chat-link"

Reason = Literal["expired", "invalid"]


class InvalidChatLink(Exception):
    """A chat token that cannot be used.

    Attributes:
        reason: ``"expired"`` for a genuine link that is too old, ``"invalid"``
            for anything else (tampered, truncated, signed with another key).
    """

    def __init__(self, reason: Reason) -> None:
        super().__init__(f"chat link {reason}")
        self.reason: Reason = reason


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.key_for("chat-link"), salt=SALT)


def make_chat_token(patient_id: str, settings: Settings | None = None) -> str:
    """Sign `patient_id` into a URL-safe token stamped with the current time."""
    settings = settings or get_settings()
    if not isinstance(patient_id, str) or not patient_id:
        raise ValueError("patient_id must be a non-empty string")
    token = _serializer(settings).dumps(patient_id)
    assert isinstance(token, str)
    return token


def verify_chat_token(token: str, settings: Settings | None = None) -> str:
    """Return the patient id signed into `token`.

    Raises:
        InvalidChatLink: with ``reason="expired"`` when the signature is good but
            older than ``settings.chat_link_ttl_hours``, ``reason="invalid"``
            when the token is malformed or its signature does not verify.
    """
    settings = settings or get_settings()
    max_age = settings.chat_link_ttl_hours * 3600
    try:
        patient_id = _serializer(settings).loads(token, max_age=max_age)
    except SignatureExpired:
        # The signature was checked before the age, so this link was ours.
        raise InvalidChatLink("expired") from None
    except (BadData, UnicodeError, ValueError, TypeError):
        raise InvalidChatLink("invalid") from None
    if not isinstance(patient_id, str) or not patient_id:
        raise InvalidChatLink("invalid")
    return patient_id


def chat_url(patient_id: str, settings: Settings | None = None) -> str:
    """The full web-chat URL for `patient_id` (what the clinic texts the patient)."""
    settings = settings or get_settings()
    return f"{settings.web_base_url}/chat/{make_chat_token(patient_id, settings)}"
