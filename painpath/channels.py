"""Starting conversations from outside (CLI, scheduler) through the patient's channel."""
from __future__ import annotations

import logging
from typing import Any

from painpath import outreach
from painpath.checkins import next_checkin
from painpath.db import new_session
from painpath.models import Message, Patient
from painpath.rasa_client import START_CHECKIN_INTENT, trigger_intent

logger = logging.getLogger(__name__)

SMS_CHANNEL = "twilio"  # the PainPath Rasa input channel's name


def record_web_replies(patient_id: str, bot_messages: list[dict[str, Any]]) -> None:
    """Store bot messages for a web-chat patient; the chat page polls them."""
    with new_session() as session, session.begin():
        for m in bot_messages:
            if m.get("text"):
                session.add(Message(patient_id=patient_id, direction="out", channel="web",
                                    to="web", from_="bot", body=m["text"], status="delivered"))


def start_checkin(patient_id: str) -> dict[str, Any]:
    """Start the patient's next check-in now, as the scheduler would.

    Raises:
        LookupError: unknown patient, nothing to start, SMS opted out, or outreach held
        (an open emergency or crisis escalation: painpath/outreach.py).
    """
    with new_session() as session:
        patient = session.get(Patient, patient_id)
        if patient is None:
            raise LookupError(f"no patient {patient_id!r}")
        checkin = next_checkin(session, patient_id)
        if checkin is None:
            raise LookupError(f"patient {patient_id} has no check-in to start")
        if patient.channel == "sms" and patient.sms_opted_out:
            raise LookupError(f"patient {patient_id} has opted out of SMS (replied STOP)")
        outreach.refuse_if_held(session, patient_id)
        channel, checkin_id = patient.channel, checkin.id
    output = SMS_CHANNEL if channel == "sms" else None
    messages = trigger_intent(patient_id, START_CHECKIN_INTENT,
                              entities={"checkin_id": str(checkin_id)}, output_channel=output)
    if channel == "web":
        record_web_replies(patient_id, messages)
    logger.info("check-in %s started for patient %s by %s", checkin_id, patient_id, channel)
    return {"patient_id": patient_id, "checkin_id": checkin_id, "channel": channel,
            "messages": [m.get("text") for m in messages if m.get("text")]}
