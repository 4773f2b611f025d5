"""Action tests: a real Tracker and CollectingDispatcher, exact events and responses."""
from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.checkin import (ASK_ACTIONS, ActionFinishCheckin, ActionHelp, ActionPauseCheckin,
                             ActionStartCheckin, ValidateCheckinForm)
from painpath.content import get_content
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.models import Answer, CheckIn, SafetyScreen

DOMAIN: dict[str, Any] = {
    "forms": {"checkin_form": {"required_slots": []}},
    "slots": {item: {"type": "any", "mappings": [{"type": "from_text"}]}
              for item in get_content().questions},
}


def tracker(sender: str, slots: dict[str, Any] | None = None, text: str = "",
            entities: list[dict[str, Any]] | None = None, requested: str | None = None,
            intent: str = "inform") -> Tracker:
    all_slots = {name: None for name in get_content().questions}
    all_slots.update({"checkin_id": None, "checkin_items": None, "checkin_reask": None,
                      "checkin_stopped": None, "requested_slot": requested})
    all_slots.update(slots or {})
    # what Rasa's form sends: the user turn, then the slot it extracted from the text
    events: list[dict[str, Any]] = [{"event": "user", "text": text}]
    if requested and all_slots.get(requested) is not None:
        events.append({"event": "slot", "name": requested, "value": all_slots[requested]})
    return Tracker(sender_id=sender, slots=all_slots,
                   latest_message={"text": text, "intent": {"name": intent, "confidence": 1.0},
                                   "entities": entities or []},
                   events=events, paused=False, followup_action=None,
                   active_loop={"name": "checkin_form"} if requested else {},
                   latest_action_name="action_listen")


@pytest.fixture
def patient_id(clinic: str) -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550113", procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:30:00-05:00", name="Kim Park", baseline_pain=7)).id


def checkin_id_of(patient_id: str) -> int:
    with new_session() as session:
        return session.execute(select(CheckIn.id).where(CheckIn.patient_id == patient_id)
                               .order_by(CheckIn.due_at)).scalars().first()


async def test_start_sets_the_items_of_the_due_checkin(patient_id: str) -> None:
    dispatcher = CollectingDispatcher()
    cid = checkin_id_of(patient_id)
    events = await ActionStartCheckin().run(
        dispatcher, tracker(patient_id, entities=[{"entity": "checkin_id", "value": str(cid)}]),
        DOMAIN)
    items = ["safety_neuro", "safety_headache", "pain_now", "percent_relief",
             "phq_interest", "phq_down", "gad_nervous", "gad_worry"]  # PHQ-4 at the first
    resets = [SlotSet(item, None) for item in items]
    assert events == [*resets, SlotSet("checkin_id", cid), SlotSet("checkin_items", items),
                      SlotSet("checkin_reask", False), SlotSet("checkin_stopped", False),
                      SlotSet("checkin_ready", True)]
    assert len(dispatcher.messages) == 1
    assert dispatcher.messages[0]["text"].startswith("Hi Kim, this is your care team's check-in")


async def test_start_for_an_unknown_patient_says_nothing_is_due(database_url: str) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionStartCheckin().run(dispatcher, tracker("nobody"), DOMAIN)
    assert events == [SlotSet("checkin_ready", False)]
    assert "no check-in due" in dispatcher.messages[0]["text"]


async def test_validation_accepts_reasks_and_gives_up(patient_id: str) -> None:
    cid = checkin_id_of(patient_id)
    items = ["safety_neuro", "safety_headache", "pain_now", "percent_relief"]
    base = {"checkin_id": cid, "checkin_items": items}
    form = ValidateCheckinForm()

    dispatcher = CollectingDispatcher()
    events = await form.run(dispatcher, tracker(patient_id, {**base, "pain_now": "a 6 maybe 7"},
                                                requested="pain_now"), DOMAIN)
    assert events == [SlotSet("pain_now", 7), SlotSet("checkin_reask", False),
                      SlotSet("requested_slot", "safety_neuro")]
    assert dispatcher.messages == []

    dispatcher = CollectingDispatcher()
    events = await form.run(dispatcher, tracker(patient_id, {**base, "percent_relief": "lots"},
                                                requested="percent_relief"), DOMAIN)
    assert events == [SlotSet("percent_relief", None), SlotSet("checkin_reask", True),
                      SlotSet("requested_slot", "safety_neuro")]
    dispatcher = CollectingDispatcher()
    events = await form.run(dispatcher, tracker(patient_id, {**base, "percent_relief": "hmm"},
                                                requested="percent_relief"), DOMAIN)
    assert events == [SlotSet("percent_relief", "unanswered"), SlotSet("checkin_reask", False),
                      SlotSet("requested_slot", "safety_neuro")]
    assert [m["text"] for m in dispatcher.messages] == ["That's OK, let's move on."]
    with new_session() as session:
        rows = {a.item: (a.status, a.value) for a in session.execute(select(Answer)).scalars()}
    assert rows == {"pain_now": ("answered", 7.0), "percent_relief": ("unanswered", None)}


async def test_yes_asks_the_follow_up_next_and_worse_stops_the_form(patient_id: str) -> None:
    cid = checkin_id_of(patient_id)
    items = ["safety_neuro", "safety_headache", "pain_now", "percent_relief"]
    dispatcher = CollectingDispatcher()
    # a value left in the follow-up's slot by an earlier check-in must not count
    events = await ValidateCheckinForm().run(
        dispatcher, tracker(patient_id, {"checkin_id": cid, "checkin_items": items,
                                         "safety_neuro_change": False,
                                         "safety_neuro": "yes, my leg went numb"},
                            requested="safety_neuro"), DOMAIN)
    with_follow_up = ["safety_neuro", "safety_neuro_change", *items[1:]]
    assert events == [SlotSet("safety_neuro", True), SlotSet("checkin_reask", False),
                      SlotSet("safety_neuro_change", None),
                      SlotSet("checkin_items", with_follow_up),
                      SlotSet("requested_slot", "safety_neuro_change")]
    assert "will call you by" in dispatcher.messages[0]["text"]

    dispatcher = CollectingDispatcher()
    events = await ValidateCheckinForm().run(
        dispatcher, tracker(patient_id, {"checkin_id": cid, "checkin_items": with_follow_up,
                                         "safety_neuro": True,
                                         "safety_neuro_change": "getting worse"},
                            requested="safety_neuro_change"), DOMAIN)
    assert events == [SlotSet("safety_neuro_change", True), SlotSet("checkin_reask", False),
                      SlotSet("checkin_stopped", True), SlotSet("requested_slot", None),
                      SlotSet("requested_slot", None)]
    assert "call 911" in dispatcher.messages[0]["text"]


async def test_unclear_twice_on_a_safety_question_goes_one_tier_up(patient_id: str) -> None:
    cid = checkin_id_of(patient_id)
    base = {"checkin_id": cid, "checkin_items": ["safety_headache", "pain_now"]}
    form = ValidateCheckinForm()
    events = await form.run(CollectingDispatcher(), tracker(
        patient_id, {**base, "safety_headache": "hmm"}, requested="safety_headache"), DOMAIN)
    assert events[:2] == [SlotSet("safety_headache", None), SlotSet("checkin_reask", True)]
    dispatcher = CollectingDispatcher()
    events = await form.run(dispatcher, tracker(
        patient_id, {**base, "safety_headache": "not sure"}, requested="safety_headache"), DOMAIN)
    assert events == [SlotSet("safety_headache", "unclear"), SlotSet("checkin_reask", False),
                      SlotSet("checkin_stopped", True), SlotSet("requested_slot", None),
                      SlotSet("requested_slot", None)]
    texts = [m["text"] for m in dispatcher.messages]
    assert texts[0].startswith("I couldn't tell your answer") and "call 911" in texts[1]


async def test_ask_action_uses_the_reask_after_a_failure(database_url: str) -> None:
    dispatcher = CollectingDispatcher()
    ask = ASK_ACTIONS["pain_now"]()
    assert ask.name() == "action_ask_pain_now"
    events = await ask.run(dispatcher, tracker("p", {"checkin_reask": True}), DOMAIN)
    assert events == [SlotSet("checkin_reask", False)]
    assert dispatcher.messages[0]["text"] == get_content().questions["pain_now"].reask
    dispatcher = CollectingDispatcher()
    await ask.run(dispatcher, tracker("p"), DOMAIN)
    assert dispatcher.messages[0]["text"] == get_content().questions["pain_now"].text


async def test_ask_action_words_the_question_for_this_checkin(patient_id: str) -> None:
    cid = checkin_id_of(patient_id)
    dispatcher = CollectingDispatcher()
    await ASK_ACTIONS["safety_neuro"]().run(dispatcher, tracker(patient_id, {"checkin_id": cid}),
                                            DOMAIN)
    assert dispatcher.messages[0]["text"].startswith("Since your procedure,")
    dispatcher = CollectingDispatcher()
    await ASK_ACTIONS["safety_headache_severe"]().run(
        dispatcher, tracker(patient_id, {"checkin_id": cid}), DOMAIN)
    assert dispatcher.messages[0]["text"].endswith("If yes, call 911 now.")


async def test_pause_and_finish(patient_id: str) -> None:
    cid = checkin_id_of(patient_id)
    await ActionStartCheckin().run(CollectingDispatcher(), tracker(patient_id), DOMAIN)
    dispatcher = CollectingDispatcher()
    events = await ActionPauseCheckin().run(dispatcher, tracker(patient_id, {"checkin_id": cid}),
                                            DOMAIN)
    assert events == [ActiveLoop(None), SlotSet("requested_slot", None)]
    assert "paused" in dispatcher.messages[0]["text"]
    dispatcher = CollectingDispatcher()
    events = await ActionFinishCheckin().run(dispatcher, tracker(patient_id, {"checkin_id": cid}),
                                             DOMAIN)
    assert events == [SlotSet("checkin_id", None), SlotSet("checkin_items", None),
                      SlotSet("checkin_ready", None), SlotSet("checkin_stopped", False)]
    assert dispatcher.messages[0]["text"].startswith("Thank you, that's today's check-in done.")


async def test_help_names_the_clinic(patient_id: str) -> None:
    dispatcher = CollectingDispatcher()
    assert await ActionHelp().run(dispatcher, tracker(patient_id), DOMAIN) == []
    text = dispatcher.messages[0]["text"]
    assert "Test Pain Clinic" in text and "+14155550198" in text and "988" in text


def test_the_action_server_registers_every_custom_action_of_the_domain() -> None:
    from pathlib import Path

    import yaml
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("actions")
    domain_dir = Path(__file__).resolve().parents[2] / "bot" / "domain"
    wanted = set()
    for f in domain_dir.glob("*.yml"):
        wanted |= set(yaml.safe_load(f.read_text()).get("actions") or [])
    assert wanted and wanted <= set(executor.actions)


async def test_positive_phq2_adds_the_asq_and_a_yes_hands_over_to_the_screen(
        patient_id: str) -> None:
    """PHQ-2 >= 3: the ASQ items join the form; a yes to one is a crisis reply, then ASQ
    item 5 is recorded as a screen and the check-in form stops for the screen form."""
    cid = checkin_id_of(patient_id)
    with new_session() as session:
        items = list(session.get(CheckIn, cid).items)
    base = {"checkin_id": cid, "checkin_items": items}
    form = ValidateCheckinForm()
    await form.run(CollectingDispatcher(), tracker(
        patient_id, {**base, "phq_interest": "3"}, requested="phq_interest"), DOMAIN)
    events = await form.run(CollectingDispatcher(), tracker(
        patient_id, {**base, "phq_down": "2"}, requested="phq_down"), DOMAIN)
    asq = ["asq_wished_dead", "asq_better_off_dead", "asq_thoughts", "asq_tried"]
    at = items.index("gad_worry") + 1
    assert SlotSet("checkin_items", [*items[:at], *asq, *items[at:]]) in events
    assert all(SlotSet(item, None) in events for item in asq)

    dispatcher = CollectingDispatcher()
    events = await form.run(dispatcher, tracker(
        patient_id, {**base, "checkin_items": [*items, *asq], "asq_wished_dead": "yes"},
        requested="asq_wished_dead"), DOMAIN)
    assert "988" in dispatcher.messages[0]["text"]
    assert SlotSet("checkin_stopped", True) in events and SlotSet("screen_asked", True) in events
    with new_session() as session:
        [screen] = session.execute(select(SafetyScreen)).scalars().all()
        assert screen.screen_id == "asq5" and screen.status == "pending"
    events = await ActionFinishCheckin().run(CollectingDispatcher(), tracker(
        patient_id, {"checkin_id": cid, "checkin_stopped": True}), DOMAIN)
    assert events[-1] == FollowupAction("screen_form")
