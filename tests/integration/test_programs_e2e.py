"""Exercises end to end over SMS: the real Rasa server and action server, signed
webhooks, the real `twilio` client against the fake Twilio server."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from painpath import messaging, programs
from painpath.db import new_session
from painpath.models import ExerciseSession, PacingPlan, Patient
from painpath.settings import get_settings
from painpath.sms_text import fits
from tests.integration.test_sms_checkin_e2e import enroll, reply_to

pytestmark = pytest.mark.stack


@pytest.fixture
def in_stack_db(stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process talks to the stack's database, Rasa and fake Twilio."""
    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    messaging.set_gateway(None)
    yield
    get_settings.cache_clear()
    messaging.set_gateway(None)


def daytime_zone() -> str:
    """A time zone where it is mid-morning to afternoon now."""
    now = datetime.now(timezone.utc)
    for name in ("America/New_York", "America/Los_Angeles", "Europe/London", "Asia/Kolkata",
                 "Asia/Tokyo", "Pacific/Auckland", "Pacific/Honolulu"):
        if 10 <= now.astimezone(ZoneInfo(name)).hour < 19:
            return name
    raise AssertionError("no daytime zone found")


def test_breathing_on_request_by_sms(stack) -> None:
    phone = "+14155557141"
    patient_id = enroll(stack, phone)
    first = reply_to(stack, phone, "can we do the breathing thing")
    assert first[0].startswith("Belly breathing (about 3 min)") and "worrying" in first[0]
    assert "Reply OK when you're settled" in reply_to(stack, phone, "no")[0]
    assert "how tense" in reply_to(stack, phone, "ok")[0]
    assert "nose" in reply_to(stack, phone, "7")[0]
    assert "dizzy" in reply_to(stack, phone, "ok")[0]
    assert "How tense do you feel now" in reply_to(stack, phone, "done")[0]
    end = reply_to(stack, phone, "3")
    assert end == ["Tension 7 before, 3 after. A few minutes of belly breathing each day, and "
                   "when pain rises, builds the skill. Reply BREATHE any time to do it again."]
    # the conversation is free again: a menu request is answered normally
    assert "BREATHE" in reply_to(stack, phone, "MENU")[0]
    record = stack.show(patient_id)
    assert all(fits(m["body"]) for m in record["messages"] if m["direction"] == "out")


def test_red_flag_mid_exercise_wins_and_the_exercise_resumes_later(stack, in_stack_db) -> None:
    phone = "+14155557142"
    patient_id = enroll(stack, phone)
    # (the patient's own words for it, "I keep thinking it will never get better", now
    # get ASQ item 5 first: a possible thought of suicide is screened)
    assert "Thought record" in reply_to(stack, phone, "THOUGHTS")[0]
    assert "situation" in reply_to(stack, phone, "no")[0]
    crisis = " ".join(reply_to(stack, phone, "honestly i just want to die"))
    assert "988" in crisis and "thoughts of killing yourself right now" in crisis
    assert "will call you today by" in reply_to(stack, phone, "no")[0]  # ASQ item 5
    with new_session() as session:
        row = session.execute(select(ExerciseSession).where(
            ExerciseSession.patient_id == patient_id)).scalars().one()
        assert row.status == "paused"
    resumed = reply_to(stack, phone, "resume exercise")
    assert resumed[0].startswith("Welcome back to Thought record") and "situation" in resumed[0]
    assert "went through your mind" in reply_to(stack, phone, "at home alone")[0]
    assert "RESUME EXERCISE" in reply_to(stack, phone, "later")[0]
    with new_session() as session:
        assert session.get(ExerciseSession, row.id).status == "paused"


def test_scheduled_pacing_prompt_goes_through_rasa_and_the_report_is_recorded(stack, in_stack_db) -> None:
    phone = "+14155557143"
    patient_id = enroll(stack, phone)
    reply_to(stack, phone, "PACING")
    reply_to(stack, phone, "no")
    assert "Which activity" in reply_to(stack, phone, "ok")[0]
    assert "minutes of walking" in reply_to(stack, phone, "walking")[0]
    assert "2 more days" in reply_to(stack, phone, "15")[0]
    with new_session() as session, session.begin():
        plan = session.execute(select(PacingPlan).where(PacingPlan.patient_id == patient_id)).scalars().one()
        plan.baseline_reports = [15.0, 15.0]  # two more evenings have passed
        due = session.execute(select(ExerciseSession).where(
            ExerciseSession.patient_id == patient_id,
            ExerciseSession.status == "scheduled")).scalars().one()
        due.due_at = datetime.now(timezone.utc) - timedelta(minutes=1)
        session.get(Patient, patient_id).timezone = daytime_zone()  # inside the send window
    before = len(stack.twilio.sent_to(phone))
    assert programs.due_sessions() == [due.id]
    prompt = stack.twilio.wait_for_count(phone, before + 1)[before].body
    assert "Pacing: today, about how many minutes of walking" in prompt, prompt
    started = reply_to(stack, phone, "12")
    assert "On average you managed about 14 minutes. Start with 11 minutes of walking a day" \
        in started[0]
    with new_session() as session:
        plan = session.execute(select(PacingPlan).where(PacingPlan.patient_id == patient_id)).scalars().one()
        assert plan.status == "active" and plan.quota == pytest.approx(11.2)
    assert programs.due_sessions() == []  # tomorrow's prompt is not due yet


def test_rasa_http_api_needs_the_token(stack) -> None:
    """Only the channels' webhooks are open; conversations need a JWT (more in
    tests/security/test_secrets.py)."""
    import httpx

    url = f"{stack.stack.rasa_url}/conversations/anyone/tracker"
    assert httpx.get(url, timeout=30).status_code == 401
    assert httpx.get(url, params={"token": "wrong"}, timeout=30).status_code == 401
    assert httpx.get(url, headers=stack.stack.api_headers(), timeout=30).status_code == 200
