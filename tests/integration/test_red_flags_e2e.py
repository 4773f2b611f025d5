"""Red flags through the real stack: any dialogue state, both channels."""
from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.test_sms_checkin_e2e import enroll, reply_to

pytestmark = pytest.mark.stack

NURSE = "+14155550166"


def test_emergency_mid_checkin_interrupts_and_pages(stack) -> None:
    phone = "+14155550141"
    patient_id = enroll(stack, phone, baseline_pain="6")
    stack.cli("checkin", "start", "--patient", patient_id)
    stack.twilio.wait_for_count(phone, 2)
    reply_to(stack, phone, "no")
    pages_before = len(stack.twilio.sent_to(NURSE))
    replies = reply_to(stack, phone, "ok but since lunch I cant feel my legs and I wet myself")
    assert len(replies) == 1 and "call 911" in replies[0] and "Do not wait" in replies[0]
    page = stack.twilio.wait_for_count(NURSE, pages_before + 1)[-1].body
    assert "EMERGENCY" in page and "/escalations/" in page
    record = stack.show(patient_id)
    assert record["escalations"][-1]["tier"] == "emergency"
    assert record["checkins"][0]["status"] == "paused"
    # the conversation is not stuck in the form afterwards
    assert any("check-in" in b.lower() for b in reply_to(stack, phone, "hello"))


def test_crisis_outside_a_checkin(stack) -> None:
    phone = "+14155550142"
    patient_id = enroll(stack, phone)
    replies = reply_to(stack, phone, "honestly everyone would be better off if i was dead")
    assert "988" in replies[0]
    assert replies[1].startswith("Are you having thoughts of killing yourself right now?")
    assert stack.show(patient_id)["escalations"][-1]["tier"] == "crisis"


def test_urgent_mid_checkin_alerts_and_the_checkin_goes_on(stack) -> None:
    phone = "+14155550143"
    patient_id = enroll(stack, phone, baseline_pain="6")
    stack.cli("checkin", "start", "--patient", patient_id)
    stack.twilio.wait_for_count(phone, 2)
    reply_to(stack, phone, "no")
    reply_to(stack, phone, "no")
    replies = reply_to(stack, phone, "my temp is 101.8 this morning")
    assert "will call you by" in replies[0]
    assert "right now" in replies[-1]  # the open question is asked again
    reply_to(stack, phone, "3")
    assert any("Over the last 2 weeks" in b for b in reply_to(stack, phone, "50"))
    done = " ".join(sum((reply_to(stack, phone, "0") for _ in range(4)), []))  # the PHQ-4
    assert "6 before the procedure -> 3 now" in done
    record = stack.show(patient_id)
    assert [e["tier"] for e in record["escalations"]] == ["urgent"]
    assert record["checkins"][0]["status"] == "completed"


def test_negations_do_not_escalate(stack) -> None:
    phone = "+14155550144"
    patient_id = enroll(stack, phone)
    reply_to(stack, phone, "no fever, no numbness, no redness. all good")
    assert stack.show(patient_id)["escalations"] == []


def test_someone_elses_emergency_over_sms_says_call_911_and_pages_nobody(stack) -> None:
    phone = "+14155550147"
    patient_id = enroll(stack, phone)
    pages_before = len(stack.twilio.sent_to(NURSE))
    replies = reply_to(stack, phone, "sorry, my husband is having chest pains right now, "
                                     "hes not the patient, I am. will do the check in later")
    assert "call 911 now for them" in replies[0]
    assert [e["tier"] for e in stack.show(patient_id)["escalations"]] == ["routine"]
    assert len(stack.twilio.sent_to(NURSE)) == pages_before


def test_red_flag_in_the_web_chat(stack) -> None:
    patient_id = stack.cli("enroll", "--clinic", "e2e", "--phone", "+14155550145",
                           "--procedure", "intrathecal_pump", "--procedure-at",
                           "2026-11-20T09:00:00Z", "--channel", "web").stdout.strip()
    url = stack.cli("chat-link", "--patient", patient_id).stdout.strip()
    token = url.rsplit("/", 1)[-1]
    resp = httpx.post(f"{stack.stack.web_url}/chat/{token}/messages",
                      json={"text": "the pump is beeping and wont stop"}, timeout=60)
    assert resp.status_code == 200
    bot = [m["body"] for m in resp.json()["messages"] if m["direction"] == "out"]
    assert any("will call you by" in b for b in bot)
    assert stack.show(patient_id)["escalations"][-1]["tier"] == "urgent"


def test_rasa_web_channel_refuses_unsigned_messages(stack) -> None:
    patient_id = stack.cli("enroll", "--clinic", "e2e", "--phone", "+14155550146",
                           "--procedure", "prp_injection", "--procedure-at",
                           "2026-11-20T09:00:00Z", "--channel", "web").stdout.strip()
    body = json.dumps({"sender": patient_id, "message": "checkin"})
    for headers in ({}, {"X-PainPath-Signature": "0" * 64}):
        resp = httpx.post(f"{stack.stack.rasa_url}/webhooks/web/webhook", content=body,
                          headers={"Content-Type": "application/json", **headers}, timeout=30)
        assert resp.status_code == 403
    assert httpx.post(f"{stack.stack.rasa_url}/webhooks/rest/webhook", content=body,
                      timeout=30).status_code == 404  # Rasa's open REST channel is not enabled
    assert stack.show(patient_id)["messages"] == []
