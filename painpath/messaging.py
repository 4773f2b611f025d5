"""Outbound SMS: a small gateway interface with a Twilio and a console implementation,
and the outbox that records every message before it is handed to the gateway.

`get_gateway()` is the one place that decides which gateway a process uses:
Twilio when credentials are set (its REST calls go to `TWILIO_API_BASE` when
that is set, e.g. a fake Twilio server on loopback in tests), else the console.
"""
from __future__ import annotations

import logging
import os
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
from painpath.senders import NO_SENDER, sender_for
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
    # the provider may have accepted it anyway (timeout, connection reset, 5xx): the
    # next attempt looks it up before sending again (painpath/dispatch.py)
    uncertain: bool = False


class SmsGateway(Protocol):
    """Hands one SMS to a carrier (or logs it). Blocking; call it off the event loop.

    `from_` is the number it leaves from (the clinic's own, painpath/senders.py); None
    or NO_SENDER: the gateway's default (TWILIO_FROM_NUMBER).

    A gateway may also offer `find_sent(to, body, since, from_=None) -> list[SendResult]`:
    the provider's own record of messages with that recipient, sender and body created
    since `since` (the dispatcher uses it to avoid resending after a crash)."""

    def send(self, to: str, body: str, from_: str | None = None) -> SendResult: ...


class ConsoleGateway:
    """Logs outbound SMS instead of sending (no Twilio credentials set)."""

    def send(self, to: str, body: str, from_: str | None = None) -> SendResult:
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

    def _sender(self, from_: str | None) -> str | None:
        return from_ if from_ and from_ != NO_SENDER else self._from

    def send(self, to: str, body: str, from_: str | None = None) -> SendResult:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        try:
            msg = self._client.messages.create(to=to, from_=self._sender(from_), body=body,
                                               status_callback=self._status_callback)
        except TwilioRestException as exc:
            logger.warning("Twilio refused SMS to %s: %s %s", mask(to), exc.status, exc.code)
            return SendResult(sid=None, status="failed", error=f"{exc.code}: {exc.msg}",
                              error_code=exc.code, uncertain=(exc.status or 0) >= 500)
        except (TwilioException, OSError) as exc:
            logger.warning("Twilio unreachable for SMS to %s: %s", mask(to), type(exc).__name__)
            return SendResult(sid=None, status="failed", error=type(exc).__name__,
                              uncertain=True)
        return SendResult(sid=msg.sid, status=msg.status or "queued")

    def find_sent(self, to: str, body: str, since: datetime,
                  from_: str | None = None) -> list[SendResult]:
        """Twilio's messages from our number to `to` with this body created since `since`."""
        found = []
        for m in self._client.messages.list(to=to, from_=self._sender(from_), limit=20):
            if m.body == body and m.date_created is not None and m.date_created >= since:
                found.append(SendResult(sid=m.sid, status=m.status or "queued"))
        return found


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
                    idempotency_key: str | None = None, purpose: str | None = None,
                    not_before: datetime | None = None, clinic_id: int | None = None,
                    from_: str | None = None, escalation_id: int | None = None) -> Message | None:
    """Write an outbound message as queued. Returns None when `idempotency_key`
    was already used (the message exists: never send it twice).

    An SMS leaves from `from_` when given (a reply from the number that was texted),
    else from the number of `clinic_id`, else of the patient's or the clinician's
    clinic (painpath/senders.py).

    `purpose`: "outreach" for routine unprompted messages (held while an emergency or
    crisis escalation is open: painpath/outreach.py), "welcome"; None for replies and
    alerts. `not_before`: no sender claims it earlier (the morning, after quiet hours).
    `escalation_id`: the escalation an alert or ACK confirmation is about (deleting
    the patient deletes it with the escalation)."""
    if idempotency_key is not None:
        seen = session.execute(
            select(Message.id).where(Message.idempotency_key == idempotency_key)
        ).first()
        if seen:
            return None
    if channel == "sms":
        body = to_gsm(body)
        sender = from_ or sender_for(session, clinic_id=clinic_id, patient_id=patient_id,
                                     clinician_id=clinician_id)
    else:
        sender = get_settings().twilio_from_number or NO_SENDER
    msg = Message(patient_id=patient_id, clinician_id=clinician_id, direction="out",
                  channel=channel, to=to, from_=sender,
                  body=body, status="queued", idempotency_key=idempotency_key,
                  purpose=purpose, next_attempt_at=not_before, escalation_id=escalation_id)
    session.add(msg)
    try:
        session.flush()
    except IntegrityError:  # a concurrent writer used the same key
        session.rollback()
        return None
    return msg


def deliver(message_id: int, gateway: SmsGateway | None = None,
            database_url: str | None = None) -> Message:
    """Send one recorded message now, in this thread, and record the outcome.

    The row is claimed first (painpath/dispatch.py), so a dispatcher worker never
    sends it at the same time; if someone else holds or has sent it, nothing is
    sent here. Blocking."""
    from painpath.dispatch import claim, deliver_claimed

    gateway = gateway or get_gateway()
    for claimed in claim(1, name=f"inline:{os.getpid()}", ids=[message_id],
                         database_url=database_url):
        deliver_claimed(claimed, gateway, database_url=database_url)
    with new_session(database_url) as session:
        return session.get(Message, message_id)


def deliver_now(message_ids: list[int]) -> None:
    """Try to send each recorded message now (a scheduler job's pages and replies);
    one that fails stays queued and the retry job sends it."""
    for message_id in message_ids:
        try:
            deliver(message_id)
        except Exception:
            logger.exception("message %s not delivered now", message_id)


def send_sms(to: str, body: str, *, patient_id: str | None = None,
             clinician_id: int | None = None, idempotency_key: str | None = None,
             gateway: SmsGateway | None = None, database_url: str | None = None,
             from_: str | None = None, escalation_id: int | None = None) -> Message | None:
    """Record one SMS already claimed by this caller, then send it now (conversation
    replies, ACK confirmations). Returns None if the idempotency key was used."""
    from painpath.dispatch import LEASE_SECONDS, Claimed, deliver_claimed, new_token

    now = utcnow()
    with new_session(database_url) as session, session.begin():
        msg = record_outbound(session, to=to, body=body, patient_id=patient_id,
                              clinician_id=clinician_id, idempotency_key=idempotency_key,
                              from_=from_, escalation_id=escalation_id)
        if msg is None:
            return None
        token = new_token(f"inline:{os.getpid()}")
        msg.status, msg.claimed_by, msg.attempts = "sending", token, 1
        msg.lease_until = now + timedelta(seconds=LEASE_SECONDS)
        msg.unsure_since = now
        session.flush()
        claimed = Claimed(id=msg.id, to=msg.to, body=msg.body, patient_id=patient_id,
                          attempts=1, token=token, claimed_at=now, unsure_since=None,
                          from_=msg.from_)
    result = deliver_claimed(claimed, gateway or get_gateway(), database_url=database_url)
    msg.status, msg.provider_sid, msg.error = result.status, result.sid, result.error
    return msg


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
    """Send again, in this thread, every failed SMS whose backoff has passed, every
    one whose sender's lease expired, and every one left queued for 30 s (no
    dispatcher picked it up). Claims first, so it never races a dispatcher."""
    from painpath.dispatch import drain

    return drain(database_url=database_url, gateway=gateway, now=now,
                 queued_older_than=timedelta(seconds=30))
