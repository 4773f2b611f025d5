"""The action server is not an open door (security issue, item 1).

Against the real stack as `make run` starts it: the action server answers only
calls that carry the token Rasa sends (bot/endpoints.yml `headers:`), only JSON,
only on loopback; and a check-in or exercise id taken from the tracker is used
only when it belongs to the conversation's own patient.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from painpath import programs
from painpath.db import new_session
from painpath.models import Answer, CheckIn, ExerciseSession

pytestmark = pytest.mark.stack

RASA_VERSION = "3.6.21"
NURSE = "+14155550166"  # the e2e clinic's on-call nurse (tests/conftest.py)


def enroll(stack: Any, phone: str) -> str:
    when = (datetime.now(timezone.utc) - timedelta(hours=7)).isoformat()
    return str(stack.cli("enroll", "--clinic", "e2e", "--phone", phone,
                         "--procedure", "epidural_steroid_injection", "--procedure-at", when,
                         "--timezone", "America/New_York", "--name", "Sam Target").stdout.strip())


def webhook_url(stack: Any) -> str:
    return f"http://127.0.0.1:{stack.stack.actions_port}/webhook"


def auth(stack: Any, token: str | None = None) -> dict[str, str]:
    """The header Rasa sends the action server (the stack's token unless told)."""
    return {"Authorization": f"Bearer {token or stack.stack.action_server_token()}"}


def action_call(action: str, sender: str, slots: dict[str, Any] | None = None,
                text: str = "", intent: str = "inform",
                entities: list[dict[str, Any]] | None = None,
                set_slot: tuple[str, Any] | None = None,
                loop: str | None = None) -> dict[str, Any]:
    """The body Rasa POSTs to the action server for `action` in `sender`'s conversation."""
    events: list[dict[str, Any]] = [{"event": "user", "text": text,
                                     "parse_data": {"intent": {"name": intent}}}]
    if set_slot:
        events.append({"event": "slot", "name": set_slot[0], "value": set_slot[1]})
    all_slots = {**(slots or {})}
    if set_slot:
        all_slots[set_slot[0]] = set_slot[1]
    return {
        "next_action": action, "sender_id": sender, "version": RASA_VERSION,
        "domain": {"forms": {"checkin_form": {"required_slots": []},
                             "exercise_form": {"required_slots": ["exercise_reply"]}},
                   "slots": {name: {"type": "any", "mappings": [{"type": "from_text"}]}
                             for name in all_slots}},
        "tracker": {"sender_id": sender, "slots": all_slots,
                    "latest_message": {"text": text,
                                       "intent": {"name": intent, "confidence": 1.0},
                                       "entities": entities or [],
                                       "intent_ranking": []},
                    "latest_event_time": None, "followup_action": None, "paused": False,
                    "events": events, "latest_input_channel": "twilio",
                    "active_loop": {"name": loop} if loop else {},
                    "latest_action": {"action_name": "action_listen"},
                    "latest_action_name": "action_listen"},
    }


def emergency_call(sender: str) -> dict[str, Any]:
    """What the attacker posted: a red-flag turn at tier emergency for `sender`."""
    return action_call("action_handle_red_flag", sender, text="I can't feel my legs",
                       intent="red_flag",
                       entities=[{"entity": "red_flag_tier", "value": "emergency"},
                                 {"entity": "red_flag_reason", "value": "forged"}])


def answers_of(stack: Any, checkin_id: int) -> dict[str, Any]:
    with new_session(stack.database_url) as session:
        rows = session.execute(select(Answer).where(Answer.checkin_id == checkin_id)).scalars()
        return {a.item: (a.status, a.value) for a in rows}


def first_checkin(stack: Any, patient_id: str) -> CheckIn:
    with new_session(stack.database_url) as session:
        checkin = session.execute(select(CheckIn).where(CheckIn.patient_id == patient_id)
                                  .order_by(CheckIn.due_at)).scalars().first()
        session.expunge(checkin)
        return checkin


def test_an_unauthenticated_call_is_refused_and_raises_nothing(stack) -> None:
    victim = enroll(stack, "+14155550301")
    pages = len(stack.twilio.sent_to(NURSE))
    resp = httpx.post(webhook_url(stack), json=emergency_call(victim), timeout=30)
    assert resp.status_code == 401
    assert "events" not in resp.text
    assert stack.show(victim)["escalations"] == []
    assert len(stack.twilio.sent_to(NURSE)) == pages  # the alert is sent before the answer


def test_a_wrong_token_is_refused(stack) -> None:
    victim = enroll(stack, "+14155550302")
    for headers in (auth(stack, "0" * 64), {"Authorization": "Basic eDp5"},
                    {"Authorization": auth(stack)["Authorization"] + "x"}):
        resp = httpx.post(webhook_url(stack), json=emergency_call(victim), headers=headers,
                          timeout=30)
        assert resp.status_code == 403, headers
    assert stack.show(victim)["escalations"] == []


def test_a_form_post_or_text_plain_body_is_refused(stack) -> None:
    """A web page in a staff browser can send text/plain without a preflight: refused
    even with the right token (a browser could never add it, but nothing relies on that)."""
    victim = enroll(stack, "+14155550303")
    body = json.dumps(emergency_call(victim))
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {**auth(stack)}
        if ctype:
            headers["Content-Type"] = ctype
        resp = httpx.post(webhook_url(stack), content=body, headers=headers, timeout=30)
        assert resp.status_code == 415, ctype
    assert stack.show(victim)["escalations"] == []
    # and no CORS grant for a browser's preflight
    pre = httpx.options(webhook_url(stack), headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"}, timeout=30)
    assert "access-control-allow-origin" not in pre.headers


def test_with_the_token_the_action_runs(stack) -> None:
    patient = enroll(stack, "+14155550304")
    resp = httpx.post(webhook_url(stack), json=action_call("action_help", patient),
                      headers=auth(stack), timeout=30)
    assert resp.status_code == 200, resp.text
    assert "E2E Pain Clinic" in resp.json()["responses"][0]["text"]
    # Rasa itself sends the token: a conversation that runs custom actions works
    help_reply = stack.sms("+14155550304", "HELP")
    assert help_reply.status_code == 200


def test_an_error_does_not_echo_the_tracker(stack) -> None:
    """rasa-sdk's own error handler answers with the request body: a patient's messages."""
    call = {"next_action": "action_help", "version": RASA_VERSION, "tracker": None,
            "domain": None, "note": "my private words"}
    resp = httpx.post(webhook_url(stack), json=call, headers=auth(stack), timeout=30)
    assert resp.status_code == 500
    assert "my private words" not in resp.text


def test_the_health_check_needs_no_token_and_says_nothing(stack) -> None:
    resp = httpx.get(f"http://127.0.0.1:{stack.stack.actions_port}/health", timeout=30)
    assert resp.status_code == 200
    assert httpx.get(f"http://127.0.0.1:{stack.stack.actions_port}/actions",
                     timeout=30).status_code == 401


def _listen_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port` (from /proc/net/tcp*)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_the_action_server_listens_on_loopback_only(stack) -> None:
    addresses = _listen_addresses(stack.stack.actions_port)
    assert addresses == {"0100007F"}, addresses  # 127.0.0.1, nothing else


def test_a_forged_checkin_id_for_another_patient_is_refused(stack) -> None:
    attacker = enroll(stack, "+14155550305")
    victim = enroll(stack, "+14155550306")
    target = first_checkin(stack, victim)
    assert "pain_now" in target.items
    slots = {"checkin_id": target.id, "checkin_items": list(target.items),
             "requested_slot": "pain_now", "checkin_reask": False, "checkin_stopped": False}
    calls = [
        action_call("validate_checkin_form", attacker, slots, text="0",
                    set_slot=("pain_now", "0"), loop="checkin_form"),
        action_call("action_handle_red_flag", attacker, slots, text="0 and I have a fever",
                    intent="red_flag", loop="checkin_form",
                    entities=[{"entity": "red_flag_tier", "value": "routine"}]),
        action_call("action_pause_checkin", attacker, slots),
        action_call("action_finish_checkin", attacker, slots),
    ]
    for call in calls:
        resp = httpx.post(webhook_url(stack), json=call, headers=auth(stack), timeout=30)
        assert resp.status_code == 200, resp.text
    assert answers_of(stack, target.id) == {}
    after = first_checkin(stack, victim)
    assert after.status == target.status and after.completed_at is None
    record = stack.show(victim)
    assert record["escalations"] == []


def test_a_forged_exercise_session_for_another_patient_is_refused(stack) -> None:
    attacker = enroll(stack, "+14155550307")
    victim = enroll(stack, "+14155550308")
    with new_session(stack.database_url) as session, session.begin():
        row = programs.start(session, victim, "breathing")
        target_id, step, data = row.id, row.step, dict(row.data or {})
    call = action_call("validate_exercise_form", attacker,
                       {"exercise_session": target_id, "requested_slot": "exercise_reply"},
                       text="skip", set_slot=("exercise_reply", "skip"), loop="exercise_form")
    resp = httpx.post(webhook_url(stack), json=call, headers=auth(stack), timeout=30)
    assert resp.status_code == 200, resp.text
    with new_session(stack.database_url) as session:
        row = session.get(ExerciseSession, target_id)
        assert (row.status, row.step, row.data) == ("active", step, data)
