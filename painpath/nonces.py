"""Nonces seen recently, so a signed request is accepted once (painpath/webhook_auth.py).

Two stores with one method, `first_use(nonce, ttl)`: Redis when the deployment
has it (several Rasa servers must share what they have seen; SET NX with an
expiry is atomic), else a bounded in-memory store for a single server.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Protocol

import redis

from painpath.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "painpath:nonce:"
MAX_ENTRIES = 100_000


class NonceStore(Protocol):
    def first_use(self, nonce: str, ttl: int) -> bool:
        """True the first time `nonce` is offered within `ttl` seconds, False after."""


class MemoryNonces:
    """Nonces in this process, each kept for its ttl; at most `max_entries`.

    When full of unexpired nonces the oldest is forgotten (logged): with a 5-minute
    window that takes more than 300 signed requests a second, and a forgotten nonce
    is still refused once its timestamp is stale.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def first_use(self, nonce: str, ttl: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._forget_expired(now)
            if nonce in self._expiry:
                return False
            if len(self._expiry) >= self.max_entries:
                self._expiry.popitem(last=False)
                logger.warning("nonce store full (%d): forgot the oldest", self.max_entries)
            self._expiry[nonce] = now + ttl
            return True

    def _forget_expired(self, now: float) -> None:
        """Drop expired nonces from the front (insertion order = expiry order, one ttl)."""
        while self._expiry:
            oldest, expires = next(iter(self._expiry.items()))
            if expires > now:
                return
            del self._expiry[oldest]


class RedisNonces:
    """Nonces in Redis, shared by every server of the deployment."""

    def __init__(self, client: "redis.Redis[bytes]", prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    def first_use(self, nonce: str, ttl: int) -> bool:
        return bool(self.client.set(self.prefix + nonce, b"1", nx=True, ex=ttl))


def nonce_store(settings: Settings) -> NonceStore:
    """Redis when the deployment names one (REDIS_HOST, …), else in memory."""
    if settings.redis_url:
        return RedisNonces(redis.Redis.from_url(settings.redis_url))
    return MemoryNonces()
