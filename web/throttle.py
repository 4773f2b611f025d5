"""Sign-in throttling for the dashboard: a growing wait, never a lockout.

Failed sign-ins are counted per (client address, username) pair and per client
address. Past a few free failures a key must wait before its next attempt is even
checked, and the wait doubles with each further failure, up to `cap`:
2 s, 4 s, 8 s, … 5 minutes. Only the client that failed waits: the nurse whose
username someone is guessing still signs in from her own computer with the right
password. A refused attempt is answered before any password is hashed and is not
counted (waiting, not hammering, is what ends the wait). A success clears its pair.
Counts are forgotten `window` after the last failure.

The counts live in Redis when the deployment has one (REDIS_URL or REDIS_HOST, as
the Rasa lock store), so every web process (and a restarted one) sees the same
counts; otherwise in this process's memory, bounded to `max_keys` keys. If Redis
stops answering, the process falls back to its own memory for that call rather
than refusing every sign-in.
"""
from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import redis

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True)
class Count:
    """Failures of one key and the time of the last one (wall-clock seconds)."""

    failures: int
    last: float


class CountStore(Protocol):
    def get(self, key: str) -> Count: ...

    def add_failure(self, key: str, now: float, ttl: float) -> Count: ...

    def clear(self, key: str) -> None: ...


class MemoryCounts:
    """Counts in this process, forgotten after `ttl` and bounded to `max_keys`
    (a flood of made-up usernames cannot grow the process without bound)."""

    def __init__(self, max_keys: int = 50_000, clock: Clock = time.time) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._counts: dict[str, tuple[Count, float]] = {}  # key -> (count, expires)
        self._lock = threading.Lock()

    def get(self, key: str) -> Count:
        with self._lock:
            held = self._counts.get(key)
            if held is None or held[1] <= self.clock():
                return Count(0, 0.0)
            return held[0]

    def add_failure(self, key: str, now: float, ttl: float) -> Count:
        with self._lock:
            held = self._counts.get(key)
            failures = held[0].failures if held and held[1] > now else 0
            count = Count(failures + 1, now)
            self._counts[key] = (count, now + ttl)
            if len(self._counts) > self.max_keys:
                self._prune(now)
            return count

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._counts)

    def _prune(self, now: float) -> None:
        """Drop expired keys; if that is not enough, the least recent ones, down to
        half of `max_keys`."""
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        excess = len(self._counts) - self.max_keys // 2
        if excess > 0:
            for key, _ in sorted(self._counts.items(), key=lambda kv: kv[1][0].last)[:excess]:
                del self._counts[key]


class RedisCounts:
    """Counts in Redis: one hash per key (`n` failures, `last` time) expiring `ttl`
    after the last failure; the increment and the expiry go in one transaction."""

    def __init__(self, client: redis.Redis, prefix: str = "painpath:login:") -> None:
        self.client = client
        self.prefix = prefix

    def get(self, key: str) -> Count:
        n, last = self.client.hmget(self.prefix + key, "n", "last")
        return Count(int(n or 0), float(last or 0.0))

    def add_failure(self, key: str, now: float, ttl: float) -> Count:
        name = self.prefix + key
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(name, "n", 1)
        pipe.hset(name, "last", repr(now))
        pipe.expire(name, max(1, math.ceil(ttl)))
        failures, _, _ = pipe.execute()
        return Count(int(failures), now)

    def clear(self, key: str) -> None:
        self.client.delete(self.prefix + key)


def _hashed(*parts: str) -> str:
    """A key that keeps usernames and addresses out of Redis in clear."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


class LoginThrottle:
    """Progressive delays for failed sign-ins (see the module docstring).

    Args:
        limit: free failures per (address, username) pair before waits begin.
        ip_limit: free failures per address (any usernames: password spraying).
        base: the first wait in seconds; each further failure doubles it.
        cap: the longest wait in seconds.
        window: seconds after the last failure when a key's count is forgotten.
        store: where counts live (default: this process's memory).
        clock: wall-clock time (tests move it).
    """

    def __init__(self, limit: int = 5, ip_limit: int = 30, base: float = 2.0,
                 cap: float = 300.0, window: float = 3600.0,
                 store: CountStore | None = None, clock: Clock = time.time,
                 max_keys: int = 50_000) -> None:
        self.limit, self.ip_limit = limit, ip_limit
        self.base, self.cap, self.window = base, cap, window
        self.clock = clock
        self.fallback = MemoryCounts(max_keys=max_keys, clock=clock)
        self.store: CountStore = store or self.fallback

    def _keys(self, username: str, ip: str) -> list[tuple[str, int]]:
        name = username.strip().lower()
        return [(_hashed("pair", ip, name), self.limit), (_hashed("ip", ip), self.ip_limit)]

    def delay_after(self, failures: int, free: int) -> float:
        """The wait after `failures` failures of a key with `free` free ones."""
        if failures < free:
            return 0.0
        return min(self.cap, self.base * 2 ** min(failures - free, 32))

    def _call(self, what: Callable[[CountStore], Count | None]) -> Count | None:
        try:
            return what(self.store)
        except redis.RedisError as exc:
            logger.warning("login throttle: Redis unavailable (%s); counting in memory",
                           type(exc).__name__)
            return what(self.fallback)

    def wait_seconds(self, username: str, ip: str) -> float:
        """How long this client must wait before a sign-in as `username` is checked
        (0: check it now)."""
        now = self.clock()
        wait = 0.0
        for key, free in self._keys(username, ip):
            count = self._call(lambda store, key=key: store.get(key))  # type: ignore[misc]
            if count is not None and count.failures:
                until = count.last + self.delay_after(count.failures, free)
                wait = max(wait, until - now)
        return max(0.0, wait)

    def locked(self, username: str, ip: str) -> bool:
        """True while this client must wait (no attempt is checked)."""
        return self.wait_seconds(username, ip) > 0

    def failed(self, username: str, ip: str) -> None:
        """Count a checked sign-in that failed."""
        now = self.clock()
        for key, _ in self._keys(username, ip):
            self._call(lambda store, key=key: store.add_failure(key, now, self.window))  # type: ignore[misc]

    def succeeded(self, username: str, ip: str) -> None:
        """A correct password from this client: its pair starts afresh."""
        pair = self._keys(username, ip)[0][0]
        self._call(lambda store: store.clear(pair))  # type: ignore[func-returns-value]

    def tracked(self) -> int:
        """Keys held in this process's memory (for tests and monitoring)."""
        return len(self.fallback)


def throttle_for(redis_url: str | None, prefix: str = "painpath:login:") -> LoginThrottle:
    """The deployment's throttle: counts in Redis at `redis_url`, else in memory."""
    if not redis_url:
        return LoginThrottle()
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    return LoginThrottle(store=RedisCounts(client, prefix))
