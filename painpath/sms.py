"""The SMS conversation edge: inbound routing (number → patient, keywords) and
outbound replies to a patient. Used by the Rasa Twilio channel; blocking calls,
run them off the event loop."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from painpath import consent, programs, unrouted
from painpath.content import message
from painpath.crisis import with_safety_numbers
from painpath.db import new_session
from painpath.messaging import deliver_now, send_sms
from painpath.escalation import acknowledge_by_sms, raise_flag
from painpath.models import Clinician, Escalation, Message, Patient, utcnow
from painpath.phone import InvalidPhone, mask, normalize
from painpath.senders import candidates, everyone, our_number
from painpath.settings import get_settings

logger = logging.getLogger(__name__)


PICTURE_NOTE = ("Sent a picture by SMS with no words. PainPath does not show pictures: "
                "ask the patient, or see the message in the Twilio console.")


@dataclass(frozen=True)
class Routed:
    patient_id: str | None
    forward_text: str | None  # what Rasa should see; None: handled here
    procedure: str | None = None  # the active enrolment's, for red-flag triage
    glucose_limit_mg_dl: float | None = None  # the patient's own plan limit (§1.0), if any


ACK = re.compile(r"^\s*ack(?:nowledge)?\s*#?\s*(\d{1,9})(?:\s+([A-Za-z0-9]{1,12}))?\s*$",
                 re.IGNORECASE)
_ACK_REPLIES = {None: "ack_confirmed", "unknown": "ack_unknown", "not_paged": "ack_refused",
                "bad_code": "ack_refused"}


def _clinician_ack(phone: str, to: str | None, text: str, message_sid: str | None) -> bool:
    """`ACK <id> <code>` from a clinician's registered number (painpath/escalation.py
    decides whether it counts). Returns True when the message was a clinician's ACK
    (handled here, whether accepted or not)."""
    m = ACK.match(text or "")
    if not m:
        return False
    escalation_id = int(m.group(1))
    with new_session() as session, session.begin():
        clinicians = list(session.execute(select(Clinician).where(
            Clinician.phone == phone, Clinician.active.is_(True))
            .order_by(Clinician.id)).scalars())
        if not clinicians:
            return False  # not from a registered clinician number: not an ACK
        # linked to the escalation it names: deleted with the patient it is about
        about = escalation_id if session.get(Escalation, escalation_id) is not None else None
        outcome = acknowledge_by_sms(session, escalation_id, clinicians, phone, m.group(2))
        clinician_id = outcome.clinician_id
        session.add(Message(clinician_id=clinician_id, direction="in", channel="sms",
                            to=to or "painpath", from_=phone, body=text[:200],
                            status="received", provider_sid=message_sid, escalation_id=about))
    if outcome.answer:
        link = f"{get_settings().web_base_url}/escalations/{escalation_id}"
        send_sms(phone, message(_ACK_REPLIES[outcome.refused], id=escalation_id, link=link),
                 clinician_id=clinician_id, escalation_id=about)
    if outcome.refused is None:
        logger.info("ACK %s by SMS from clinician %s", escalation_id, clinician_id)
    return True


def _apply_consent(session: Session, phone: str, keyword: str | None) -> None:
    """STOP and START reach every patient record with this number, at every clinic:
    the person asked for no more texts (or for texts again), whichever clinic's
    number they happened to reply to."""
    for patient in everyone(session, phone):
        if keyword == "opt_out":
            consent.record_opt_out(session, patient.id, source="keyword")
        elif keyword == "opt_in":
            consent.record_opt_in(session, patient.id, source="keyword")


def _unrouted(session: Session, matches: list[Patient], keyword: str | None,
              text: str) -> unrouted.Unrouted:
    """A text matching patients at several clinics: no guess (painpath/unrouted.py)."""
    if keyword in ("opt_out", "opt_in"):
        return unrouted.Unrouted([])  # applied to every enrolment already
    if keyword == "help":
        return unrouted.Unrouted([unrouted.neutral_reply(matches)])
    return unrouted.handle(session, matches, text)


def _send_unrouted(phone: str, to: str | None, result: unrouted.Unrouted,
                   message_sid: str | None) -> None:
    """The sender's replies (from the number they texted), then the pages."""
    for i, body in enumerate(result.replies):
        send_sms(phone, body, from_=to,
                 idempotency_key=f"unrouted:{message_sid}:{i}" if message_sid else None)
    deliver_now(list(result.alert_message_ids))


def route_inbound(sender: str, text: str, message_sid: str | None, media: int = 0,
                  to: str | None = None) -> Routed:
    """Record an inbound SMS (with `media` pictures or other attachments, which
    PainPath does not fetch) sent to our number `to` (Twilio's `To`), and decide what
    happens to it. The patient is found on the (To, From) pair (painpath/senders.py);
    a text that still matches several clinics is not guessed (painpath/unrouted.py)."""
    try:
        phone = normalize(sender)
    except InvalidPhone:
        phone = sender
    to = our_number(to)
    if _clinician_ack(phone, to, text, message_sid):
        return Routed(None, None)
    keyword = consent.keyword(text)
    result: unrouted.Unrouted | None = None
    with new_session() as session, session.begin():
        matches = candidates(session, phone, to)
        patient = matches[0] if len(matches) == 1 else None
        if keyword == "opt_out" and patient is not None and consent.soft_opt_out(text) and \
                programs.in_exercise(session, patient.id):
            keyword = None  # QUIT/CANCEL/END mid-exercise: leave the exercise, not every text
        key = f"in:{message_sid}" if message_sid else None
        if key and session.execute(select(Message.id).where(Message.idempotency_key == key)).first():
            logger.info("duplicate inbound SMS %s ignored", message_sid)
            return Routed(None, None)
        session.add(Message(patient_id=patient.id if patient else None, direction="in",
                            channel="sms", to=to or "painpath", from_=phone, body=text[:4000],
                            status="received", provider_sid=message_sid, idempotency_key=key))
        _apply_consent(session, phone, keyword)
        if len(matches) > 1:
            logger.info("inbound SMS %s matches patients at %d clinics: not routed to any",
                        message_sid, len(matches))
            result = _unrouted(session, matches, keyword, text)
        wordless = patient is not None and keyword is None and not text.strip()
        if wordless and media:
            # most often a photo of the injection site or a wound: a task for a nurse
            raise_flag(session, patient.id, "routine", [PICTURE_NOTE], kind="picture")
        if not matches:
            logger.info("inbound SMS from unknown number %s", mask(phone))
        patient_id = patient.id if patient else None
        active = [e for e in patient.enrollments if e.status == "active"] if patient else []
        procedure = active[-1].procedure if active else None
        glucose_limit = active[-1].glucose_limit_mg_dl if active else None
        clinic = patient.clinic if patient else None
        clinic_name = clinic.name if clinic else ""
        clinic_phone = (clinic.phone or "your clinic") if clinic else ""
        emergency = (clinic.emergency_number or "911") if clinic else "911"
    if result is not None:
        _send_unrouted(phone, to, result, message_sid)
        return Routed(None, None)
    if patient_id is None:
        if keyword != "opt_out":
            send_sms(phone, message("unknown_sms_number"), from_=to,
                     idempotency_key=f"unknown:{message_sid}" if message_sid else None)
        return Routed(None, None)
    if keyword == "opt_out":
        # Twilio's own opt-out handling confirms and blocks further sends.
        return Routed(patient_id, None)
    if keyword == "help":
        send_sms(phone, message("help_text", clinic=clinic_name, clinic_phone=clinic_phone,
                                emergency_number=emergency), patient_id=patient_id)
        return Routed(patient_id, None)
    if keyword == "opt_in":
        return Routed(patient_id, None)
    if wordless:  # no words: not a turn (Rasa's classifier needs a token)
        send_to_patient(patient_id, message("picture_received", clinic_phone=clinic_phone,
                                            emergency_number=emergency)
                        if media else message("empty_sms"))
        return Routed(patient_id, None)
    return Routed(patient_id, text, procedure, glucose_limit)


def send_to_patient(patient_id: str, text: str) -> Message | None:
    """Send the bot's `text` to the patient's phone, unless they opted out. While a
    crisis is unresolved it carries the safety numbers (painpath/crisis.py)."""
    with new_session() as session:
        patient = session.get(Patient, patient_id)
        if patient is None:
            logger.warning("reply to unknown patient id %s dropped", patient_id)
            return None
        if patient.sms_opted_out:
            logger.info("patient %s opted out; SMS not sent", patient_id)
            return None
        phone = patient.phone
        texts = with_safety_numbers(session, patient_id, [text])
    sent = None
    for body in texts:
        sent = send_sms(phone, body, patient_id=patient_id)
    return sent


# An inbound SMS forwarded to the assistant is "received" while its turn runs,
# "handled" after it, "unhandled" if the turn failed (the webhook answered 500).
# Twilio retries a failed webhook (README: `#rc=3&rp=ct,5xx`) with the same
# MessageSid; the replay guard must let exactly that retry through, once.
STALE_TURN = timedelta(seconds=90)  # longer than any turn (Rasa's lock lives 60 s)


def mark_inbound(message_sid: str, status: str) -> None:
    """Record the outcome of the turn an inbound SMS started: handled or unhandled."""
    assert status in ("handled", "unhandled")
    with new_session() as session, session.begin():
        session.execute(update(Message).where(
            Message.provider_sid == message_sid, Message.direction == "in",
            Message.status.in_(("received", "retrying"))).values(status=status))


def _handled_here(session, row: Message) -> bool:  # type: ignore[no-untyped-def]
    """A keyword answered before the conversation (never a turn); QUIT, CANCEL or END
    mid-exercise was a turn (it leaves the exercise)."""
    if consent.keyword(row.body) is None:
        return False
    return not (consent.soft_opt_out(row.body) and programs.in_exercise(session, row.patient_id))


def retry_inbound(message_sid: str) -> Routed | None:
    """Twilio sent an SMS we recorded before: its turn again if the first attempt
    failed (or died: still "received" after STALE_TURN), claimed atomically so that
    concurrent retries run it once; None for a replay that must be ignored."""
    with new_session() as session, session.begin():
        row = session.execute(select(Message).where(
            Message.provider_sid == message_sid, Message.direction == "in",
            Message.patient_id.is_not(None))).scalars().first()
        if row is None or row.status not in ("unhandled", "received") or \
                _handled_here(session, row) or not row.body.strip():
            return None  # handled, being handled, or never a turn (keywords, pictures)
        patient = session.get(Patient, row.patient_id)
        if patient is None:
            return None
        claimed = session.execute(update(Message).where(
            Message.id == row.id,
            (Message.status == "unhandled") | ((Message.status == "received")
                                               & (Message.created_at < utcnow() - STALE_TURN))
        ).values(status="retrying").execution_options(synchronize_session=False)).rowcount
        if claimed != 1:
            return None  # its turn is still running, or another retry took it
        active = [e for e in patient.enrollments if e.status == "active"]
        logger.info("Twilio retried inbound SMS %s after a failed turn: processing it again",
                    message_sid)
        return Routed(patient.id, row.body, active[-1].procedure if active else None,
                      active[-1].glucose_limit_mg_dl if active else None)
