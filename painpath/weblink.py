"""Signed, expiring, revocable per-patient web-chat links.

A chat link carries the patient's *link key* (``patient.chat_link_key``, a random
value, never the patient id) signed with a key derived from the deployment's secret
key for this purpose only (``settings.key_for("chat-link")``). The link is the
patient's credential for the web chat: anyone holding a valid, unexpired link can
read and write that patient's conversation. So

- links expire after `CHAT_LINK_TTL_HOURS`;
- cancelling the enrolment, opting out and deleting the patient revoke every link
  sent before (:func:`revoke_chat_links` drops the key; the next link gets a new
  one), whatever its age;
- the link shows nothing about the patient: its payload is the random key.

Never log a token: it is as good as a password until it expires.
"""
from __future__ import annotations

import logging
import secrets
from typing import Literal

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath.db import new_session
from painpath.models import Patient
from painpath.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SALT = "chat-link"
PURPOSE = "chat-link"

Reason = Literal["expired", "invalid", "revoked"]


class InvalidChatLink(Exception):
    """A chat token that cannot be used.

    Attributes:
        reason: ``"expired"`` for a genuine link that is too old, ``"revoked"`` for a
            genuine link of a cancelled, opted-out or deleted patient (or one sent
            before a newer revocation), ``"invalid"`` for anything else (tampered,
            truncated, signed with another key).
    """

    def __init__(self, reason: Reason) -> None:
        super().__init__(f"chat link {reason}")
        self.reason: Reason = reason


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.key_for(PURPOSE), salt=SALT)


def sign_link_key(key: str, settings: Settings | None = None) -> str:
    """Sign a link key into a URL-safe token stamped with the current time."""
    settings = settings or get_settings()
    if not isinstance(key, str) or not key:
        raise ValueError("key must be a non-empty string")
    token = _serializer(settings).dumps(key)
    assert isinstance(token, str)
    return token


def verify_chat_token(token: str, settings: Settings | None = None) -> str:
    """Return the link key signed into `token` (not yet checked against a patient).

    Raises:
        InvalidChatLink: with ``reason="expired"`` when the signature is good but
            older than ``settings.chat_link_ttl_hours``, ``reason="invalid"``
            when the token is malformed or its signature does not verify.
    """
    settings = settings or get_settings()
    max_age = settings.chat_link_ttl_hours * 3600
    try:
        key = _serializer(settings).loads(token, max_age=max_age)
    except SignatureExpired:
        # The signature was checked before the age, so this link was ours.
        raise InvalidChatLink("expired") from None
    except (BadData, UnicodeError, ValueError, TypeError):
        raise InvalidChatLink("invalid") from None
    if not isinstance(key, str) or not key:
        raise InvalidChatLink("invalid")
    return key


def chat_token(session: Session, patient_id: str, settings: Settings | None = None) -> str:
    """A chat token for `patient_id`, giving the patient a link key if they have none.

    Raises:
        LookupError: no such patient.
    """
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise LookupError(f"no patient {patient_id!r}")
    if patient.chat_link_key is None:
        patient.chat_link_key = secrets.token_hex(16)
        session.flush()
    return sign_link_key(patient.chat_link_key, settings)


def patient_for_token(session: Session, token: str,
                      settings: Settings | None = None) -> Patient:
    """The patient whose current link `token` is.

    Raises:
        InvalidChatLink: as :func:`verify_chat_token`, or ``"revoked"`` when no
            patient holds the key any more.
    """
    key = verify_chat_token(token, settings)
    patient = session.execute(
        select(Patient).where(Patient.chat_link_key == key)).scalar_one_or_none()
    if patient is None:
        raise InvalidChatLink("revoked")
    return patient


def revoke_chat_links(session: Session, patient_id: str) -> None:
    """Make every chat link sent to the patient so far unusable (cancel, opt-out)."""
    patient = session.get(Patient, patient_id)
    if patient is not None and patient.chat_link_key is not None:
        patient.chat_link_key = None
        logger.info("chat links of patient %s revoked", patient_id)


def chat_url(patient_id: str, settings: Settings | None = None) -> str:
    """The full web-chat URL for `patient_id` (what the clinic texts the patient).

    Raises:
        LookupError: no such patient.
    """
    settings = settings or get_settings()
    with new_session(settings.database_url) as session, session.begin():
        return chat_url_in(session, patient_id, settings)


def chat_url_in(session: Session, patient_id: str, settings: Settings | None = None) -> str:
    """`chat_url` within the caller's transaction (a check-in question that sends the
    patient to the secure chat, painpath/checkins.py)."""
    settings = settings or get_settings()
    return f"{settings.web_base_url}/chat/{chat_token(session, patient_id, settings)}"
