"""The Redis lock store shared by several Rasa servers (bot/painpath_rasa/lock_store.py),
against the real Redis on 127.0.0.1:6379 (db 7, a fresh key prefix per test).

Two store objects stand for two Rasa servers. Rasa's own `RedisLockStore` loses a
ticket when the other server writes between its read and its write; ours does not.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import threading
from typing import Any, Iterator

import pytest

redis = pytest.importorskip("redis")

REDIS_HOST = os.environ.get("PAINPATH_TEST_REDIS_HOST", "127.0.0.1")
REDIS_DB = int(os.environ.get("PAINPATH_TEST_REDIS_DB", "7"))


def _redis_up() -> bool:
    try:
        return bool(redis.Redis(host=REDIS_HOST, db=REDIS_DB, socket_timeout=1).ping())
    except redis.RedisError:
        return False


pytestmark = pytest.mark.skipif(not _redis_up(), reason=f"no Redis at {REDIS_HOST}:6379")


@pytest.fixture
def prefix() -> Iterator[str]:
    p = "t" + secrets.token_hex(6)
    yield p
    r = redis.Redis(host=REDIS_HOST, db=REDIS_DB)
    for key in r.scan_iter(f"{p}:*"):
        r.delete(key)


def _stores(kind: str, prefix: str) -> tuple[Any, Any]:
    from rasa.core.lock_store import RedisLockStore
    from rasa.utils.endpoints import EndpointConfig

    from bot.painpath_rasa.lock_store import AtomicRedisLockStore

    if kind == "rasa":
        return tuple(RedisLockStore(host=REDIS_HOST, db=REDIS_DB, key_prefix=prefix)
                     for _ in range(2))  # type: ignore[return-value]
    # built the way Rasa builds a custom lock store from endpoints.yml
    cfg = EndpointConfig(url=REDIS_HOST, type="x", port=6379, db=REDIS_DB, key_prefix=prefix)
    return AtomicRedisLockStore(endpoint_config=cfg), AtomicRedisLockStore(endpoint_config=cfg)


def _interleave_cleanup(server_a: Any, server_b: Any, kind: str) -> tuple[int, Any]:
    """Server A finishes its ticket; between A's read and A's write, server B issues one.

    Returns B's ticket and the lock as stored afterwards."""
    cid = "patient-1"
    ticket_a = server_a.issue_ticket(cid)
    issued: dict[str, int] = {}

    def b_issues_now() -> None:
        if "b" not in issued:
            issued["b"] = server_b.issue_ticket(cid)

    if kind == "rasa":  # Rasa's store reads with get_lock()
        real_get = server_a.get_lock

        def get_lock(conversation_id: str) -> Any:
            lock = real_get(conversation_id)
            b_issues_now()
            return lock

        server_a.get_lock = get_lock
    else:  # ours reads inside the transaction
        real_load = server_a._load

        def load(raw: Any) -> Any:
            lock = real_load(raw)
            b_issues_now()
            return lock

        server_a._load = load
    server_a.cleanup(cid, ticket_a)
    return issued["b"], server_b.get_lock(cid)


def test_rasa_redis_lock_store_loses_a_ticket_issued_between_read_and_write(prefix: str) -> None:
    """The defect this module exists for (so the next test means something)."""
    a, b = _stores("rasa", prefix)
    ticket_b, lock = _interleave_cleanup(a, b, "rasa")
    assert lock is None or lock.is_locked(ticket_b) and not lock.is_someone_waiting()


def test_atomic_lock_store_keeps_a_ticket_issued_between_read_and_write(prefix: str) -> None:
    a, b = _stores("atomic", prefix)
    ticket_b, lock = _interleave_cleanup(a, b, "atomic")
    assert lock is not None
    assert not lock.is_locked(ticket_b)  # B is served next, nobody else is in the lock
    assert [t.number for t in lock.tickets] == [ticket_b]


@pytest.mark.timeout(120)
def test_two_servers_never_hold_one_conversation_at_once(prefix: str) -> None:
    """Many turns of one conversation from two store objects on threads: one at a time,
    every turn gets the lock (no LockError), and the lock is gone at the end."""
    a, b = _stores("atomic", prefix)
    inside = 0
    most = 0
    done = 0
    errors: list[str] = []
    guard = threading.Lock()

    async def turn(store: Any) -> None:
        nonlocal inside, most, done
        async with store.lock("patient-2", wait_time_in_seconds=0.002):
            with guard:
                inside += 1
                most = max(most, inside)
            await asyncio.sleep(0.002)
            with guard:
                inside -= 1
                done += 1

    def worker(store: Any, n: int) -> None:
        for _ in range(n):
            try:
                asyncio.run(turn(store))
            except Exception as exc:  # noqa: BLE001 - counted and asserted below
                errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(a if i % 2 else b, 25)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert done == 150
    assert most == 1
    assert a.get_lock("patient-2") is None
