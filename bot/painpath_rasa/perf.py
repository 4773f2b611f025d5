"""Measured fixes for Rasa 3.6's per-turn overhead (py-spy on bench/load.py).

- `RemoteAction._validate_action_result` calls `jsonschema.validate(result, schema)`
  for every custom-action response; with jsonschema 4.17 that re-checks the schema
  against the meta-schema each time, which py-spy showed as ~40% of the Rasa
  server's CPU per check-in turn (two or three action calls per turn). Here the
  validators are built once (the response format is a constant of the action class).
  Rasa's event schema is a `oneOf` of 23 event schemas told apart by their `event`
  constant, so every event was checked 23 times; an event can only match the one
  schema of its own `event` value, so it is checked against that one alone (the
  same verdict). A response that fails is validated again with Rasa's whole schema,
  so it raises the same ValidationError with Rasa's message.
- `Event.resolve_by_type` walks every subclass of `Event` (recursively, checking each
  for abstractness) for every event it deserialises: each tracker read and each
  action response, several dozen events per turn. Here the walk's result is kept
  by type name; a name not found walks again (an `Event` subclass imported since),
  and the answer is the same class the walk finds first.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Optional, Text, Tuple, Type

_VALIDATORS: Dict[str, Any] = {}
_EVENT_TYPES: Dict[str, Any] = {}


def _validator(schema: Dict[Text, Any]) -> Any:
    from jsonschema.validators import validator_for

    key = json.dumps(schema, sort_keys=True)
    validator = _VALIDATORS.get(key)
    if validator is None:
        cls = validator_for(schema)
        cls.check_schema(schema)
        validator = _VALIDATORS[key] = cls(schema)
    return validator


def _fast_checks(spec: Dict[Text, Any]) -> Optional[Tuple[Any, Dict[str, Any]]]:
    """(a validator of the response without its events' alternatives, one validator
    per `event` value: the event schema's own checks and that value's alternative),
    or None if the event schema is not a `oneOf` of alternatives each fixing `event`
    to a different constant."""
    from jsonschema.validators import validator_for

    item = spec.get("properties", {}).get("events", {}).get("items", {})
    alternatives = item.get("oneOf") or []
    consts = [alt.get("properties", {}).get("event", {}).get("const") for alt in alternatives]
    if not alternatives or not all(isinstance(c, str) for c in consts) or \
            len(set(consts)) != len(consts) or "event" not in item.get("required", []):
        return None
    base = {k: v for k, v in item.items() if k != "oneOf"}
    cls = validator_for(item)
    outer = {**spec, "properties": {**spec["properties"], "events": {"type": "array"}}}
    return _validator(outer), {c: cls({**base, "allOf": [alt]})
                               for c, alt in zip(consts, alternatives)}


def _valid_fast(checks: Tuple[Any, Dict[str, Any]], result: Any) -> bool:
    """True only if Rasa's whole schema accepts `result` (False: ask that schema)."""
    outer, by_event = checks
    if not outer.is_valid(result):
        return False
    for event in result.get("events") or []:
        kind = event.get("event") if isinstance(event, dict) else None
        validator = by_event.get(kind) if isinstance(kind, str) else None
        if validator is None or not validator.is_valid(event):
            return False
    return True


def _index_event_types() -> None:
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    index: Dict[str, Any] = {}
    for cls in all_subclasses(Event):
        index.setdefault(cls.type_name, cls)  # the first the walk finds, as Rasa
    _EVENT_TYPES.clear()
    _EVENT_TYPES.update(index)


def resolve_event_type(type_name: Text, default: Optional[Type[Any]] = None) -> Optional[Type[Any]]:
    """`Event.resolve_by_type`, with the subclass walk kept by type name."""
    cls = _EVENT_TYPES.get(type_name)
    if cls is None:
        _index_event_types()
        cls = _EVENT_TYPES.get(type_name)
    if cls is not None:
        return cls  # type: ignore[no-any-return]
    if type_name == "topic":
        return None  # Rasa's backwards compatibility for old TopicSet events
    if default is not None:
        return default
    raise ValueError(f"Unknown event name '{type_name}'.")


def install() -> None:
    """Patch RemoteAction and Event (idempotent)."""
    from jsonschema import ValidationError
    from jsonschema.exceptions import best_match
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL
    from rasa.shared.core.events import Event

    if getattr(RemoteAction, "_painpath_fast_validation", False):
        return

    def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
        kept = type(self).__dict__.get("_painpath_validators")  # not a parent's
        if kept is None:
            spec = self.action_response_format_spec()
            kept = (_validator(spec), _fast_checks(spec))
            type(self)._painpath_validators = kept  # type: ignore[attr-defined]
        whole, checks = kept
        if checks is not None and _valid_fast(checks, result):
            return True
        error = best_match(whole.iter_errors(result))
        if error is not None:
            error.message += (
                ". Failed to validate Action server response from API, make sure your "
                "response from the Action endpoint is valid. For more information about the "
                f"format visit {DOCS_BASE_URL}/custom-actions")
            raise error
        return True

    assert ValidationError  # the same exception type Rasa's caller expects
    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[assignment]
    RemoteAction._painpath_fast_validation = True  # type: ignore[attr-defined]
    Event.resolve_by_type = staticmethod(resolve_event_type)  # type: ignore[assignment]
