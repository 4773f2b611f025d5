"""A patient completes a check-in in the web chat: Debian Chromium driven by Playwright
against the real stack (web app → Rasa → action server). Screenshots are saved to
test-artifacts/ for a person to look at."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytestmark = [pytest.mark.stack, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"




def test_checkin_in_the_web_chat(stack, browser) -> None:
    when = (datetime.now(timezone.utc) - timedelta(days=1, hours=1)).isoformat()
    patient_id = stack.cli("enroll", "--clinic", "e2e", "--phone", "+14155550131",
                           "--procedure", "epidural_steroid_injection", "--procedure-at", when,
                           "--channel", "web", "--name", "Wendy Web",
                           "--baseline-pain", "8").stdout.strip()
    url = stack.cli("chat-link", "--patient", patient_id).stdout.strip()
    stack.cli("checkin", "start", "--patient", patient_id)

    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(url)
    bot = page.locator("#messages .msg-bot")
    bot.filter(has_text="weakness or numbness").first.wait_for(timeout=15000)
    assert "Wendy" in bot.first.inner_text()

    def answer(text: str, expect: str) -> None:
        page.fill("#message-input", text)
        page.keyboard.press("Enter")
        bot.filter(has_text=expect).last.wait_for(timeout=30000)

    def answer_next(text: str) -> None:
        """Answer and wait for the bot's next message (the questions look alike)."""
        seen = bot.count()
        page.fill("#message-input", text)
        page.keyboard.press("Enter")
        bot.nth(seen).wait_for(timeout=30000)

    answer("no", "headache")
    answer("nope", "right now")
    answer("was 8, now a 3", "relief")
    answer("about 70%", "how often")  # the PHQ-4 at the first check-in (CLINICAL.md §5)
    for reply in ("0", "1", "0"):
        answer_next(reply)
    answer("0", "check-in done")
    summary = bot.last.inner_text()
    assert "8 before the procedure → 3 now" in summary and "70%" in summary
    assert page.locator("#messages .msg-user").count() == 8
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-chat-checkin.png"), full_page=True)

    record = stack.show(patient_id)
    assert record["checkins"][0]["status"] == "completed"
    assert record["checkins"][0]["answers"] == {"safety_neuro": 0, "safety_headache": 0,
                                                "pain_now": 3, "percent_relief": 70,
                                                "phq_interest": 0, "phq_down": 1,
                                                "gad_nervous": 0, "gad_worry": 0}


def test_wrong_or_expired_link_reaches_no_conversation(stack, browser) -> None:
    page = browser.new_page()
    resp = page.goto(f"{stack.stack.web_url}/chat/not-a-real-token")
    assert resp.status == 403
    assert page.locator("#message-input").count() == 0
    assert "not valid" in page.content().lower() or "expired" in page.content().lower()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-chat-bad-link.png"))


def test_thought_record_in_the_web_chat(stack, browser) -> None:
    """A multi-turn exercise reads well in the web chat and is stored step by step."""
    when = (datetime.now(timezone.utc) - timedelta(days=3)).isoformat()
    patient_id = stack.cli("enroll", "--clinic", "e2e", "--phone", "+14155557132",
                           "--procedure", "epidural_steroid_injection", "--procedure-at", when,
                           "--channel", "web", "--name", "Theo Thought").stdout.strip()
    url = stack.cli("chat-link", "--patient", patient_id).stdout.strip()
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(url)
    page.locator("#message-input").wait_for(timeout=15000)
    bot = page.locator("#messages .msg-bot")

    def say(text: str, expect: str) -> None:
        page.fill("#message-input", text)
        page.keyboard.press("Enter")
        bot.filter(has_text=expect).last.wait_for(timeout=30000)

    say("THOUGHTS", "worrying")  # "it will never get better" is screened (ASQ item 5) first
    say("no", "the situation")
    say("lying awake at night", "went through your mind")
    say("this pain will never end", "How strong")
    say("85", "makes the thought feel true")
    say("it has been months", "doesn't fit the thought")
    say("last week I walked to the shop", "more balanced way")
    say("Even though it's slow, I am doing a bit more", "feeling now")
    say("60", "Thoughts aren't facts")
    assert "from 85 to 60" in bot.last.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-chat-thought-record.png"), full_page=True)
