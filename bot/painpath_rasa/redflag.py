"""Rasa NLU component: red-flag triage on every message, in every dialogue state.

Wraps `painpath.triage.TriageEngine`. When a message carries a red flag (any
tier above none) or a screen (a direct safety question to ask) it becomes the intent `red_flag` with confidence 1.0 and the
entities `red_flag_tier`, `red_flag_reason` and `red_flag_screen`; one rule per dialogue state
then runs `action_handle_red_flag` (bot/rules/red_flags.yml). The patient's
procedure comes from the channel's metadata (both PainPath channels send it).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from painpath.content import PROCEDURE_IDS
from painpath.triage import TriageEngine

logger = logging.getLogger(__name__)

RED_FLAG_INTENT = "red_flag"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class RedFlagClassifier(GraphComponent):
    """Overrides the intent with `red_flag` when the triage engine finds one."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"lexicon": None}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._engine = TriageEngine(config.get("lexicon"))

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "RedFlagClassifier":
        return cls(config)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._classify(message)
        return messages

    def _classify(self, message: Message) -> None:
        text = message.get(TEXT) or ""
        if not text or text.startswith("/"):  # an intent injected by Rasa itself
            return
        metadata = message.get("metadata") or {}
        procedure = metadata.get("procedure") if isinstance(metadata, dict) else None
        if procedure not in PROCEDURE_IDS:
            procedure = None
        limit = metadata.get("glucose_limit_mg_dl") if isinstance(metadata, dict) else None
        if isinstance(limit, bool) or not isinstance(limit, (int, float)):
            limit = None  # the patient's own diabetes-plan limit, when the channel knows it
        result = self._engine.triage(text, procedure, glucose_limit_mg_dl=limit)
        if result.tier == "none" and result.screen is None:
            return
        intent = {"name": RED_FLAG_INTENT, "confidence": 1.0}
        message.set(INTENT, intent, add_to_output=True)
        ranking = [r for r in (message.get(INTENT_RANKING_KEY) or [])
                   if r.get("name") != RED_FLAG_INTENT]
        message.set(INTENT_RANKING_KEY, [intent, *ranking], add_to_output=True)
        entities = [e for e in (message.get(ENTITIES) or [])
                    if e.get("entity") not in ("red_flag_tier", "red_flag_reason",
                                               "red_flag_screen")]
        extra: List[Dict[str, Any]] = [{"entity": "red_flag_tier", "value": result.tier,
                                        "start": 0, "end": len(text),
                                        "extractor": self.__class__.__name__}]
        extra += [{"entity": "red_flag_reason", "value": reason, "start": 0, "end": len(text),
                   "extractor": self.__class__.__name__} for reason in result.reasons]
        if result.screen:
            extra.append({"entity": "red_flag_screen", "value": result.screen, "start": 0,
                          "end": len(text), "extractor": self.__class__.__name__})
        message.set(ENTITIES, entities + extra, add_to_output=True)


def tier_of(entities: List[Dict[str, Any]]) -> Optional[str]:
    """The `red_flag_tier` entity value, if any."""
    return next((e.get("value") for e in entities if e.get("entity") == "red_flag_tier"), None)
