"""Rasa NLU component: the one-word replies PainPath's own messages advertise.

"Reply BREATHE", "Reply MENU", "Reply RESUME EXERCISE": when the whole message
is such a keyword (painpath/content/exercises.yaml `keywords`, case and
punctuation ignored) its intent is certain, whatever the statistical classifier
thought. Runs after the classifier and before the red-flag classifier, which
still wins.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from painpath.programs import get_programs

logger = logging.getLogger(__name__)


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z\s]", " ", text.lower()).split())


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class KeywordIntentClassifier(GraphComponent):
    """Sets the intent of a message that is exactly one of the advertised keywords."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {}

    def __init__(self, keywords: Dict[str, str]) -> None:
        self._keywords = keywords

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "KeywordIntentClassifier":
        return cls({normalise(k): v for k, v in get_programs().keywords.items()})

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            if not text or text.startswith("/"):
                continue
            name = self._keywords.get(normalise(text))
            if name is None:
                continue
            intent = {"name": name, "confidence": 1.0}
            ranking = [r for r in (message.get(INTENT_RANKING_KEY) or []) if r.get("name") != name]
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [intent, *ranking], add_to_output=True)
        return messages
