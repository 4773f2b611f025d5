"""Rasa custom actions (rasa-sdk). Thin: the logic lives in `painpath/`."""
from actions import cbt, checkin, escalation, screens  # noqa: F401  (registers the actions)
from painpath.logsafety import install_phone_redaction
from painpath.settings import get_settings

# The action server has configured its logging by the time it imports this package:
# third-party error text (Twilio's, for one) can name a phone number.
install_phone_redaction()

# A misconfigured action server stops here (ConfigError names the variable) rather
# than failing on the first alert it has to send.
get_settings()
