"""A Redis lock store whose updates are atomic across Rasa servers.

Rasa's `RedisLockStore` (3.6) updates a conversation's ticket lock with a plain
read → modify → write of one Redis key. Two Rasa servers handling messages of the
same conversation at the same moment can overwrite each other's update: a ticket
issued on one server is lost when the other saves its finished lock, or the lock is
deleted while a ticket waits on it ("Could not acquire lock", the message is
dropped). RasaHQ/rasa#9213 reports it; the fix (`ConcurrentRedisLockStore`,
RasaHQ/rasa#11256) was reverted from Rasa Open Source.

This store keeps Rasa's key layout and `TicketLock` logic, and makes every
read-modify-write one Redis optimistic transaction (WATCH the key, MULTI/EXEC,
retried when another server changed it in between). Use it in endpoints.yml:

    lock_store:
      type: bot.painpath_rasa.lock_store.AtomicRedisLockStore
      url: <redis host>
      port: 6379
      db: 1
      key_prefix: <alphanumeric, optional>

Ticket expiry compares `time.time()` of different servers: keep their clocks in sync
(NTP), as Rasa's own store also assumes.
"""
from __future__ import annotations

import logging
from typing import Any, Optional, Text

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)


class AtomicRedisLockStore(RedisLockStore):
    """`RedisLockStore` with atomic ticket updates (safe with several Rasa servers)."""

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, **kwargs: Any) -> None:
        """Built by Rasa from the `lock_store` section of endpoints.yml (custom type).

        Args:
            endpoint_config: the section: `url` is the Redis host; `port`, `db`,
                `username`, `password`, `use_ssl`, `key_prefix`, `socket_timeout`
                as for Rasa's `redis` lock store.
            kwargs: the same settings given directly (tests).
        """
        if endpoint_config is not None:
            kwargs = {**endpoint_config.kwargs, **kwargs}
            if endpoint_config.url:
                kwargs.setdefault("host", endpoint_config.url)
        kwargs.pop("type", None)
        super().__init__(**kwargs)

    def _key(self, conversation_id: Text) -> str:
        return self.key_prefix + conversation_id

    def _load(self, raw: Any) -> Optional[TicketLock]:
        import json

        return TicketLock.from_dict(json.loads(raw)) if raw else None

    def issue_ticket(self, conversation_id: Text,
                     lock_lifetime: float = LOCK_LIFETIME) -> int:
        """Issue the next ticket of the conversation's lock (creating it) atomically."""
        key = self._key(conversation_id)

        def issue(pipe: Any) -> int:
            lock = self._load(pipe.get(key)) or self.create_lock(conversation_id)
            ticket = lock.issue_ticket(lock_lifetime)
            pipe.multi()
            pipe.set(key, lock.dumps())
            return ticket

        try:
            return int(self.red.transaction(issue, key, value_from_callable=True))
        except Exception as exc:  # noqa: BLE001 - Rasa expects LockError, as its own store
            raise LockError(f"Error while acquiring lock. Error:\n{exc}") from exc

    def update_lock(self, conversation_id: Text) -> None:
        """Remove expired tickets from the conversation's lock atomically."""
        key = self._key(conversation_id)

        def update(pipe: Any) -> None:
            lock = self._load(pipe.get(key))
            if lock is None:
                return
            lock.remove_expired_tickets()
            pipe.multi()
            pipe.set(key, lock.dumps())

        self.red.transaction(update, key)

    def finish_serving(self, conversation_id: Text, ticket_number: int) -> None:
        """Remove one ticket from the conversation's lock atomically."""
        self._finish(conversation_id, ticket_number, delete_when_idle=False)

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        """Remove the ticket; delete the lock only if no other ticket is in it — one
        atomic step, so a ticket issued meanwhile on another server is never lost."""
        self._finish(conversation_id, ticket_number, delete_when_idle=True)

    def _finish(self, conversation_id: Text, ticket_number: int, delete_when_idle: bool) -> None:
        key = self._key(conversation_id)

        def finish(pipe: Any) -> None:
            lock = self._load(pipe.get(key))
            if lock is None:
                return
            lock.remove_ticket_for(ticket_number)
            pipe.multi()
            if delete_when_idle and not lock.is_someone_waiting():
                pipe.delete(key)
            else:
                pipe.set(key, lock.dumps())

        self.red.transaction(finish, key)
