"""A measured fix for Rasa 3.6's remote-action overhead.

`RemoteAction._validate_action_result` calls `jsonschema.validate(result, schema)`
for every custom-action response; with jsonschema 4.17 that re-checks the schema
against the meta-schema each time, which py-spy showed as ~40% of the Rasa
server's CPU per check-in turn (two or three action calls per turn). Here the
validator is built once per schema; the response is validated exactly as before
and an invalid one raises the same ValidationError with Rasa's message.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Text

_VALIDATORS: Dict[str, Any] = {}


def _validator(schema: Dict[Text, Any]) -> Any:
    from jsonschema.validators import validator_for

    key = json.dumps(schema, sort_keys=True)
    validator = _VALIDATORS.get(key)
    if validator is None:
        cls = validator_for(schema)
        cls.check_schema(schema)
        validator = _VALIDATORS[key] = cls(schema)
    return validator


def install() -> None:
    """Patch RemoteAction to reuse one compiled validator (idempotent)."""
    from jsonschema import ValidationError
    from jsonschema.exceptions import best_match
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    if getattr(RemoteAction, "_painpath_fast_validation", False):
        return

    def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
        error = best_match(_validator(self.action_response_format_spec()).iter_errors(result))
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
