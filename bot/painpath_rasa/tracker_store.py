"""Rasa's SQL tracker store, made to ride out a database restart.

Rasa's `SQLTrackerStore` (3.6) keeps pooled connections without checking them, so
the first conversation turn after a PostgreSQL restart (or failover) fails with
"server closed the connection unexpectedly"; Rasa then answers from an empty
in-memory tracker (its `FailSafeTrackerStore` fallback) — a patient in the middle
of a check-in is treated as a stranger. This store

- checks a pooled connection before using it (SQLAlchemy `pool_pre_ping`), so a
  restart between turns goes unnoticed;
- retries a read or a write that fails with a connection error for up to
  `retry_seconds` (default 15 s), so a restart *during* a turn delays it instead of
  losing its tracker.

Use it in endpoints.yml with the settings of Rasa's SQL store:

    tracker_store:
      type: bot.painpath_rasa.tracker_store.ResilientSQLTrackerStore
      dialect: postgresql
      url: <host>
      ...
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Optional, Text, TypeVar

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The production endpoints load this module in every Rasa server: it also makes the
# action-server calls ride out a restart (bot/painpath_rasa/resilience.py). Better
# installed from bot/painpath_rasa/__init__.py next to the perf fix; here so that it
# is on wherever this tracker store is.
from bot.painpath_rasa.resilience import install as _install_resilience  # noqa: E402

_install_resilience()


class ResilientSQLTrackerStore(SQLTrackerStore):
    """`SQLTrackerStore` with pre-pinged connections and retried connection errors."""

    def __init__(self, *args: Any, retry_seconds: float = 15.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_seconds = float(retry_seconds)
        url = self.engine.url
        self.engine.dispose()
        self.engine = sa.create_engine(url, pool_pre_ping=True, **create_engine_kwargs(url))
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.25
        while True:
            try:
                return await call()
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                if time.monotonic() + delay > deadline:
                    raise
                logger.warning("tracker store %s failed (%s); retrying in %.2f s", what,
                               type(exc.orig).__name__ if exc.orig else type(exc).__name__,
                               delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        return await self._retrying("read", lambda: super(ResilientSQLTrackerStore,
                                                          self).retrieve(sender_id))

    async def retrieve_full_tracker(self, conversation_id: Text) -> Optional[DialogueStateTracker]:
        return await self._retrying("read", lambda: super(
            ResilientSQLTrackerStore, self).retrieve_full_tracker(conversation_id))

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self._retrying("write", lambda: super(ResilientSQLTrackerStore, self).save(tracker))
