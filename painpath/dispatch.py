"""Outbound SMS dispatch: claim queued messages from the database, send, record.

Every outbound SMS is a `message` row first (painpath/messaging.py). Whoever sends
it — a dispatcher worker (`painpath dispatcher`), the scheduler's embedded one, or a
caller that sends at once (a conversation reply, a nurse alert) — first *claims* it:

- the row moves to ``sending`` with a lease (``lease_until``) and the claimer's
  token (``claimed_by``); ``attempts`` counts the claim;
- on PostgreSQL a batch is claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` so several
  workers in several processes take disjoint batches without waiting on each other;
  on SQLite (one writer at a time) with one atomic ``UPDATE … WHERE id IN (SELECT …
  LIMIT n)``, read back by the claim token;
- claimable: ``queued`` rows without a provider SID (Twilio also calls an accepted
  message "queued") whose ``next_attempt_at`` (a not-before time) has come,
  ``failed`` rows whose backoff has passed, and
  ``sending`` rows whose lease expired (the sender died mid-send);
- the result is recorded only while the claim is still ours (same token).

A sender that dies after the provider accepted the SMS but before the result was
recorded would make the next sender send it again. So a claim also sets
``unsure_since`` (kept until an attempt has a definite outcome: the provider's SID
or a refusal with an error code); a row claimed with an older ``unsure_since`` is
first looked up at the provider (same recipient and body, created since then, SID
not recorded on another row), and a match is adopted instead of sending again.

A claimed row of routine outreach (``purpose == "outreach"``) whose patient is held by
an open emergency or crisis escalation is set aside as ``held`` instead of being sent,
and outreach or a welcome to a patient who has opted out is ``cancelled``
(painpath/outreach.py).

Sends run on a bounded thread pool, so one slow provider call holds one slot, never
the batch.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Protocol

from sqlalchemy import and_, func, or_, select, update

from painpath import outreach
from painpath.db import get_engine, new_session
from painpath.messaging import (
    BACKOFF_SECONDS, MAX_ATTEMPTS, OPT_OUT_ERROR, SendResult, SmsGateway, get_gateway)
from painpath.models import Message, utcnow
from painpath.phone import mask

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60.0  # well above the gateway's HTTP timeout (10 s)
CONCURRENCY = 16  # sends in flight per worker
POLL_SECONDS = 0.2  # idle wait between claims
LOOKUP_SKEW = timedelta(seconds=5)  # clock skew allowed when matching a provider's record


class StopFlag(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class SignalStop:
    """A stop flag for SIGTERM/SIGINT handlers.

    `threading.Event.set` takes the event's (non-reentrant) lock; a handler calling it
    while the main thread is inside `Event.wait` on the same event — holding that lock
    — deadlocks the process, and the dispatcher never stops. Setting this flag is one
    assignment; waiting sleeps in short slices (a signal also cuts a sleep short).
    """

    def __init__(self, slice_seconds: float = 0.1) -> None:
        self._set = False
        self._slice = slice_seconds

    def set(self, *_: object) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            left = self._slice if deadline is None else deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(self._slice, left))
        return self._set


@dataclass(frozen=True)
class Claimed:
    """One message this claimer owns until `lease_until`."""

    id: int
    to: str
    body: str
    patient_id: str | None
    attempts: int
    token: str
    claimed_at: datetime
    unsure_since: datetime | None  # an earlier attempt may have gone out (look it up)
    from_: str | None = None  # the number it leaves from (painpath/senders.py)


def new_token(name: str) -> str:
    """A claim token unique to this claim (fits `claimed_by`)."""
    return f"{name[:40]}:{uuid.uuid4().hex[:16]}"


def default_name() -> str:
    return f"{socket.gethostname()[:20]}:{os.getpid()}"


def _claimable(now: datetime, explicit: bool = False,  # type: ignore[no-untyped-def]
               queued_older_than: timedelta | None = None):
    """Rows a sender may claim at `now`. `explicit` (a caller naming the row):
    a failed row is claimable before its backoff has passed. `queued_older_than`:
    only queued rows nobody picked up for that long (the scheduler's safety net)."""
    # "queued" with a SID is Twilio's word for "accepted": only ours (no SID) are outbox
    queued = and_(Message.status == "queued", Message.provider_sid.is_(None),
                  # not before its time (a welcome written in quiet hours waits for 08:00)
                  or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now))
    if queued_older_than is not None:
        queued = and_(queued, Message.created_at <= now - queued_older_than)
    failed = Message.status == "failed"
    if not explicit:
        failed = and_(failed, Message.next_attempt_at <= now)
    else:
        failed = and_(failed, Message.attempts < MAX_ATTEMPTS,
                      or_(Message.error.is_(None), Message.error.notlike(f"{OPT_OUT_ERROR}:%")))
    return and_(Message.direction == "out", Message.channel == "sms", or_(
        queued,
        failed,
        and_(Message.status == "sending", Message.lease_until < now)))


def claim(limit: int, *, name: str = "", now: datetime | None = None,
          ids: list[int] | None = None, lease_seconds: float = LEASE_SECONDS,
          queued_older_than: timedelta | None = None,
          database_url: str | None = None) -> list[Claimed]:
    """Claim up to `limit` claimable SMS (oldest first; only `ids` when given)."""
    now = now or utcnow()
    token = new_token(name or default_name())
    lease = now + timedelta(seconds=lease_seconds)
    values = dict(status="sending", claimed_by=token, lease_until=lease,
                  attempts=Message.attempts + 1,
                  unsure_since=func.coalesce(Message.unsure_since, now), updated_at=now)
    dialect = get_engine(database_url).dialect.name
    with new_session(database_url) as session, session.begin():
        where = _claimable(now, ids is not None, queued_older_than)
        candidates = (select(Message.id).where(where)
                      .order_by(Message.id).limit(limit))
        if ids is not None:
            candidates = candidates.where(Message.id.in_(ids))
        if dialect == "postgresql":
            # rows another worker holds are skipped, not waited for
            got = session.execute(candidates.with_for_update(skip_locked=True)).scalars().all()
            if not got:
                return []
            session.execute(update(Message).where(Message.id.in_(got)).values(**values)
                            .execution_options(synchronize_session=False))
        else:
            # SQLite: one atomic statement under the database's single write lock —
            # taken only when a read shows there is something to claim (idle polls
            # must not queue behind the other processes' writes)
            if session.execute(candidates.limit(1)).first() is None:
                return []
            session.execute(update(Message).where(
                Message.id.in_(candidates.scalar_subquery()), where)
                .values(**values).execution_options(synchronize_session=False))
        rows = session.execute(
            select(Message.id, Message.to, Message.body, Message.patient_id, Message.attempts,
                   Message.unsure_since, Message.purpose, Message.from_)
            .where(Message.claimed_by == token, Message.status == "sending")
            .order_by(Message.id)).all()
        # routine outreach to a patient held by an open emergency or crisis is not sent
        stopped = outreach.stop_claimed(session, [(r.id, r.patient_id, r.purpose) for r in rows
                                                  if r.purpose is not None], now)
        rows = [r for r in rows if r.id not in stopped]
    return [Claimed(id=r.id, to=r.to, body=r.body, patient_id=r.patient_id,
                    attempts=r.attempts, token=token, claimed_at=now,
                    unsure_since=r.unsure_since if r.unsure_since and r.unsure_since < now
                    else None, from_=r.from_)
            for r in rows]


def _definite(result: SendResult) -> bool:
    """Whether an attempt's outcome is known (accepted with a SID, or refused)."""
    return result.sid is not None or (result.error_code is not None and not result.uncertain)


def send_claimed(c: Claimed, gateway: SmsGateway) -> tuple[SendResult, bool]:
    """Send one claimed message, unless a lookup shows an earlier attempt went out.

    Returns (result, adopted): adopted when the provider already had it."""
    if c.unsure_since is not None:
        found = _already_sent(c, gateway)
        if found is not None:
            logger.info("message %s: an earlier attempt reached the provider; not resent", c.id)
            return found, True
    return gateway.send(c.to, c.body, from_=c.from_), False


def _already_sent(c: Claimed, gateway: SmsGateway) -> SendResult | None:
    lookup = getattr(gateway, "find_sent", None)
    if lookup is None or c.unsure_since is None:
        return None
    try:
        candidates = lookup(c.to, c.body, c.unsure_since - LOOKUP_SKEW, from_=c.from_)
    except Exception:  # noqa: BLE001 - a failed lookup must not stop the send
        logger.warning("message %s: provider lookup failed; sending", c.id, exc_info=True)
        return None
    if not candidates:
        return None
    with new_session() as session:
        taken = set(session.execute(select(Message.provider_sid).where(
            Message.provider_sid.in_([r.sid for r in candidates]),
            Message.id != c.id)).scalars())
    for result in candidates:
        if result.sid not in taken:
            return result
    return None


def record_result(c: Claimed, result: SendResult, now: datetime | None = None,
                  database_url: str | None = None) -> bool:
    """Record the outcome while the claim is still ours. Returns False if it was lost
    (lease expired and another sender took the row; it will look this attempt up)."""
    now = now or utcnow()
    definite = _definite(result)
    retryable = (result.status == "failed" and result.error_code != OPT_OUT_ERROR
                 and c.attempts < MAX_ATTEMPTS)
    next_at = (now + timedelta(seconds=BACKOFF_SECONDS[min(c.attempts, len(BACKOFF_SECONDS)) - 1])
               if retryable else None)
    with new_session(database_url) as session, session.begin():
        done = session.execute(
            update(Message).where(Message.id == c.id, Message.claimed_by == c.token,
                                  Message.status == "sending")
            .values(status=result.status, provider_sid=result.sid, error=result.error,
                    next_attempt_at=next_at, lease_until=None, updated_at=now,
                    unsure_since=None if definite else Message.unsure_since)
            .execution_options(synchronize_session=False)).rowcount
        if done and result.error_code == OPT_OUT_ERROR and c.patient_id:
            from painpath.consent import record_opt_out

            record_opt_out(session, c.patient_id, source="twilio:21610")
    if not done:
        logger.warning("message %s: claim lost before the result was recorded (sid %s)",
                       c.id, result.sid)
    return bool(done)


def deliver_claimed(c: Claimed, gateway: SmsGateway, database_url: str | None = None) -> SendResult:
    """Send and record one claimed message (never raises for a provider error)."""
    try:
        result, _ = send_claimed(c, gateway)
    except Exception as exc:  # noqa: BLE001 - a gateway bug must not lose the row
        logger.exception("message %s: gateway error", c.id)
        result = SendResult(sid=None, status="failed", error=type(exc).__name__, uncertain=True)
    record_result(c, result, database_url=database_url)
    return result


@dataclass
class DispatchStats:
    """What one worker did (logged periodically; the bench reads the log line)."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    adopted: int = 0  # found at the provider after a crash: not resent
    claims: int = 0
    claim_ms: float = 0.0
    send_ms: list[float] = field(default_factory=list)
    record_ms: float = 0.0

    def summary(self) -> dict[str, object]:
        s = sorted(self.send_ms)
        pct = (lambda q: round(s[min(len(s) - 1, int(q * len(s)))], 1) if s else None)  # noqa: E731
        return {"claimed": self.claimed, "sent": self.sent, "failed": self.failed,
                "adopted": self.adopted, "claims": self.claims,
                "claim_ms_total": round(self.claim_ms, 1),
                "record_ms_total": round(self.record_ms, 1),
                "send_ms_p50": pct(0.5), "send_ms_p95": pct(0.95), "send_ms_max": pct(1.0)}


class Dispatcher:
    """One worker: claims batches and sends them on a bounded pool of threads.

    Each thread has its own gateway (the twilio client keeps one HTTP session per
    client), so a slow call holds one slot while the others keep sending.
    """

    def __init__(self, *, database_url: str | None = None, concurrency: int = CONCURRENCY,
                 lease_seconds: float = LEASE_SECONDS, poll_seconds: float = POLL_SECONDS,
                 name: str | None = None,
                 gateway_factory: Callable[[], SmsGateway] | None = None) -> None:
        self.database_url = database_url
        self.concurrency = max(1, concurrency)
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.name = name or default_name()
        self._factory = gateway_factory
        self._local = threading.local()
        self._free = threading.Semaphore(self.concurrency)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self.stats = DispatchStats()

    def _gateway(self) -> SmsGateway:
        gw = getattr(self._local, "gateway", None)
        if gw is None:
            gw = self._local.gateway = self._factory() if self._factory else _fresh_gateway()
        return gw

    def _send(self, c: Claimed) -> None:
        try:
            t0 = time.perf_counter()
            adopted = False
            try:
                result, adopted = send_claimed(c, self._gateway())
            except Exception as exc:  # noqa: BLE001
                logger.exception("message %s: gateway error", c.id)
                result = SendResult(sid=None, status="failed", error=type(exc).__name__,
                                    uncertain=True)
            t1 = time.perf_counter()
            record_result(c, result, database_url=self.database_url)
            t2 = time.perf_counter()
            with self._lock:
                self.stats.send_ms.append((t1 - t0) * 1000)
                self.stats.record_ms += (t2 - t1) * 1000
                if result.status == "failed":
                    self.stats.failed += 1
                else:
                    self.stats.sent += 1
                self.stats.adopted += int(adopted)
        except Exception:  # noqa: BLE001 - the row stays claimed; its lease expires
            logger.exception("message %s: not recorded; lease will expire", c.id)
        finally:
            self._free.release()
            self._wake.set()

    def run_once(self, pool: ThreadPoolExecutor, now: datetime | None = None) -> int:
        """Claim as many messages as there are free slots and start sending them."""
        free = 0
        while self._free.acquire(blocking=False):
            free += 1
        if free == 0:
            return 0
        t0 = time.perf_counter()
        try:
            batch = claim(free, name=self.name, now=now, lease_seconds=self.lease_seconds,
                          database_url=self.database_url)
        except Exception:
            for _ in range(free):
                self._free.release()
            raise
        with self._lock:
            self.stats.claims += 1
            self.stats.claim_ms += (time.perf_counter() - t0) * 1000
            self.stats.claimed += len(batch)
        for _ in range(free - len(batch)):
            self._free.release()
        for c in batch:
            pool.submit(self._send, c)
        return len(batch)

    def run(self, stop: StopFlag, log_every: float = 10.0) -> None:
        """Run until `stop` is set; in-flight sends finish before it returns."""
        logger.info("dispatcher %s: %d sends in flight at most, lease %.0f s", self.name,
                    self.concurrency, self.lease_seconds)
        last_log = time.monotonic()
        logged_claimed = -1
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="dispatch") as pool:
            while not stop.is_set():
                try:
                    got = self.run_once(pool)
                except Exception:  # noqa: BLE001 - database away: wait and retry
                    logger.exception("dispatcher %s: claim failed", self.name)
                    got = 0
                    stop.wait(1.0)
                if got == 0:
                    self._wake.clear()
                    self._wake.wait(self.poll_seconds)  # a slot freed or the poll is due
                if time.monotonic() - last_log >= log_every and self.stats.claimed != logged_claimed:
                    logged_claimed = self.stats.claimed
                    last_log = time.monotonic()
                    self.log_stats()
        self.log_stats()

    def log_stats(self) -> None:
        import json

        with self._lock:
            logger.info("dispatch stats %s %s", self.name, json.dumps(self.stats.summary()))


def _fresh_gateway() -> SmsGateway:
    """A gateway of the configured kind, not shared with other threads."""
    from painpath.messaging import ConsoleGateway, TwilioGateway
    from painpath.settings import get_settings

    settings = get_settings()
    return TwilioGateway(settings) if settings.twilio_configured else ConsoleGateway()


def drain(*, database_url: str | None = None, gateway: SmsGateway | None = None,
          now: datetime | None = None, limit: int = 500, name: str = "",
          queued_older_than: timedelta | None = None) -> list[int]:
    """Claim and send every claimable SMS once, in this thread (tests, the CLI's
    `--once`, `retry_due`). Returns the ids handled."""
    gateway = gateway or get_gateway()
    batch = claim(limit, name=name or default_name(), now=now, database_url=database_url,
                  queued_older_than=queued_older_than)
    for c in batch:
        deliver_claimed(c, gateway, database_url=database_url)
    return [c.id for c in batch]


def run_workers(workers: int = 1, *, concurrency: int = CONCURRENCY,
                lease_seconds: float = LEASE_SECONDS, poll_seconds: float = POLL_SECONDS,
                stop: StopFlag | None = None) -> None:
    """`painpath dispatcher --workers N`: N worker processes (1: this process)."""
    import signal

    if stop is None:
        # SIGTERM/SIGINT: stop claiming, let the sends in flight finish and record
        stop = signal_stop = SignalStop()
        signal.signal(signal.SIGTERM, signal_stop.set)
        signal.signal(signal.SIGINT, signal_stop.set)
    if workers <= 1:
        Dispatcher(concurrency=concurrency, lease_seconds=lease_seconds,
                   poll_seconds=poll_seconds).run(stop)
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no inherited database connections
    procs = [ctx.Process(target=_worker_main, args=(concurrency, lease_seconds, poll_seconds),
                         name=f"dispatcher-{i}") for i in range(workers)]
    for p in procs:
        p.start()
    logger.info("dispatcher: %d worker processes %s", workers, [p.pid for p in procs])
    try:
        while not stop.is_set() and any(p.is_alive() for p in procs):
            for i, p in enumerate(procs):  # a worker that died is replaced
                if not p.is_alive() and not stop.is_set():
                    logger.warning("dispatcher worker %s exited (%s); restarting", p.pid,
                                   p.exitcode)
                    procs[i] = ctx.Process(target=_worker_main,
                                           args=(concurrency, lease_seconds, poll_seconds),
                                           name=p.name)
                    procs[i].start()
            stop.wait(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join(20)


def _worker_main(concurrency: int, lease_seconds: float, poll_seconds: float) -> None:
    import signal

    from painpath.logsafety import install_phone_redaction

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_phone_redaction()  # a worker process configures its own logging
    stop = SignalStop()
    signal.signal(signal.SIGTERM, stop.set)
    signal.signal(signal.SIGINT, stop.set)
    Dispatcher(concurrency=concurrency, lease_seconds=lease_seconds,
               poll_seconds=poll_seconds).run(stop)
