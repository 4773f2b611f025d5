"""HMAC signatures between the web app and the Rasa web-chat channel.

Rasa's REST channel accepts any sender id from anyone; PainPath's web channel
accepts only requests signed by the web app (which has checked the patient's
chat link), so a conversation is reachable only through a valid link.

The signature covers a timestamp and a random nonce as well as the body, with a
key of its own (`settings.key_for("web-rasa")`): the channel refuses a request
more than `MAX_AGE_SECONDS` away from its clock, and a nonce it has seen, so a
captured request cannot be played again ("my pain is 0" sent twice, or later).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Literal

from painpath.nonces import NonceStore

HEADER = "X-PainPath-Signature"
TIMESTAMP_HEADER = "X-PainPath-Timestamp"
NONCE_HEADER = "X-PainPath-Nonce"
PURPOSE = "web-rasa"  # settings.key_for(PURPOSE)
MAX_AGE_SECONDS = 300

Refusal = Literal["unsigned", "stale", "bad signature", "replayed"]


def _mac(key: bytes, timestamp: str, nonce: str, body: bytes) -> str:
    material = b"v1\n" + timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
    return hmac.new(key, material, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, key: bytes, now: float | None = None) -> dict[str, str]:
    """The headers that sign `body` now, with a fresh nonce."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_hex(16)
    return {TIMESTAMP_HEADER: timestamp, NONCE_HEADER: nonce,
            HEADER: _mac(key, timestamp, nonce, body)}


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header by name, whatever its case (Sanic's and httpx's mappings both)."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value or ""


def verify(body: bytes, headers: Mapping[str, str], key: bytes, nonces: NonceStore,
           now: float | None = None) -> Refusal | None:
    """None when the request is signed, fresh and new (its nonce is then spent);
    otherwise why it is refused. The nonce is recorded only for a valid signature,
    so nobody can spend the web app's nonces in advance."""
    signature, timestamp, nonce = (_header(headers, h) for h in
                                   (HEADER, TIMESTAMP_HEADER, NONCE_HEADER))
    if not (signature and timestamp and nonce) or len(nonce) > 64:
        return "unsigned"
    if not hmac.compare_digest(_mac(key, timestamp, nonce, body), signature):
        return "bad signature"
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return "unsigned"
    if age > MAX_AGE_SECONDS:
        return "stale"
    # kept a little longer than the window, so it outlives any acceptable timestamp
    if not nonces.first_use(nonce, ttl=2 * MAX_AGE_SECONDS + 60):
        return "replayed"
    return None
