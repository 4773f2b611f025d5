"""PainPath's patches and stores inside the Rasa server, without a server:

- the SQL tracker store round-trips trackers exactly as Rasa's store does (its
  restart handling is tested against PostgreSQL in tests/integration/test_faults.py);
- the performance patches (bot/painpath_rasa/perf.py) give the answers Rasa's own
  code gives: the same event classes, the same validation errors.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from jsonschema import ValidationError
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted, ActiveLoop, BotUttered, Event, SessionStarted, SlotSet, UserUttered)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.utils.common import all_subclasses

import bot.painpath_rasa  # noqa: F401 - applies perf.install()
from bot.painpath_rasa import perf
from bot.painpath_rasa.tracker_store import ResilientSQLTrackerStore

DOMAIN = Domain.from_dict({
    "intents": ["greet", "inform"],
    "slots": {"pain_now": {"type": "any", "mappings": [{"type": "from_text"}]}},
    "responses": {"utter_hi": [{"text": "hi"}]},
})


def _events() -> list[Event]:
    return [ActionExecuted("action_session_start"), SessionStarted(),
            ActionExecuted("action_listen"),
            UserUttered("my pain is 4", {"name": "inform", "confidence": 0.9}),
            SlotSet("pain_now", "4"), ActiveLoop("checkin_form"),
            BotUttered("Thanks. How much relief, 0-100%?"), ActiveLoop(None),
            ActionExecuted("action_listen")]


def test_tracker_store_round_trips_a_conversation(tmp_path: Path) -> None:
    store = ResilientSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "t.db"))

    async def scenario() -> None:
        tracker = DialogueStateTracker.from_events("p1", _events(), DOMAIN.slots)
        await store.save(tracker)
        back = await store.retrieve("p1")  # as Rasa does each turn: read, update, save
        assert back is not None
        assert list(back.events) == list(tracker.events)[1:]  # from SessionStarted on
        assert back.get_slot("pain_now") == "4"
        back.update(UserUttered("yes", {"name": "inform", "confidence": 1.0}))
        await store.save(back)  # only the new event is added
        again = await store.retrieve("p1")
        assert again is not None and list(again.events) == list(back.events)
        full = await store.retrieve_full_tracker("p1")
        assert full is not None and len(full.events) == len(_events()) + 1
        assert await store.retrieve("nobody") is None

    asyncio.run(scenario())
    rows = store.engine.connect().exec_driver_sql("SELECT count(*) FROM events").scalar()
    assert rows == len(_events()) + 1


def _walk(type_name: str, default: Any = None) -> Any:
    """Rasa 3.6's own Event.resolve_by_type."""
    for cls in all_subclasses(Event):
        if cls.type_name == type_name:
            return cls
    if type_name == "topic":
        return None
    if default is not None:
        return default
    raise ValueError(f"Unknown event name '{type_name}'.")


def test_event_types_resolve_as_rasa_resolves_them() -> None:
    assert Event.resolve_by_type is perf.resolve_event_type
    names = {cls.type_name for cls in all_subclasses(Event)}
    assert len(names) > 20
    for name in names:
        assert Event.resolve_by_type(name) is _walk(name), name
    assert Event.resolve_by_type("topic") is None
    assert Event.resolve_by_type("no_such_event", SlotSet) is SlotSet
    with pytest.raises(ValueError, match="Unknown event name 'no_such_event'"):
        Event.resolve_by_type("no_such_event")
    event = Event.from_parameters({"event": "slot", "name": "pain_now", "value": "3"})
    assert event == SlotSet("pain_now", "3")


def test_an_event_class_imported_later_is_found() -> None:
    Event.resolve_by_type("slot")  # the index is built

    class PainPathTestEvent(SlotSet):
        type_name = "painpath_test_event"

    assert Event.resolve_by_type("painpath_test_event") is PainPathTestEvent


def test_action_responses_are_validated_as_rasa_validates_them() -> None:
    from rasa.core.actions.action import RemoteAction
    from rasa.utils.endpoints import EndpointConfig

    action = RemoteAction("validate_checkin_form", EndpointConfig("http://127.0.0.1:1"))
    good = {"events": [{"event": "slot", "name": "pain_now", "value": "4"}],
            "responses": [{"text": "How much relief?"}]}
    assert action._validate_action_result(good) is True
    assert action._validate_action_result(good) is True  # the kept validator
    for bad in ({"events": [{"event": "no_such_event"}], "responses": []},
                {"events": "not a list", "responses": []}):
        with pytest.raises(ValidationError, match="Failed to validate Action server response"):
            action._validate_action_result(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3), max_leaves=6)
EVENT_NAMES = ["user", "action", "slot", "entities", "bot", "active_loop", "session_started",
               "reminder", "followup", "restart", "form", "no_such_event"]


@st.composite
def action_responses(draw: st.DrawFn) -> Any:
    def event() -> Any:
        fields = {"event": draw(st.sampled_from(EVENT_NAMES) | json_values)}
        for key in draw(st.lists(st.sampled_from(
                ["name", "value", "timestamp", "metadata", "entities", "text", "parse_data",
                 "policy", "confidence", "hide_rule_turn"]), max_size=4, unique=True)):
            if key == "entities":
                fields[key] = draw(st.lists(st.fixed_dictionaries(
                    {"entity": st.text(max_size=3), "value": json_values},
                    optional={"start": st.integers() | st.text(max_size=2)}), max_size=2)
                    | json_values)
            elif key == "parse_data":
                fields[key] = draw(st.fixed_dictionaries({}, optional={
                    "intent": st.fixed_dictionaries({}, optional={
                        "name": st.text(max_size=3) | st.integers(),
                        "confidence": st.floats(allow_nan=False) | st.text(max_size=2)}),
                    "text": json_values}) | json_values)
            else:
                fields[key] = draw(json_values)
        if draw(st.booleans()):
            fields.pop("event")
        return fields

    def well_formed() -> Any:  # what action servers send, with random values
        return draw(st.sampled_from([
            {"event": "slot", "name": "pain_now", "value": draw(json_values)},
            {"event": "slot", "name": "requested_slot", "value": None, "timestamp": None},
            {"event": "action", "name": "action_listen", "policy": None, "confidence": 1.0},
            {"event": "bot", "text": "How much relief?", "data": {}, "metadata": {}},
            {"event": "active_loop", "name": draw(st.none() | st.text(max_size=5))},
            {"event": "user", "text": "yes", "parse_data": {
                "intent": {"name": "affirm", "confidence": 1.0}, "entities": [
                    {"entity": "number", "value": draw(json_values), "start": 0}]}},
            {"event": "followup", "name": "action_finish_checkin"},
            {"event": "reminder", "intent": "EXTERNAL_x", "date_time": "2026-01-01T00:00:00"},
            {"event": "session_started", "timestamp": draw(st.floats(allow_nan=False))},
        ]))

    response: Any = {"events": [well_formed() if draw(st.integers(0, 3)) else event()
                                for _ in range(draw(st.integers(0, 3)))]}
    if draw(st.booleans()):
        response["responses"] = draw(st.lists(st.dictionaries(st.just("text"), json_values),
                                              max_size=2) | json_values)
    if draw(st.integers(0, 9)) == 0:
        response = draw(st.sampled_from([[], "x", None, {"events": {"event": "slot"}}]))
    return response


@settings(max_examples=400, deadline=None)
@given(response=action_responses())
def test_the_quick_event_check_agrees_with_rasas_whole_schema(response: Any) -> None:
    """Rasa's schema checks each event against 23 alternatives; the quick check only
    against the one of its `event` value. Same verdict on every response."""
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    spec = RemoteAction.action_response_format_spec()
    checks = perf._fast_checks(spec)
    assert checks is not None
    whole = validator_for(spec)(spec)
    assert perf._valid_fast(checks, response) == whole.is_valid(response)
