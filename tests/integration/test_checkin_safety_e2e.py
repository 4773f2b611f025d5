"""The check-in's safety questions over signed SMS (and one in the web chat), through
the real Rasa server, action server and web app with the fake Twilio server: the
swallow question's polarity, the pump overdose question, the neuro follow-up, the
infection follow-up, and a safety question answered unclearly twice (issue 12)."""
from __future__ import annotations

import httpx
import pytest

from tests.integration.test_sms_checkin_e2e import enroll, reply_to

pytestmark = pytest.mark.stack

NURSE = "+14155550166"


def start(stack, phone: str, procedure: str, hours_ago: float) -> tuple[str, list[str]]:
    """Enrol (baseline pain given, so it is not asked) and start the first check-in;
    returns the patient id and the first question."""
    patient_id = enroll(stack, phone, procedure=procedure, hours_ago=hours_ago,
                        baseline_pain="6")
    stack.cli("checkin", "start", "--patient", patient_id)
    first = stack.twilio.wait_for_count(phone, 2)
    return patient_id, [m.body for m in first]


def nurse_pages(stack) -> list[str]:
    return [m.body for m in stack.twilio.sent_to(NURSE)]


def tiers(stack, patient_id: str) -> list[str]:
    return [e["tier"] for e in stack.show(patient_id)["escalations"]]


def test_swallow_question_asks_about_trouble_so_a_plain_no_is_normal(stack) -> None:
    phone = "+14155550201"
    patient_id, first = start(stack, phone, "sympathetic_block", hours_ago=7)
    assert "shortness of breath" in first[1]
    swallow = reply_to(stack, phone, "no")
    assert swallow == ["Do you have trouble swallowing sips of water? Reply YES or NO."]
    assert any("weakness or numbness" in b for b in reply_to(stack, phone, "no"))
    record = stack.show(patient_id)
    assert record["checkins"][0]["answers"]["safety_swallow"] == 0
    assert record["escalations"] == []

    phone = "+14155550202"
    patient_id, _ = start(stack, phone, "sympathetic_block", hours_ago=7)
    reply_to(stack, phone, "no")
    before = len(nurse_pages(stack))
    replies = reply_to(stack, phone, "yes")
    assert "will call you by" in replies[0]
    assert any("weakness or numbness" in b for b in replies)  # the check-in goes on
    assert "URGENT" in stack.twilio.wait_for_count(NURSE, before + 1)[-1].body
    assert tiers(stack, patient_id) == ["urgent"]


def test_pump_yes_to_overdose_signs_is_911_and_an_emergency_page(stack) -> None:
    phone = "+14155550203"
    patient_id, first = start(stack, phone, "intrathecal_pump", hours_ago=25)
    assert "hard to wake up" in first[1] and "slow or shallow" in first[1]
    before = len(nurse_pages(stack))
    replies = reply_to(stack, phone, "yes")
    assert len(replies) == 1 and "call 911" in replies[0] and "Do not wait" in replies[0]
    page = stack.twilio.wait_for_count(NURSE, before + 1)[-1].body
    assert "EMERGENCY" in page and "pump" not in page.lower()
    record = stack.show(patient_id)
    assert [e["tier"] for e in record["escalations"]] == ["emergency"]
    assert record["checkins"][0]["status"] == "completed"


def test_pump_no_then_the_alarm_and_withdrawal_question(stack) -> None:
    phone = "+14155550204"
    patient_id, _ = start(stack, phone, "intrathecal_pump", hours_ago=25)
    nxt = reply_to(stack, phone, "no")
    assert any("pump alarm" in b for b in nxt)
    replies = reply_to(stack, phone, "yes")
    assert "will call you by" in replies[0]
    assert any("high fever" in b for b in replies)  # the follow-up
    assert tiers(stack, patient_id) == ["urgent"]


def test_neuro_yes_then_same_is_a_nurse_call_and_next_time_asks_since_last_checkin(stack) -> None:
    phone = "+14155550205"
    patient_id, first = start(stack, phone, "epidural_steroid_injection", hours_ago=7)
    assert first[1].startswith("Since your procedure, have you had any of these: NEW weakness")
    before = len(nurse_pages(stack))
    replies = reply_to(stack, phone, "yes")
    assert "will call you by" in replies[0]
    assert "Reply SAME" in replies[-1] and "Reply WORSE if it is getting worse" in replies[-1]
    assert "call 911 now" in replies[-1]
    assert "URGENT" in stack.twilio.wait_for_count(NURSE, before + 1)[-1].body
    nxt = reply_to(stack, phone, "same, improving")
    assert len(nxt) == 1 and "headache" in nxt[0]
    reply_to(stack, phone, "no")
    reply_to(stack, phone, "3")
    assert any("Over the last 2 weeks" in b for b in reply_to(stack, phone, "50"))
    done = " ".join(sum((reply_to(stack, phone, "0") for _ in range(4)), []))  # the PHQ-4
    assert "check-in done" in done
    record = stack.show(patient_id)
    assert [e["tier"] for e in record["escalations"]] == ["urgent"]
    answers = record["checkins"][0]["answers"]
    assert answers["safety_neuro"] == 1 and answers["safety_neuro_change"] == 0
    assert len(nurse_pages(stack)) == before + 1  # no emergency page

    sent = len(stack.twilio.sent_to(phone))
    stack.cli("checkin", "start", "--patient", patient_id)
    later = stack.twilio.wait_for_count(phone, sent + 2)[-1].body  # intro, first question
    assert later.startswith("Since your last check-in, have you had any of these: new or worse "
                            "weakness")


def test_neuro_yes_then_getting_worse_is_an_emergency(stack) -> None:
    phone = "+14155550206"
    patient_id, _ = start(stack, phone, "epidural_steroid_injection", hours_ago=7)
    reply_to(stack, phone, "yes")
    before = len(nurse_pages(stack))
    replies = reply_to(stack, phone, "getting worse")
    assert len(replies) == 1 and "call 911" in replies[0]
    assert "EMERGENCY" in stack.twilio.wait_for_count(NURSE, before + 1)[-1].body
    record = stack.show(patient_id)
    assert [e["tier"] for e in record["escalations"]] == ["urgent", "emergency"]
    assert record["checkins"][0]["answers"]["safety_neuro_change"] == 1
    # the conversation is not stuck in the form afterwards
    assert any("check-in" in b.lower() for b in reply_to(stack, phone, "hello"))


def test_a_safety_question_unclear_twice_goes_one_tier_up(stack) -> None:
    phone = "+14155550207"
    patient_id, _ = start(stack, phone, "epidural_steroid_injection", hours_ago=7)
    reply_to(stack, phone, "no")  # neuro
    reask = reply_to(stack, phone, "hmm")  # headache (urgent)
    assert reask == ["Please reply YES or NO: a headache that is worse when you sit or stand up?"]
    before = len(nurse_pages(stack))
    replies = reply_to(stack, phone, "not sure")
    assert replies[0].startswith("I couldn't tell your answer to that safety question")
    assert "call 911" in replies[1]
    assert "EMERGENCY" in stack.twilio.wait_for_count(NURSE, before + 1)[-1].body
    record = stack.show(patient_id)
    assert [e["tier"] for e in record["escalations"]] == ["emergency"]
    assert record["escalations"][0]["reasons"] == [
        "safety question not answered clearly (asked twice): Headache worse sitting or standing"]
    assert record["checkins"][0]["answers"]["safety_headache"] is None


def test_infection_yes_with_a_stiff_neck_is_an_emergency(stack) -> None:
    phone = "+14155550208"
    patient_id, first = start(stack, phone, "prp_injection", hours_ago=25)
    assert "fever" in first[1]
    replies = reply_to(stack, phone, "yes")
    assert "will call you by" in replies[0]
    assert replies[-1].startswith("Do you also have any of these: a stiff neck")
    before = len(nurse_pages(stack))
    replies = reply_to(stack, phone, "yes my neck is stiff")
    assert "call 911" in replies[0]
    assert "EMERGENCY" in stack.twilio.wait_for_count(NURSE, before + 1)[-1].body
    assert tiers(stack, patient_id) == ["urgent", "emergency"]


def test_infection_yes_without_warning_signs_stays_urgent(stack) -> None:
    phone = "+14155550209"
    patient_id, _ = start(stack, phone, "prp_injection", hours_ago=25)
    reply_to(stack, phone, "yes")
    nxt = reply_to(stack, phone, "no")
    assert any("right now" in b for b in nxt)  # pain now: the check-in goes on
    assert tiers(stack, patient_id) == ["urgent"]


def test_neuro_follow_up_in_the_web_chat(stack) -> None:
    patient_id = stack.cli("enroll", "--clinic", "e2e", "--phone", "+14155550210",
                           "--procedure", "epidural_steroid_injection", "--procedure-at",
                           "2026-11-20T09:00:00Z", "--channel", "web",
                           "--baseline-pain", "6").stdout.strip()
    token = stack.cli("chat-link", "--patient", patient_id).stdout.strip().rsplit("/", 1)[-1]

    def say(text: str) -> list[str]:
        resp = httpx.post(f"{stack.stack.web_url}/chat/{token}/messages", json={"text": text},
                          timeout=60)
        assert resp.status_code == 200
        return [m["body"] for m in resp.json()["messages"] if m["direction"] == "out"]

    stack.cli("checkin", "start", "--patient", patient_id)
    replies = say("yes")
    assert "will call you by" in replies[0] and "Reply SAME" in replies[-1]
    replies = say("it's worse, spreading down my leg")
    assert any("call 911" in b for b in replies)
    assert tiers(stack, patient_id) == ["urgent", "emergency"]
