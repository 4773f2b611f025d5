"""Mood screening over SMS with the real stack (CLINICAL.md §2.2, §2.4, §6): a PHQ-2
of 3 or more leads to the ASQ questions in the check-in, a yes asks ASQ item 5
through the screening path; a clinic may send the mood questions as a chat link."""
from __future__ import annotations

import pytest

from tests.integration.test_sms_checkin_e2e import enroll, reply_to

pytestmark = pytest.mark.stack


def _to_mood(stack, phone: str, patient_id: str) -> list[str]:
    """Start the first check-in and answer up to the PHQ-4; the replies that ask it."""
    stack.cli("checkin", "start", "--patient", patient_id)
    stack.twilio.wait_for_count(phone, 2)
    reply_to(stack, phone, "no")
    reply_to(stack, phone, "no")
    reply_to(stack, phone, "3")
    return reply_to(stack, phone, "50")


def test_positive_phq2_asks_the_asq_and_a_yes_asks_asq5(stack) -> None:
    phone = "+14155550181"
    patient_id = enroll(stack, phone, baseline_pain="6")
    assert any("little interest or pleasure" in b for b in _to_mood(stack, phone, patient_id))
    reply_to(stack, phone, "2")
    reply_to(stack, phone, "more than half the days")  # PHQ-2 = 4
    reply_to(stack, phone, "0")
    asq = reply_to(stack, phone, "0")
    assert any("In the past few weeks, have you wished you were dead?" in b for b in asq)
    crisis = reply_to(stack, phone, "yes")
    assert "988" in crisis[0]
    assert crisis[-1].startswith("Are you having thoughts of killing yourself right now?")
    assert "will call you today by" in reply_to(stack, phone, "no")[0]
    record = stack.show(patient_id)
    [esc] = record["escalations"]
    assert esc["tier"] == "crisis"
    assert any("ASQ item 1" in r for r in esc["reasons"])
    assert record["checkins"][0]["answers"]["asq_wished_dead"] == 1


def test_mood_by_link_sends_a_chat_link_instead_of_the_items(stack) -> None:
    phone = "+14155550182"
    patient_id = enroll(stack, phone, baseline_pain="6")
    stack.cli("clinic", "set", "--clinic", "e2e", "--mood-by-link", "on")
    try:
        asked = _to_mood(stack, phone, patient_id)
    finally:
        stack.cli("clinic", "set", "--clinic", "e2e", "--mood-by-link", "off")
    assert any("/chat/" in b for b in asked)
    assert not any("Over the last 2 weeks" in b for b in asked)
