"""Privacy of the logs: after a full conversation through the real stack (an SMS
check-in, a red flag that pages the nurse, a web-chat message, STOP), no process log
holds a message body or a full phone number; then the patient's data is exported
and deleted through the CLI, their Rasa conversation included."""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.integration.test_sms_checkin_e2e import enroll, reply_to

pytestmark = pytest.mark.stack

NURSE = "+14155550166"
PHONE = "+14155550161"
E164 = re.compile(r"(?<![\w.])\+?1?[2-9]\d{2}[2-9]\d{6}(?![\w.])")  # a full NANP number, with or without +1
# a tier, a red flag, a safety question, held outreach: never next to the patient id
CLINICAL = re.compile(r"\b(emergency|crisis|urgent|routine|imminent|red[ _-]?flags?|tier"
                      r"|screens?|safety question|held)\b", re.IGNORECASE)
MIN_BODY_CHARS = 8  # shorter bodies ("no", "3") are not distinctive enough to grep for


def process_logs(stack: Any) -> dict[str, str]:
    log_dir = Path(stack.stack.log_dir)
    logs = {p.name: p.read_text(errors="replace") for p in sorted(log_dir.glob("*.log"))}
    assert {"rasa.log", "actions.log", "web.log"} <= set(logs), sorted(logs)
    return logs


def leaks(logs: dict[str, str], needles: set[str]) -> list[str]:
    found = []
    for name, content in logs.items():
        for needle in needles:
            if needle and needle in content:
                line = next(ln for ln in content.splitlines() if needle in ln)
                found.append(f"{name}: {needle!r} in {line[:300]!r}")
    return found


def test_logs_hold_no_message_bodies_or_phone_numbers(stack: Any) -> None:
    marker = secrets.token_hex(4)  # makes this run's web-chat words unique
    patient_id = enroll(stack, PHONE, baseline_pain="7")
    said: list[str] = []

    def say(body: str) -> list[str]:
        said.append(body)
        return reply_to(stack, PHONE, body)

    # a check-in by SMS, answered in words
    stack.cli("checkin", "start", "--patient", patient_id)
    stack.twilio.wait_for_count(PHONE, 2)
    say("no numbness or weakness at all")
    say("nope, no headache either")
    say("it was an 8 before the shot")
    say("about a 3 right now")
    say("I would say 60 percent better")
    # a red flag: the nurse is paged
    pages_before = len(stack.twilio.sent_to(NURSE))
    say("since lunch I cant feel my legs and I wet myself")
    stack.twilio.wait_for_count(NURSE, pages_before + 1)
    # the web chat, relayed to Rasa by the web app
    link = stack.cli("chat-link", "--patient", patient_id).stdout.strip()
    url = link.replace(stack.env["WEB_BASE_URL"], stack.stack.web_url) + "/messages"
    chat_words = f"my back is sore today {marker}"
    resp = httpx.post(url, json={"text": chat_words}, timeout=60)
    assert resp.status_code == 200, resp.text
    said.append(chat_words)
    # and STOP
    assert stack.sms(PHONE, "STOP").status_code == 200
    assert stack.show(patient_id)["escalations"], "the red flag was not recorded"

    sent = [m.body for m in stack.twilio.sent_to(PHONE)] + \
        [m.body for m in stack.twilio.sent_to(NURSE)] + \
        [m["body"] for m in resp.json()["messages"]]
    bodies = {b for b in said + sent if len(b) >= MIN_BODY_CHARS}
    # every whole message, the patient's and the bot's (which repeat answers)
    assert len(bodies) >= 10 and chat_words in bodies and said[5] in bodies
    logs = process_logs(stack)
    planted = {"x.log": f"INFO something: {said[0]!r} from {PHONE}"}
    assert leaks(planted, bodies) and leaks(planted, {PHONE})  # the check can fail
    assert not leaks(logs, bodies), "\n".join(leaks(logs, bodies))
    numbers = {PHONE, PHONE[1:], PHONE[2:], NURSE, NURSE[1:], NURSE[2:],
               stack.twilio.from_number}
    assert not leaks(logs, numbers), "\n".join(leaks(logs, numbers))
    anywhere = {f"{name}: {m.group(0)}" for name, content in logs.items()
                for m in E164.finditer(content)}
    assert not anywhere, sorted(anywhere)
    paired = [f"{name}: {line[:300]}" for name, content in logs.items()
              for line in content.splitlines() if patient_id in line and CLINICAL.search(line)]
    assert not paired, "\n".join(paired)
    # the logs are not simply empty: the processes did log the conversation's events
    assert "escalation" in logs["actions.log"] + logs["rasa.log"] + logs["web.log"]


def test_export_and_delete_a_patient_through_the_cli(stack: Any) -> None:
    phone = "+14155550162"
    patient_id = enroll(stack, phone)
    assert reply_to(stack, phone, "hello, how does this work?")
    exported = json.loads(stack.cli("patient", "export", patient_id).stdout)
    assert exported["patient"]["phone"] == phone
    assert any(m["body"] == "hello, how does this work?" for m in exported["tables"]["message"])

    tracker = create_engine(f"sqlite:///{stack.stack.log_dir / 'tracker.db'}", future=True)
    with tracker.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM events WHERE sender_id = :s"),
                              {"s": patient_id}).scalar_one()
    assert before > 0
    env_endpoints = str(stack.stack.log_dir / "endpoints.yml")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "painpath"), "patient", "delete", patient_id,
         "--yes", "--json"], capture_output=True, text=True, timeout=120,
        env={**os.environ, **stack.env, "RASA_ENDPOINTS": env_endpoints})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["deleted_rows"]["patient"] == 1
    assert report["rasa_tracker_events_deleted"] == before
    with tracker.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events WHERE sender_id = :s"),
                            {"s": patient_id}).scalar_one() == 0
    tracker.dispose()
    gone = stack.cli("patient", "show", patient_id, check=False)
    assert gone.returncode == 2 and "no patient" in gone.stderr
    # a text from the number now reaches nobody's conversation
    assert stack.sms(phone, "are you there?").status_code == 200
