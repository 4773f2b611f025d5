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
  losing its tracker;
- reads and writes Rasa's `events` table (same rows, same queries' meaning) with
  prepared SQLAlchemy Core statements instead of ORM objects. Every turn reads the
  tracker and writes it, on Rasa's event loop; bench/tracker_store.py measures both
  ways.

Use it in endpoints.yml with the settings of Rasa's SQL store:

    tracker_store:
      type: bot.painpath_rasa.tracker_store.ResilientSQLTrackerStore
      dialect: postgresql
      url: <host>
      ...
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Awaitable, Callable, Optional, Text, TypeVar

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

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
        self._prepare_statements()

    def _prepare_statements(self) -> None:
        """The statements of a turn, built once: Rasa's `_event_query` and the insert."""
        events = self.SQLEvent.__table__
        sender = sa.bindparam("sender_id")
        session_start = (sa.select(sa.func.max(events.c.timestamp))
                         .where(events.c.sender_id == sender,
                                events.c.type_name == SessionStarted.type_name)
                         .scalar_subquery())
        since_start = sa.or_(events.c.timestamp >= session_start, session_start.is_(None))
        self._select_all = (sa.select(events.c.data).where(events.c.sender_id == sender)
                            .order_by(events.c.id))
        self._select_session = self._select_all.where(since_start)
        self._count_session = (sa.select(sa.func.count()).select_from(events)
                               .where(events.c.sender_id == sender, since_start))
        self._insert = events.insert()

    def _read(self, sender_id: Text, all_sessions: bool) -> Optional[DialogueStateTracker]:
        query = self._select_all if all_sessions else self._select_session
        with self.engine.connect() as conn:
            rows = conn.execute(query, {"sender_id": sender_id}).scalars().all()
        if not self.domain or not rows:
            return None
        return DialogueStateTracker.from_dict(sender_id, [json.loads(r) for r in rows],
                                              self.domain.slots)

    def _write(self, tracker: DialogueStateTracker) -> None:
        """Append the events not stored yet (Rasa's rule: those past the number stored
        since the session started), in one transaction."""
        with self.engine.begin() as conn:
            stored = conn.execute(self._count_session, {"sender_id": tracker.sender_id}).scalar()
            rows = []
            for event in list(tracker.events)[stored:]:
                data = event.as_dict()
                rows.append({
                    "sender_id": tracker.sender_id, "type_name": event.type_name,
                    "timestamp": data.get("timestamp"),
                    "intent_name": data.get("parse_data", {}).get("intent", {}).get(
                        INTENT_NAME_KEY),
                    "action_name": data.get("name"), "data": json.dumps(data)})
            if rows:
                conn.execute(self._insert, rows)

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

    async def _retrieve(self, sender_id: Text,
                        fetch_events_from_all_sessions: bool) -> Optional[DialogueStateTracker]:
        return self._read(sender_id, fetch_events_from_all_sessions)

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        return await self._retrying("read", lambda: super(ResilientSQLTrackerStore,
                                                          self).retrieve(sender_id))

    async def retrieve_full_tracker(self, conversation_id: Text) -> Optional[DialogueStateTracker]:
        return await self._retrying("read", lambda: super(
            ResilientSQLTrackerStore, self).retrieve_full_tracker(conversation_id))

    async def _save_once(self, tracker: DialogueStateTracker) -> None:
        await self.stream_events(tracker)  # an event broker, if one is configured
        self._write(tracker)

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self._retrying("write", lambda: self._save_once(tracker))
