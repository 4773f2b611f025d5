"""End to end over SMS: the real Rasa server, action server and web app, the real
`twilio` client against a fake Twilio server on 127.0.0.1, signed webhooks."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

pytestmark = pytest.mark.stack


def enroll(stack, phone: str, procedure: str = "epidural_steroid_injection",
           hours_ago: float = 7, **extra: str) -> str:
    when = (datetime.now(timezone.utc) - timedelta(hours=hours_ago)).isoformat()
    args = ["enroll", "--clinic", "e2e", "--phone", phone, "--procedure", procedure,
            "--procedure-at", when, "--timezone", "America/New_York", "--name", "Pat Example"]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    return stack.cli(*args).stdout.strip()


def reply_to(stack, phone: str, body: str) -> list[str]:
    """Send `body` from `phone`; return the bodies of the SMS the bot sent back."""
    before = len(stack.twilio.sent_to(phone))
    resp = stack.sms(phone, body)
    assert resp.status_code == 200, resp.text
    return [m.body for m in stack.twilio.sent_to(phone)[before:]]


def answer_mood(stack, phone: str, asked: list[str], answers=("0", "0", "0", "0")) -> list[str]:
    """The PHQ-4 that ends the first check-in (CLINICAL.md §5): `asked` holds its first
    question; returns the replies to the last answer (the summary)."""
    assert any("Over the last 2 weeks" in b for b in asked), asked
    for answer in answers[:-1]:
        assert any("Over the last 2 weeks" in b for b in reply_to(stack, phone, answer))
    return reply_to(stack, phone, answers[-1])


def test_complete_checkin_by_sms(stack) -> None:
    phone = "+14155550123"
    patient_id = enroll(stack, phone)
    stack.cli("checkin", "start", "--patient", patient_id)
    first = stack.twilio.wait_for_count(phone, 2)
    assert "check-in" in first[0].body
    assert "weakness or numbness" in first[1].body  # the red-flag screen comes first

    assert any("headache" in b for b in reply_to(stack, phone, "no"))
    assert any("Before your procedure" in b for b in reply_to(stack, phone, "nope"))
    assert any("right now" in b for b in reply_to(stack, phone, "it was an 8"))
    # an unusable answer gets a short re-ask saying what is expected
    reask = reply_to(stack, phone, "pretty bad honestly")
    assert reask == ["Please reply with one number from 0 (no pain) to 10 (worst pain imaginable)."]
    assert any("relief" in b for b in reply_to(stack, phone, "was 8 now 3"))
    done = answer_mood(stack, phone, reply_to(stack, phone, "about 60%"),
                       ("not at all", "1", "several days", "0"))
    summary = " ".join(done)
    assert "8 before the procedure -> 3 now" in summary
    assert "60%" in summary

    record = stack.show(patient_id)
    assert record["id"] == patient_id
    assert record["procedure"] == "epidural_steroid_injection"
    checkin = record["checkins"][0]
    assert checkin["status"] == "completed"
    assert checkin["answers"] == {"safety_neuro": 0, "safety_headache": 0, "pain_baseline": 8,
                                  "pain_now": 3, "percent_relief": 60, "phq_interest": 0,
                                  "phq_down": 1, "gad_nervous": 1, "gad_worry": 0}
    assert {m["direction"] for m in record["messages"]} == {"in", "out"}
    assert record["escalations"] == []


def test_two_failures_record_unanswered_and_move_on(stack) -> None:
    phone = "+14155550124"
    patient_id = enroll(stack, phone, baseline_pain="7")
    stack.cli("checkin", "start", "--patient", patient_id)
    stack.twilio.wait_for_count(phone, 2)
    reply_to(stack, phone, "no")
    reply_to(stack, phone, "no")
    assert reply_to(stack, phone, "dunno")[0].startswith("Please reply with one number")
    moved = reply_to(stack, phone, "no idea really")
    assert moved[0] == "That's OK, let's move on."
    assert any("relief" in b for b in moved)
    done = " ".join(answer_mood(stack, phone, reply_to(stack, phone, "half")))
    assert "50%" in done
    answers = stack.show(patient_id)["checkins"][0]["answers"]
    assert answers["pain_now"] is None and answers["percent_relief"] == 50


def test_pause_and_resume(stack) -> None:
    phone = "+14155550125"
    patient_id = enroll(stack, phone, baseline_pain="6")
    stack.cli("checkin", "start", "--patient", patient_id)
    stack.twilio.wait_for_count(phone, 2)
    reply_to(stack, phone, "no")
    paused = reply_to(stack, phone, "later")
    assert any("paused" in b for b in paused)
    assert stack.show(patient_id)["checkins"][0]["status"] == "paused"
    resumed = reply_to(stack, phone, "resume")
    assert any("pick up" in b for b in resumed)
    assert any("headache" in b for b in resumed)  # the next unanswered question
    reply_to(stack, phone, "no")
    reply_to(stack, phone, "4")
    done = " ".join(answer_mood(stack, phone, reply_to(stack, phone, "30")))
    assert "6 before the procedure -> 4 now" in done
    assert stack.show(patient_id)["checkins"][0]["status"] == "completed"


def test_yes_to_an_emergency_safety_question_escalates(stack) -> None:
    phone = "+14155550126"
    patient_id = enroll(stack, phone, procedure="trigger_point_injection", baseline_pain="5")
    stack.cli("checkin", "start", "--patient", patient_id)
    assert "shortness of breath" in stack.twilio.wait_for_count(phone, 2)[1].body
    replies = reply_to(stack, phone, "yes")
    assert any("call 911" in b and "Do not wait" in b for b in replies)
    nurse = stack.twilio.wait_for_count("+14155550166", 1)
    assert "EMERGENCY" in nurse[-1].body and "/escalations/" in nurse[-1].body
    assert "trigger" not in nurse[-1].body.lower()
    record = stack.show(patient_id)
    assert [e["tier"] for e in record["escalations"]] == ["emergency"]
    assert record["checkins"][0]["status"] == "completed"


def test_forged_signature_is_refused_and_changes_nothing(stack) -> None:
    phone = "+14155550127"
    patient_id = enroll(stack, phone)
    before = stack.show(patient_id)
    sent_before = len(stack.twilio.messages)
    resp = stack.sms(phone, "checkin", signature="forged-signature=")
    assert resp.status_code == 403
    resp = stack.sms(phone, "checkin", signature="")
    assert resp.status_code == 403
    assert stack.show(patient_id) == before
    assert len(stack.twilio.messages) == sent_before


def test_unknown_number_gets_a_polite_message(stack) -> None:
    phone = "+14155550188"
    resp = stack.sms(phone, "hello, is this the clinic?")
    assert resp.status_code == 200
    sent = stack.twilio.wait_for_count(phone, 1)
    assert "doesn't match a patient" in sent[0].body


def test_enroll_rejects_bad_input_and_writes_nothing(stack) -> None:
    cases = [
        ["--phone", "12345", "--procedure", "epidural_steroid_injection"],
        ["--phone", "+14155550129", "--procedure", "acupuncture"],
        ["--phone", "+14155550129", "--procedure", "epidural_steroid_injection",
         "--timezone", "Mars/Olympus"],
    ]
    for extra in cases:
        result = stack.cli("enroll", "--clinic", "e2e", "--procedure-at",
                           "2026-11-20T09:30:00-05:00", *extra, check=False)
        assert result.returncode != 0
        assert "error" in result.stderr
    # a valid enrolment for the same number still works: nothing was half-written
    assert enroll(stack, "+14155550129")
