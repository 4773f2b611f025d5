"""HMAC signatures between the web app and the Rasa web-chat channel.

Rasa's REST channel accepts any sender id from anyone; PainPath's web channel
accepts only requests signed by the web app (which has checked the patient's
chat link), so a conversation is reachable only through a valid link.
"""
from __future__ import annotations

import hashlib
import hmac

from painpath.settings import get_settings

HEADER = "X-PainPath-Signature"


def sign_body(body: bytes, key: str | None = None) -> str:
    """Hex HMAC-SHA256 of `body` with the shared secret."""
    key = key or get_settings().secret_key
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def verify_body(body: bytes, signature: str | None, key: str | None = None) -> bool:
    """Constant-time check of a signature made by `sign_body`."""
    return bool(signature) and hmac.compare_digest(sign_body(body, key), signature or "")
