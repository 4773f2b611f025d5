"""A nurse works a red flag in the dashboard: Debian Chromium driven by Playwright
against the real stack. The emergency arrives by SMS while the queue is open and must
appear without a reload. Screenshots go to test-artifacts/ for a person to look at."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytestmark = [pytest.mark.stack, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PHONE = "+14155550171"




def test_nurse_sees_a_new_emergency_live_and_resolves_it(stack, browser) -> None:
    stack.cli("clinician", "add", "--clinic", "e2e", "--name", "Nia Nurse", "--phone",
              "+14155550155", "--username", "nia", stdin="a-long-password\n")
    when = (datetime.now(timezone.utc) - timedelta(days=3, hours=2)).isoformat()
    patient_id = stack.cli("enroll", "--clinic", "e2e", "--phone", PHONE, "--procedure",
                           "epidural_steroid_injection", "--procedure-at", when,
                           "--timezone", "America/New_York", "--name", "Dana Dashboard",
                           "--baseline-pain", "7").stdout.strip()
    web = stack.stack.web_url

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(f"{web}/queue")
    assert page.url.startswith(f"{web}/login")
    page.get_by_label("Username").fill("nia")
    page.get_by_label("Password").fill("wrong-password-here")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong username or password."
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{web}/queue")
    assert "Nia Nurse" in page.inner_text("header")
    mine = page.locator("#queue li", has_text="Dana Dashboard")
    assert mine.count() == 0

    # the red flag arrives while the queue is open: polling must bring it in
    resp = stack.sms(PHONE, "i cant feel my legs and i wet myself")
    assert resp.status_code == 200, resp.text
    item = page.locator('#queue li[data-tier="emergency"]', has_text="Dana Dashboard")
    item.wait_for(timeout=20000)
    assert re.search(r"waiting (<1|\d+) min", item.inner_text())
    assert page.locator("#queue li").first.get_attribute("data-tier") == "emergency"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-queue.png"), full_page=True)

    item.get_by_role("link").click()
    page.wait_for_url(re.compile(rf"/patients/{patient_id}#escalation-\d+$"))
    escalation_id = int(page.url.rsplit("-", 1)[1])
    card = page.locator(f"#escalation-{escalation_id}")
    assert card.locator(".badge").text_content() == "Emergency"
    assert "i cant feel my legs and i wet myself" in card.inner_text()
    assert "Epidural steroid injection" in page.inner_text("main")
    transcript = page.locator("#messages .tmsg-in", has_text="i cant feel my legs")
    assert transcript.count() == 1

    card.get_by_role("button", name="Acknowledge").click()
    page.wait_for_load_state()
    card = page.locator(f"#escalation-{escalation_id}")
    assert card.get_attribute("data-status") == "acknowledged"
    assert card.get_by_role("button", name="Acknowledge").count() == 0

    card.get_by_label("Outcome").select_option("sent_to_ed")
    card.get_by_label("Note").fill("Called; sent to the ED by ambulance. <b>not bold</b>")
    card.get_by_role("button", name="Resolve").click()
    page.wait_for_load_state()
    card = page.locator(f"#escalation-{escalation_id}")
    assert card.get_attribute("data-status") == "resolved"
    text = card.inner_text()
    assert "Sent to the emergency department" in text and "Nia Nurse" in text
    assert "<b>not bold</b>" in text  # shown as typed, not as markup
    card.locator("summary").click()
    history = card.locator(".timeline").inner_text()
    assert "acknowledged by Nia Nurse" in history and "resolved by Nia Nurse" in history
    page.screenshot(path=str(ARTIFACTS / "dashboard-patient.png"), full_page=True)

    record = stack.show(patient_id)
    flag = next(e for e in record["escalations"] if e["id"] == escalation_id)
    assert (flag["tier"], flag["status"]) == ("emergency", "resolved")

    page.goto(f"{web}/queue")
    assert page.locator(f'#queue li[data-id="{escalation_id}"]').count() == 0

    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{web}/patients/{patient_id}")
    phone.screenshot(path=str(ARTIFACTS / "dashboard-patient-mobile.png"), full_page=True)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.close()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{web}/login")
    page.goto(f"{web}/queue")
    assert page.url.startswith(f"{web}/login")
    page.close()
