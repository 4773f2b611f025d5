"""Rasa custom actions (rasa-sdk). Thin: the logic lives in `painpath/`."""
from actions import cbt, checkin, escalation  # noqa: F401  (registers the actions)
