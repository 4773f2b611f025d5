"""Outbound SMS: a small gateway interface with a Twilio and a console implementation,
and the outbox that records every message before it is handed to the gateway.

`get_gateway()` is the one place that decides which gateway a process uses:
Twilio when credentials are set (its REST calls go to `TWILIO_API_BASE` when
that is set, e.g. a fake Twilio server on loopback in tests), else the console.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from painpath.db import new_session
from painpath.models import Message, utcnow
from painpath.phone import mask
from painpath.settings import Settings, get_settings
from painpath.sms_text import to_gsm

logger = logging.getLogger(__name__)
# twilio's client logs every request's URL (with the phone numbers) at INFO
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

OPT_OUT_ERROR = 21610  # Twilio: the recipient has replied STOP
MAX_ATTEMPTS = 6
BACKOFF_SECONDS = (5, 15, 60, 180, 600)  # after attempt 1, 2, 3, …


@dataclass(frozen=True)
class SendResult:
    sid: str | None
    status: str  # sent | queued | logged | failed
    error: str | None = None
    error_code: int | None = None


class SmsGateway(Protocol):
    """Hands one SMS to a carrier (or logs it). Blocking; call it off the event loop."""

    def send(self, to: str, body: str) -> SendResult: ...


class ConsoleGateway:
    """Logs outbound SMS instead of sending (no Twilio credentials set)."""

    def send(self, to: str, body: str) -> SendResult:
        logger.info("console SMS to %s (%d chars)", mask(to), len(body))
        return SendResult(sid=None, status="logged")


def _redirecting_http_client(api_base: str):  # type: ignore[no-untyped-def]
    """A twilio HttpClient that sends every request to `api_base` instead of Twilio."""
    from twilio.http.http_client import TwilioHttpClient

    base = urlsplit(api_base)

    class RedirectingHttpClient(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def]
            parts = urlsplit(url)
            url = urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path,
                              parts.query, parts.fragment))
            return super().request(method, url, *args, **kwargs)

    return RedirectingHttpClient(timeout=10)


class TwilioGateway:
    """Sends with the real `twilio` client (optionally redirected to `TWILIO_API_BASE`)."""

    def __init__(self, settings: Settings) -> None:
        from twilio.rest import Client

        http_client = (_redirecting_http_client(settings.twilio_api_base)
                       if settings.twilio_api_base else None)
        self._client = Client(settings.twilio_account_sid, settings.twilio_auth_token,
                              http_client=http_client)
        self._from = settings.twilio_from_number
        self._status_callback = f"{settings.public_base_url}/twilio/status"

    def send(self, to: str, body: str) -> SendResult:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        try:
            msg = self._client.messages.create(to=to, from_=self._from, body=body,
                                               status_callback=self._status_callback)
        except TwilioRestException as exc:
            logger.warning("Twilio refused SMS to %s: %s %s", mask(to), exc.status, exc.code)
            return SendResult(sid=None, status="failed", error=f"{exc.code}: {exc.msg}",
                              error_code=exc.code)
        except (TwilioException, OSError) as exc:
            logger.warning("Twilio unreachable for SMS to %s: %s", mask(to), type(exc).__name__)
            return SendResult(sid=None, status="failed", error=type(exc).__name__)
        return SendResult(sid=msg.sid, status=msg.status or "queued")


_gateway: SmsGateway | None = None


def get_gateway(settings: Settings | None = None) -> SmsGateway:
    """The process's gateway: Twilio when configured, else the console."""
    global _gateway
    if _gateway is None:
        settings = settings or get_settings()
        _gateway = TwilioGateway(settings) if settings.twilio_configured else ConsoleGateway()
    return _gateway


def set_gateway(gateway: SmsGateway | None) -> None:
    """Replace the process's gateway (tests; None resets to the configured one)."""
    global _gateway
    _gateway = gateway


def record_outbound(session: Session, *, to: str, body: str, channel: str = "sms",
                    patient_id: str | None = None, clinician_id: int | None = None,
                    idempotency_key: str | None = None) -> Message | None:
    """Write an outbound message as queued. Returns None when `idempotency_key`
    was already used (the message exists: never send it twice)."""
    if idempotency_key is not None:
        seen = session.execute(
            select(Message.id).where(Message.idempotency_key == idempotency_key)
        ).first()
        if seen:
            return None
    settings = get_settings()
    if channel == "sms":
        body = to_gsm(body)
    msg = Message(patient_id=patient_id, clinician_id=clinician_id, direction="out",
                  channel=channel, to=to, from_=settings.twilio_from_number or "painpath",
                  body=body, status="queued", idempotency_key=idempotency_key)
    session.add(msg)
    try:
        session.flush()
    except IntegrityError:  # a concurrent writer used the same key
        session.rollback()
        return None
    return msg


def deliver(message_id: int, gateway: SmsGateway | None = None,
            database_url: str | None = None) -> Message:
    """Hand a queued message to the gateway and record the outcome. Blocking."""
    gateway = gateway or get_gateway()
    with new_session(database_url) as session, session.begin():
        msg = session.get(Message, message_id)
        to, body = msg.to, msg.body
        msg.status = "sending"
        msg.attempts += 1
    result = gateway.send(to, body)
    with new_session(database_url) as session, session.begin():
        msg = session.get(Message, message_id)
        msg.status = result.status
        msg.provider_sid = result.sid
        msg.error = result.error
        msg.updated_at = utcnow()
        retryable = result.status == "failed" and result.error_code != OPT_OUT_ERROR \
            and msg.attempts < MAX_ATTEMPTS
        msg.next_attempt_at = (utcnow() + timedelta(
            seconds=BACKOFF_SECONDS[min(msg.attempts, len(BACKOFF_SECONDS)) - 1])
            if retryable else None)
        if result.error_code == OPT_OUT_ERROR and msg.patient_id:
            from painpath.consent import record_opt_out

            record_opt_out(session, msg.patient_id, source="twilio:21610")
    return msg


def send_sms(to: str, body: str, *, patient_id: str | None = None,
             clinician_id: int | None = None, idempotency_key: str | None = None,
             gateway: SmsGateway | None = None, database_url: str | None = None) -> Message | None:
    """Record then deliver one SMS. Returns None if the idempotency key was used."""
    with new_session(database_url) as session, session.begin():
        msg = record_outbound(session, to=to, body=body, patient_id=patient_id,
                              clinician_id=clinician_id, idempotency_key=idempotency_key)
        if msg is None:
            return None
        message_id = msg.id
    return deliver(message_id, gateway=gateway, database_url=database_url)


# Twilio's statuses in the order a message moves through them; a late callback
# never moves a message backwards (callbacks can arrive out of order).
_STATUS_ORDER = {"queued": 0, "sending": 1, "sent": 2, "failed": 3, "undelivered": 3,
                 "delivered": 4, "read": 5}


def apply_status_callback(database_url: str | None, sid: str, status: str,
                          error_code: str | None = None) -> bool:
    """Record a delivery-status callback for the message with provider `sid`."""
    with new_session(database_url) as session, session.begin():
        msg = session.execute(select(Message).where(Message.provider_sid == sid)).scalar_one_or_none()
        if msg is None:
            return False
        if _STATUS_ORDER.get(status, 0) >= _STATUS_ORDER.get(msg.status, 0):
            msg.status = status
        if error_code:
            msg.error = f"{error_code}"
            if str(error_code) == str(OPT_OUT_ERROR) and msg.patient_id:
                from painpath.consent import record_opt_out

                record_opt_out(session, msg.patient_id, source="twilio:21610")
        msg.updated_at = utcnow()
    return True


def retry_due(now: datetime | None = None, gateway: SmsGateway | None = None,
              database_url: str | None = None) -> list[int]:
    """Deliver again every failed or stuck-queued SMS whose retry time has come."""
    now = now or utcnow()
    with new_session(database_url) as session:
        ids = session.execute(
            select(Message.id).where(
                Message.direction == "out", Message.channel == "sms",
                ((Message.status == "failed") & (Message.next_attempt_at <= now))
                | ((Message.status == "queued") & (Message.created_at <= now - timedelta(seconds=30))))
            .order_by(Message.id).limit(500)
        ).scalars().all()
    for message_id in ids:
        deliver(message_id, gateway=gateway, database_url=database_url)
    return list(ids)
