"""Talking to the Rasa server's HTTP API (started with --enable-api).

Every call carries a JWT in the Authorization header (never a token in the URL,
where proxies and logs keep it), signed with `settings.rasa_jwt_secret`, good for
`TOKEN_SECONDS` and, where the call is about one conversation, only for that one
(Rasa's `role: user` scope: username = conversation id).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx
import jwt

from painpath.settings import Settings, get_settings

logger = logging.getLogger(__name__)

START_CHECKIN_INTENT = "EXTERNAL_start_checkin"
START_EXERCISE_INTENT = "EXTERNAL_start_exercise"
TOKEN_SECONDS = 60
JWT_METHOD = "HS256"  # bot/painpath_rasa/serve.py starts Rasa with the same
ADMIN = "painpath"


def api_headers(conversation_id: str | None = None, settings: Settings | None = None,
                now: float | None = None) -> dict[str, str]:
    """The Authorization header for Rasa's HTTP API: for `conversation_id` only when
    given, else for the whole API (health checks, tests)."""
    settings = settings or get_settings()
    issued = int(now if now is not None else time.time())
    user = {"username": conversation_id, "role": "user"} if conversation_id is not None \
        else {"username": ADMIN, "role": "admin"}
    token = jwt.encode({"user": user, "iat": issued, "exp": issued + TOKEN_SECONDS},
                       settings.rasa_jwt_secret, algorithm=JWT_METHOD)
    return {"Authorization": f"Bearer {token}"}


class RasaUnavailable(RuntimeError):
    """The Rasa server did not answer."""


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _shared_client() -> httpx.Client:
    """One pooled client per process: a new httpx client per request costs ~10-20 ms of
    CPU (it builds an SSL context), which capped the scheduler's check-in starts."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(limits=httpx.Limits(max_connections=64,
                                                       max_keepalive_connections=32))
        return _client


def trigger_intent(conversation_id: str, intent: str, entities: dict[str, Any] | None = None,
                   output_channel: str | None = None, rasa_url: str | None = None,
                   timeout: float = 30.0) -> list[dict[str, Any]]:
    """Inject `intent` into the conversation; returns the bot's messages.

    With `output_channel` (e.g. "twilio") Rasa also sends them through that
    channel itself.
    """
    url = f"{rasa_url or get_settings().rasa_url}/conversations/{conversation_id}/trigger_intent"
    params = {"output_channel": output_channel} if output_channel else {}
    try:
        resp = _shared_client().post(url, params=params, headers=api_headers(conversation_id),
                                     json={"name": intent, "entities": entities or {}},
                                     timeout=timeout)
    except httpx.HTTPError as exc:
        raise RasaUnavailable(f"Rasa at {url} did not answer: {type(exc).__name__}") from None
    if resp.status_code >= 400:
        raise RasaUnavailable(f"Rasa answered {resp.status_code} for trigger_intent")
    return list(resp.json().get("messages") or [])
