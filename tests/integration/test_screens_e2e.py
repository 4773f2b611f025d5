"""Direct safety screens and the crisis rules over the real stack: signed SMS in,
the real Rasa server and action server, the real `twilio` client against a fake
Twilio server; the timeout is the scheduler's own job run through its CLI."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from painpath.db import new_session
from painpath.models import SafetyScreen
from tests.integration.test_sms_checkin_e2e import enroll, reply_to

pytestmark = pytest.mark.stack

NURSE = "+14155550166"  # the stack's on-call nurse
ASQ5 = "Are you having thoughts of killing yourself right now?"
NEURO = "Is the weakness or numbness new, getting worse or spreading?"

# Messages the triage engine answers with a screen (and no tier of their own, or a
# crisis). The learned layer may change: `screened` checks them first, so a model
# that no longer screens them fails here, loudly, instead of passing silently.
SCREENED = {
    "my legs feel weird": ("none", "neuro"),
    "my leg feels kind of funny since this morning": ("none", "neuro"),
    "my arm feels strange": ("none", "neuro"),
    "honestly everyone would be better off if i was dead": ("crisis", "asq5"),
    "i feel like i cant go on like this": ("crisis", "asq5"),
    "I want to end my life tonight": ("crisis", "asq5"),
}


@pytest.fixture(scope="module")
def screened(stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    path = Path(tmp_path_factory.mktemp("screens")) / "messages.jsonl"
    path.write_text("".join(json.dumps({"text": t, "procedure": "epidural_steroid_injection"})
                            + "\n" for t in SCREENED))
    out = stack.cli("triage", "--jsonl", str(path)).stdout
    found = {row["text"]: (row["tier"], row["screen"])
             for row in map(json.loads, out.splitlines())}
    assert found == SCREENED, "the triage engine no longer screens these test messages"
    return found


def pages_for(stack, escalation_id: int, before: int = 0) -> list[str]:
    """The alerts paged for escalation `escalation_id` (other tests share the nurse)."""
    return [m.body for m in stack.twilio.sent_to(NURSE)[before:]
            if m.body.startswith(f"PainPath alert #{escalation_id}:")]


def screens_of(stack, patient_id: str) -> list[tuple[str, str]]:
    with new_session(stack.database_url) as session:
        return [(r.screen_id, r.status) for r in session.execute(
            select(SafetyScreen).where(SafetyScreen.patient_id == patient_id)
            .order_by(SafetyScreen.id)).scalars()]


def test_yes_to_a_screen_escalates_at_its_tier(stack, screened) -> None:
    phone = "+14155550761"
    patient_id = enroll(stack, phone)
    assert reply_to(stack, phone, "my legs feel weird")[0].startswith(NEURO)
    assert screens_of(stack, patient_id) == [("neuro", "pending")]
    replies = reply_to(stack, phone, "yes")
    assert len(replies) == 1 and "call 911" in replies[0]
    [esc] = stack.show(patient_id)["escalations"]
    assert esc["tier"] == "emergency" and esc["reasons"] == ["screen neuro answered YES"]
    assert pages_for(stack, esc["id"])[0].startswith(f"PainPath alert #{esc['id']}: EMERGENCY")
    assert screens_of(stack, patient_id) == [("neuro", "yes")]


def test_an_unclear_answer_escalates(stack, screened) -> None:
    phone = "+14155550762"
    patient_id = enroll(stack, phone)
    assert reply_to(stack, phone, "my leg feels kind of funny since this morning")[0].startswith(NEURO)
    assert "call 911" in reply_to(stack, phone, "not sure tbh")[0]
    [esc] = stack.show(patient_id)["escalations"]
    assert esc["reasons"] == ["screen neuro answered unclearly"]
    assert pages_for(stack, esc["id"])


def test_a_second_screened_message_answers_the_first_never_stacks(stack, screened) -> None:
    phone = "+14155550771"
    patient_id = enroll(stack, phone)
    assert reply_to(stack, phone, "my legs feel weird")[0].startswith(NEURO)
    replies = reply_to(stack, phone, "my leg feels kind of funny since this morning")
    assert len(replies) == 1 and "call 911" in replies[0]  # unclear: escalated, not re-asked
    assert screens_of(stack, patient_id) == [("neuro", "unclear")]


def test_no_mid_checkin_notes_it_and_the_checkin_resumes(stack, screened) -> None:
    phone = "+14155550763"
    patient_id = enroll(stack, phone, baseline_pain="6")
    stack.cli("checkin", "start", "--patient", patient_id)
    stack.twilio.wait_for_count(phone, 2)
    assert any("headache" in b for b in reply_to(stack, phone, "no"))
    # a screen interrupts the open question, and is the only thing asked
    assert reply_to(stack, phone, "my legs feel weird") == [_first_line(NEURO, stack, patient_id)]
    replies = reply_to(stack, phone, "no")
    assert replies[0] == "Thanks, noted. I've passed that on to your care team."
    assert "headache" in replies[-1]  # the same question again
    reply_to(stack, phone, "no")
    reply_to(stack, phone, "3")
    assert any("Over the last 2 weeks" in b for b in reply_to(stack, phone, "50"))
    done = " ".join(sum((reply_to(stack, phone, "0") for _ in range(4)), []))  # the PHQ-4
    assert "6 before the procedure -> 3 now" in done
    record = stack.show(patient_id)
    assert record["checkins"][0]["status"] == "completed"
    assert [(e["tier"], e["status"], e["reasons"]) for e in record["escalations"]] == \
        [("routine", "noted", ["screen neuro answered NO"])]
    assert screens_of(stack, patient_id) == [("neuro", "no")]


def _first_line(question: str, stack, patient_id: str) -> str:
    """The screen question exactly as recorded for the patient."""
    with new_session(stack.database_url) as session:
        row = session.execute(select(SafetyScreen).where(
            SafetyScreen.patient_id == patient_id)).scalars().first()
    assert row.question.startswith(question)
    return row.question


def test_silence_is_escalated_by_the_timeout_job(stack, screened) -> None:
    phone = "+14155550764"
    patient_id = enroll(stack, phone)
    reply_to(stack, phone, "my arm feels strange")
    with new_session(stack.database_url) as session:
        due = session.execute(select(SafetyScreen.due_at).where(
            SafetyScreen.patient_id == patient_id)).scalar_one()
    before = len(stack.twilio.sent_to(phone))
    stack.cli("screens", "expire", "--now", (due - timedelta(seconds=30)).isoformat())
    assert stack.show(patient_id)["escalations"] == []  # not yet due: nothing
    stack.cli("screens", "expire", "--now", (due + timedelta(seconds=5)).isoformat())
    told = [m.body for m in stack.twilio.wait_for_count(phone, before + 1)[before:]]
    assert "call 911" in told[0]
    [esc] = stack.show(patient_id)["escalations"]
    assert esc["tier"] == "emergency" and esc["reasons"] == ["screen neuro: no reply within 10 min"]
    assert len(pages_for(stack, esc["id"])) == 1
    stack.cli("screens", "expire", "--now", (due + timedelta(minutes=5)).isoformat())
    assert len(pages_for(stack, esc["id"])) == 1 and len(stack.twilio.sent_to(phone)) == before + 1
    # a late answer reaches the nurse; the conversation is not stuck
    assert reply_to(stack, phone, "no")[0].startswith("Thanks for answering.")
    assert stack.show(patient_id)["escalations"][0]["reasons"][-1] == \
        "screen neuro answered NO after the timeout"
    assert any("check-in" in b.lower() for b in reply_to(stack, phone, "hello"))


def test_a_leading_slash_is_triaged_over_sms(stack, screened) -> None:
    phone = "+14155550765"
    patient_id = enroll(stack, phone)
    replies = reply_to(stack, phone, "/I want to end my life tonight")
    assert "call or text 988 now" in replies[0] and replies[1].startswith(ASQ5)
    [esc] = stack.show(patient_id)["escalations"]
    assert esc["tier"] == "crisis"
    assert pages_for(stack, esc["id"])[0].startswith(f"PainPath alert #{esc['id']}: CRISIS")


def test_a_leading_slash_is_triaged_in_the_web_chat(stack, screened) -> None:
    patient_id = stack.cli("enroll", "--clinic", "e2e", "--phone", "+14155550767",
                           "--procedure", "epidural_steroid_injection", "--procedure-at",
                           "2026-11-20T09:00:00Z", "--channel", "web").stdout.strip()
    token = stack.cli("chat-link", "--patient", patient_id).stdout.strip().rsplit("/", 1)[-1]
    resp = httpx.post(f"{stack.stack.web_url}/chat/{token}/messages",
                      json={"text": "/I want to end my life tonight"}, timeout=60)
    assert resp.status_code == 200
    bot = [m["body"] for m in resp.json()["messages"] if m["direction"] == "out"]
    assert "call or text 988 now" in bot[0] and bot[1].startswith(ASQ5)
    [esc] = stack.show(patient_id)["escalations"]
    assert esc["tier"] == "crisis" and pages_for(stack, esc["id"])


def test_asq5_yes_is_imminent_then_the_followup_no_adds_a_note(stack, screened) -> None:
    phone = "+14155550768"
    patient_id = enroll(stack, phone)
    replies = reply_to(stack, phone, "honestly everyone would be better off if i was dead")
    assert "988" in replies[0] and replies[1].startswith(ASQ5)
    [esc] = stack.show(patient_id)["escalations"]
    replies = reply_to(stack, phone, "yes")
    assert replies[0].startswith("Please call or text 988 now, or call 911.")
    assert "someone nearby who can stay with you" in replies[1] and "988" in replies[1]
    assert "imminent" in stack.show(patient_id)["escalations"][0]["reasons"]
    assert pages_for(stack, esc["id"])[-1].startswith(
        f"PainPath alert #{esc['id']}: CRISIS (IMMINENT)")
    replies = reply_to(stack, phone, "no, I live alone")
    assert len(replies) == 1 and "988" in replies[0] and "911" in replies[0]
    assert "NO ONE nearby" in stack.show(patient_id)["escalations"][0]["reasons"][-1]
    # every reply after the crisis carries the numbers until a clinician resolves it
    for text in ("thanks", "hello"):
        [reply] = reply_to(stack, phone, text)
        assert reply.endswith("If you are in danger, call or text 988 now, or call 911.")


def test_asq5_no_gives_a_same_day_call_in_local_time(stack, screened) -> None:
    phone = "+14155550769"
    patient_id = enroll(stack, phone)
    reply_to(stack, phone, "i feel like i cant go on like this")
    sent_at = datetime.now(timezone.utc)
    [reply] = reply_to(stack, phone, "no")
    m = re.search(r"will call you today by (\d{1,2}:\d{2} [AP]M)", reply)
    assert m and "988" in reply
    local = (sent_at + timedelta(hours=2)).astimezone(ZoneInfo("America/New_York"))
    nearby = {(local + timedelta(minutes=d)).strftime("%-I:%M %p") for d in (-1, 0, 1)}
    assert m.group(1) in nearby
    [esc] = stack.show(patient_id)["escalations"]
    assert "imminent" not in esc["reasons"] and len(pages_for(stack, esc["id"])) == 1


def test_asq5_silence_is_imminent_and_the_followup_yes_is_answered(stack, screened) -> None:
    phone = "+14155550770"
    patient_id = enroll(stack, phone)
    reply_to(stack, phone, "I want to end my life tonight")
    [esc] = stack.show(patient_id)["escalations"]
    before = len(stack.twilio.sent_to(phone))
    later = datetime.now(timezone.utc) + timedelta(minutes=11)
    stack.cli("screens", "expire", "--now", later.isoformat())
    told = [m.body for m in stack.twilio.wait_for_count(phone, before + 2)[before:]]
    assert told[0].startswith("Please call or text 988 now, or call 911.")
    assert "someone nearby who can stay with you" in told[1]
    assert pages_for(stack, esc["id"])[-1].startswith(
        f"PainPath alert #{esc['id']}: CRISIS (IMMINENT)")
    replies = reply_to(stack, phone, "yes my husband is here")
    assert len(replies) == 1 and replies[0].startswith("I'm glad someone is with you")
    assert "988" in replies[0] and "911" in replies[0]
    assert screens_of(stack, patient_id) == [("asq5", "timeout"), ("crisis_followup", "yes")]
