"""Measured fixes for Rasa 3.6's per-turn overhead (py-spy on bench/load.py).

- `RemoteAction._validate_action_result` calls `jsonschema.validate(result, schema)`
  for every custom-action response; with jsonschema 4.17 that re-checks the schema
  against the meta-schema each time, which py-spy showed as ~40% of the Rasa
  server's CPU per check-in turn (two or three action calls per turn). Here the
  validator is built once (the response format is a constant of the action class);
  the response is validated exactly as before and an invalid one raises the same
  ValidationError with Rasa's message.
- `Event.resolve_by_type` walks every subclass of `Event` (recursively, checking each
  for abstractness) for every event it deserialises: each tracker read and each
  action response, several dozen events per turn. Here the walk's result is kept
  by type name; a name not found walks again (an `Event` subclass imported since),
  and the answer is the same class the walk finds first.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Optional, Text, Type

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
        validator = type(self).__dict__.get("_painpath_validator")  # not a parent's
        if validator is None:
            validator = _validator(self.action_response_format_spec())
            type(self)._painpath_validator = validator  # type: ignore[attr-defined]
        error = best_match(validator.iter_errors(result))
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
