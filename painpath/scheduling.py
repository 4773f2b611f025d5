"""When a patient is contacted: due check-ins, quiet hours, relevance.

The database is the source of truth; `start_due_checkins` is idempotent and is
run by the scheduler process (scheduler/service.py). A check-in is claimed with
a conditional UPDATE before Rasa is asked to start it, so two sweeps (or a sweep
after a crash) never start it twice. Starts run a few at a time (Rasa serves many
conversations at once); the scheduler records the bot's messages as queued SMS with
an idempotency key per check-in, and dispatcher workers send them (painpath/dispatch.py).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time as clock
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update

from painpath import diary, outreach, programs
from painpath.db import new_session
from painpath.senders import sender_for
from painpath.models import (
    CheckIn,
    Enrollment,
    Patient,
    SafetyScreen,
    ScreenStatus,
    utcnow,
)
# the send window and the relevance windows are outreach rules (painpath/outreach.py)
from painpath.outreach import (  # noqa: F401 - re-exported for existing callers
    ANSWER_WINDOW,
    QUIET_END,
    QUIET_START,
    RELEVANT_FOR_DAYS,
    RELEVANT_FOR_HOURS,
    in_quiet_hours,
    still_relevant,
)

logger = logging.getLogger(__name__)

CRITICAL_DAYS = 1.0  # check-ins in the first day are the early safety checks
REMIND_AFTER = timedelta(hours=4)  # one reminder when a started check-in gets no reply
START_CONCURRENCY = 8  # check-in starts in flight at once (each is one Rasa request)
# a check-in claimed ("starting") whose start never reached Rasa's action (scheduler
# killed mid-start) goes back to "scheduled" after this long
STARTING_TIMEOUT = timedelta(minutes=5)


@dataclass(frozen=True)
class SweepResult:
    started: list[int]
    missed: list[int]
    deferred: list[int]


def contacts_today(session, patient: Patient, now: datetime) -> int:  # type: ignore[no-untyped-def]
    """Unprompted contacts (check-in starts, reminders, self-management prompts and
    summaries) in the patient's local day."""
    zone = ZoneInfo(patient.timezone)
    local = now.astimezone(zone)
    day_start = datetime.combine(local.date(), time(0, 0), tzinfo=zone).astimezone(timezone.utc)
    started_rows = session.execute(select(CheckIn).where(
        CheckIn.patient_id == patient.id, CheckIn.started_at >= day_start,
        CheckIn.started_at <= now)).scalars().all()
    # consented diary prompts are not counted (painpath/diary.py)
    started = sum(1 for c in started_rows if not diary.cap_exempt(session, c))
    reminded = session.execute(select(func.count()).select_from(CheckIn).where(
        CheckIn.patient_id == patient.id, CheckIn.reminder_sent_at >= day_start,
        CheckIn.reminder_sent_at <= now)).scalar_one()
    # pacing prompts, activity reviews and weekly summaries share the same cap
    return int(started) + int(reminded) + programs.contacts_today(session, patient, now)


def sms_text(bot_message: dict[str, Any]) -> str | None:
    """The SMS text of one bot message, as the Twilio output channel words it."""
    text = bot_message.get("text")
    if not text:
        return None
    titles = " / ".join(b.get("title", "") for b in bot_message.get("buttons") or [])
    return f"{text} ({titles})" if titles else text


def start_checkin_queued(patient_id: str) -> dict[str, Any]:
    """Start the patient's next check-in through Rasa (`EXTERNAL_start_checkin` via the
    HTTP API, as `painpath checkin start` does) and record the bot's messages: SMS rows
    queued for the dispatcher, web rows for the chat page.

    Each row's idempotency key is the check-in id and the message's position, so a
    start repeated after a crash never records (or sends) a message twice.

    Raises:
        LookupError: unknown patient, nothing to start, SMS opted out, or outreach
        held (an open emergency or crisis escalation).
    """
    from painpath.checkins import next_checkin

    with new_session() as session:
        patient = session.get(Patient, patient_id)
        if patient is None:
            raise LookupError(f"no patient {patient_id!r}")
        checkin = next_checkin(session, patient_id)
        if checkin is None:
            raise LookupError(f"patient {patient_id} has no check-in to start")
        if patient.channel == "sms" and patient.sms_opted_out:
            raise LookupError(f"patient {patient_id} has opted out of SMS (replied STOP)")
        outreach.refuse_if_held(session, patient_id)
        channel, checkin_id, phone = patient.channel, checkin.id, patient.phone
    return start_known_checkin(patient_id, checkin_id, channel, phone)


def start_known_checkin(patient_id: str, checkin_id: int, channel: str, phone: str,
                        record: Callable[[list[dict[str, Any]]], None] | None = None,
                        ) -> dict[str, Any]:
    """`start_checkin_queued` for a check-in the caller has already looked up (the sweep).
    `record` writes the message rows (default: a transaction of their own)."""
    from painpath.rasa_client import START_CHECKIN_INTENT, trigger_intent

    t0, c0 = clock.perf_counter(), clock.thread_time()
    bot = trigger_intent(patient_id, START_CHECKIN_INTENT,
                         entities={"checkin_id": str(checkin_id)})
    t1, c1 = clock.perf_counter(), clock.thread_time()
    texts = [t for t in (sms_text(m) for m in bot) if t]
    rows = bot_message_rows(patient_id, checkin_id, channel, phone, texts)
    if rows:
        (record or insert_message_rows)(rows)
    t2, c2 = clock.perf_counter(), clock.thread_time()
    logger.debug("check-in %s started for patient %s by %s (%d message(s))",
                 checkin_id, patient_id, channel, len(texts))
    return {"patient_id": patient_id, "checkin_id": checkin_id, "channel": channel,
            "messages": len(texts), "rasa_ms": (t1 - t0) * 1000, "record_ms": (t2 - t1) * 1000,
            "rasa_client_cpu_ms": (c1 - c0) * 1000, "record_cpu_ms": (c2 - c1) * 1000}


def bot_message_rows(patient_id: str, checkin_id: int, channel: str, phone: str,
                     texts: list[str]) -> list[dict[str, Any]]:
    """Message rows for a start's bot messages, keyed by check-in and position."""
    from painpath.sms_text import to_gsm

    sms = channel == "sms"
    if sms:
        with new_session() as session:  # the clinic's own number, else the shared one
            sender = sender_for(session, patient_id=patient_id)
    else:
        sender = "bot"
    now = utcnow()
    return [{"patient_id": patient_id, "direction": "out", "channel": channel,
             "to": phone if sms else "web", "from_": sender,
             "body": to_gsm(text) if sms else text,
             "status": "queued" if sms else "delivered",  # the chat page shows web ones
             "idempotency_key": f"checkin-start:{checkin_id}:{i}", "attempts": 0,
             "purpose": outreach.OUTREACH,
             "created_at": now, "updated_at": now}
            for i, text in enumerate(texts)]


def record_bot_messages(patient_id: str, checkin_id: int, channel: str, phone: str,
                        texts: list[str]) -> None:
    """One INSERT for a start's messages; a key already used is skipped (no duplicate)."""
    if texts:
        insert_message_rows(bot_message_rows(patient_id, checkin_id, channel, phone, texts))


def insert_message_rows(rows: list[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT (idempotency_key) DO NOTHING, in one transaction."""
    from painpath.db import get_engine
    from painpath.models import Message

    engine = get_engine()
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    with engine.begin() as conn:
        conn.execute(insert(Message).on_conflict_do_nothing(index_elements=["idempotency_key"]),
                     rows)


def trigger_and_record(patient_id: str, intent: str, entities: dict[str, Any],
                       key_prefix: str) -> dict[str, Any]:
    """Inject `intent` into the patient's conversation through Rasa's HTTP API and
    record the bot's messages: SMS rows queued for the dispatcher, web rows for the
    chat page. Each row's idempotency key is `key_prefix` and the message's position,
    so a repeat after a crash never records (or sends) a message twice.

    Raises:
        LookupError: unknown patient, SMS opted out, or outreach held.
    """
    from painpath.messaging import deliver, record_outbound
    from painpath.rasa_client import trigger_intent

    with new_session() as session:
        patient = session.get(Patient, patient_id)
        if patient is None:
            raise LookupError(f"no patient {patient_id!r}")
        if patient.channel == "sms" and patient.sms_opted_out:
            raise LookupError(f"patient {patient_id} has opted out of SMS (replied STOP)")
        outreach.refuse_if_held(session, patient_id)
        channel, phone = patient.channel, patient.phone
    bot = trigger_intent(patient_id, intent, entities=entities)
    texts = [t for t in (sms_text(m) for m in bot) if t]
    queued = []
    with new_session() as session, session.begin():
        for i, text in enumerate(texts):
            msg = record_outbound(session, to=phone if channel == "sms" else "web", body=text,
                                  channel=channel, patient_id=patient_id,
                                  idempotency_key=f"{key_prefix}:{i}", purpose=outreach.OUTREACH)
            if msg is None:
                continue
            if channel == "web":
                msg.from_, msg.status = "bot", "delivered"  # the chat page shows it
            else:
                queued.append(msg.id)
    for message_id in queued:
        deliver(message_id)
    return {"patient_id": patient_id, "channel": channel, "queued": queued}


class _RecordBatcher:
    """Writes the message rows of concurrent starts in one transaction per batch (what
    queued while the previous batch committed). A starter waits until its rows are
    committed, so a start counts as done only once its SMS are recorded."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[list[dict[str, Any]], threading.Event, list[BaseException]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="checkin-record", daemon=True)
        self.cpu_ms = 0.0  # this writer thread's CPU (part of the scheduler's own cost)
        self._thread.start()

    def record(self, rows: list[dict[str, Any]]) -> None:
        done, error = threading.Event(), []  # type: ignore[var-annotated]
        self._queue.put((rows, done, error))
        done.wait()
        if error:
            raise error[0]

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
            c0 = clock.thread_time()
            try:
                insert_message_rows([r for rows, _, _ in batch for r in rows])
            except BaseException as exc:  # noqa: BLE001 - each starter gets the error
                for _, _, error in batch:
                    error.append(exc)
            finally:
                self.cpu_ms += (clock.thread_time() - c0) * 1000
                for _, done, _ in batch:
                    done.set()


class _SweepTimer:
    """Where a sweep's time goes (logged as one `sweep stats {json}` line)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phase: dict[str, float] = {}
        self.rasa_ms: list[float] = []
        self.record_ms: list[float] = []
        self.starter_ms: list[float] = []
        self.cpu: dict[str, float] = {}  # thread CPU ms per phase

    def add(self, name: str, seconds: float, cpu_seconds: float | None = None) -> None:
        with self.lock:
            self.phase[name] = self.phase.get(name, 0.0) + seconds * 1000
            if cpu_seconds is not None:
                key = name.replace("_ms", "_cpu_ms")
                self.cpu[key] = self.cpu.get(key, 0.0) + cpu_seconds * 1000

    def add_cpu(self, name: str, ms: float) -> None:
        with self.lock:
            self.cpu[name] = self.cpu.get(name, 0.0) + ms

    def summary(self, started: int) -> dict[str, Any]:
        def pct(v: list[float], q: float) -> float | None:
            s = sorted(v)
            return round(s[min(len(s) - 1, int(q * len(s)))], 1) if s else None

        own = self.phase.get("decide_ms", 0) + self.phase.get("claim_ms", 0) + sum(self.record_ms)
        own_cpu = sum(v for k, v in self.cpu.items() if k != "rasa_client_cpu_ms")
        return {"started": started, **{k: round(v, 1) for k, v in self.phase.items()},
                **{k: round(v, 1) for k, v in self.cpu.items()},
                # the scheduler's own CPU (decide, claim, record), per started check-in
                "own_cpu_ms_per_checkin": round(own_cpu / started, 3) if started else None,
                "rasa_client_cpu_ms_per_checkin": round(
                    self.cpu.get("rasa_client_cpu_ms", 0) / started, 3) if started else None,
                "rasa_ms_p50": pct(self.rasa_ms, 0.5), "rasa_ms_p95": pct(self.rasa_ms, 0.95),
                "rasa_ms_total": round(sum(self.rasa_ms), 1),
                "record_ms_total": round(sum(self.record_ms), 1),
                "starter_ms_p50": pct(self.starter_ms, 0.5),
                "starter_ms_p95": pct(self.starter_ms, 0.95),
                "own_ms_per_checkin": round(own / started, 3) if started else None}


def _decide_due(session, now: datetime  # type: ignore[no-untyped-def]
                ) -> tuple[dict[str, int], dict[int, tuple[str, str]], list[int], list[int],
                           set[str]]:
    """What the sweep does at `now`: per patient the latest due check-in, its channel
    and phone; the check-ins marked missed; those deferred (not now); busy patients."""
    missed: list[int] = []
    deferred: list[int] = []
    session.execute(  # claimed by a sweep that died before Rasa started it
        update(CheckIn).where(CheckIn.status == "starting",
                              CheckIn.started_at <= now - STARTING_TIMEOUT,
                              CheckIn.started_at > now - ANSWER_WINDOW)
        .values(status="scheduled", started_at=None)
        .execution_options(synchronize_session=False))
    outreach.release_lifted(session, now)  # held items of patients no longer held
    # an unanswered diary prompt gives way to the patient's next due check-in
    missed.extend(diary.expire_superseded(session, now))
    rows = session.execute(
        select(CheckIn, Patient).join(Enrollment, CheckIn.enrollment_id == Enrollment.id)
        .join(Patient, CheckIn.patient_id == Patient.id)
        .where(CheckIn.status == "scheduled", CheckIn.due_at <= now,
               Enrollment.status == "active")
        .order_by(CheckIn.patient_id, CheckIn.due_at)
    ).all()
    latest: dict[str, int] = {}
    info: dict[int, tuple[str, str]] = {}  # check-in id → (channel, phone)
    for checkin, patient in rows:
        latest[checkin.patient_id] = checkin.id
        info[checkin.id] = (patient.channel, patient.phone)
    # an open emergency or crisis holds everything due (released when it is resolved)
    holds = outreach.holds_for(session, latest)
    # an upper bound of today's contacts for every patient at once: the exact
    # (per-patient) count is only needed where the bound reaches the cap
    recent = _recent_contacts(session, now)
    for checkin, patient in rows:
        if outreach.held(session, patient.id, outreach.CHECKIN, checkin.id,
                         f"check-in {checkin.key}", now, holds):
            deferred.append(checkin.id)
        elif latest[checkin.patient_id] != checkin.id or not still_relevant(checkin, now):
            _mark_missed(session, checkin, now)
            missed.append(checkin.id)
            if latest[checkin.patient_id] == checkin.id:
                deferred.append(checkin.id)  # nothing to start for this patient now
        elif patient.channel == "sms" and patient.sms_opted_out:
            deferred.append(checkin.id)  # nothing is sent after STOP
        elif (in_quiet_hours(now, patient.timezone, patient.clinic)
              and not diary.night_allowed(session, checkin)) or \
                (not diary.cap_exempt(session, checkin) and
                 recent.get(patient.id, 0) >= patient.clinic.daily_contact_cap and
                 contacts_today(session, patient, now) >= patient.clinic.daily_contact_cap):
            deferred.append(checkin.id)
    stale = session.execute(
        select(CheckIn).where(CheckIn.status.in_(("in_progress", "paused", "starting")),
                              CheckIn.started_at <= now - ANSWER_WINDOW)
    ).scalars().all()
    for checkin in stale:
        _mark_missed(session, checkin, now)
        missed.append(checkin.id)
    busy = {p for (p,) in session.execute(
        select(CheckIn.patient_id).where(CheckIn.status.in_(("in_progress", "starting"))))}
    return latest, info, missed, deferred, busy


def start_due_checkins(now: datetime | None = None, starter: Callable[[str], Any] | None = None,
                       concurrency: int | None = None) -> SweepResult:
    """Start every check-in that is due now, outside quiet hours, exactly once.

    A check-in overtaken by a later one that is also due is marked missed
    instead (only the most recent is still relevant). Up to `concurrency` starts
    are in flight at once, so one slow start does not hold up the others.
    """
    now = now or utcnow()
    concurrency = max(1, concurrency or START_CONCURRENCY)
    timer = _SweepTimer()
    t_decide, c_decide = clock.perf_counter(), clock.thread_time()
    started: list[int] = []
    with new_session() as session, session.begin():
        latest, info, missed, deferred, busy = _decide_due(session, now)
        busy |= _awaiting_an_answer(session)  # a pending safety screen comes first
    deferred_ids = set(deferred)
    todo = [(p, c) for p, c in latest.items() if c not in deferred_ids and p not in busy]
    timer.add("decide_ms", clock.perf_counter() - t_decide, clock.thread_time() - c_decide)
    started_lock = threading.Lock()
    slots = threading.Semaphore(concurrency)

    def run_one(patient_id: str, checkin_id: int) -> None:
        t0 = clock.perf_counter()
        try:
            if starter is None:  # what the sweep already looked up is not read again
                result = start_known_checkin(patient_id, checkin_id, *info[checkin_id],
                                             record=batcher.record)
            else:
                result = starter(patient_id)
            with started_lock:
                started.append(checkin_id)
            if isinstance(result, dict) and "rasa_ms" in result:
                with timer.lock:
                    timer.rasa_ms.append(result["rasa_ms"])
                    timer.record_ms.append(result["record_ms"])
                timer.add_cpu("rasa_client_cpu_ms", result["rasa_client_cpu_ms"])
                timer.add_cpu("record_cpu_ms", result["record_cpu_ms"])
        except Exception:
            logger.exception("check-in %s could not be started; will retry", checkin_id)
            with new_session() as session, session.begin():
                session.execute(update(CheckIn).where(CheckIn.id == checkin_id,
                                                      CheckIn.status == "starting")
                                .values(status="scheduled", started_at=None))
        finally:
            with timer.lock:
                timer.starter_ms.append((clock.perf_counter() - t0) * 1000)
            slots.release()

    # claim a chunk at a time (one transaction), just before its starts can run
    chunk = concurrency * 2
    batcher = _RecordBatcher()
    with ThreadPoolExecutor(concurrency, thread_name_prefix="checkin-start") as pool:
        for i in range(0, len(todo), chunk):
            part = todo[i:i + chunk]
            t0, c0 = clock.perf_counter(), clock.thread_time()
            claimed = _claim_checkins(part, now)
            timer.add("claim_ms", clock.perf_counter() - t0, clock.thread_time() - c0)
            for patient_id, checkin_id in claimed:
                slots.acquire()
                pool.submit(run_one, patient_id, checkin_id)
    batcher.close()
    timer.add_cpu("record_batch_cpu_ms", batcher.cpu_ms)
    timer.add("wall_ms", clock.perf_counter() - t_decide)
    if started:
        logger.info("sweep stats %s", json.dumps(timer.summary(len(started))))
    return SweepResult(started=sorted(started), missed=missed, deferred=deferred)


def _awaiting_an_answer(session) -> set[str]:  # type: ignore[no-untyped-def]
    """Patients with a safety question pending: nothing else is started until it is
    answered or has timed out (painpath/screening.py)."""
    return {p for (p,) in session.execute(select(SafetyScreen.patient_id).where(
        SafetyScreen.status == ScreenStatus.PENDING.value))}


def _recent_contacts(session, now: datetime) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Per patient, check-ins started or reminded in the last 26 h (≥ any local day's
    contacts so far): one query instead of two per due patient."""
    since = now - timedelta(hours=26)
    out: dict[str, int] = {}
    for pid, started, reminded in session.execute(
            select(CheckIn.patient_id, CheckIn.started_at, CheckIn.reminder_sent_at).where(
                or_(CheckIn.started_at >= since, CheckIn.reminder_sent_at >= since))):
        out[pid] = out.get(pid, 0) + (started is not None and started >= since) + \
            (reminded is not None and reminded >= since)
    for pid, count in programs.recent_contacts(session, since).items():
        out[pid] = out.get(pid, 0) + count
    return out


def _claim_checkins(part: list[tuple[str, int]], now: datetime) -> list[tuple[str, int]]:
    """Claim still-scheduled check-ins ("starting") in one transaction."""
    from painpath.db import get_engine

    ids = {checkin_id: patient_id for patient_id, checkin_id in part}
    stmt = (update(CheckIn).where(CheckIn.id.in_(list(ids)), CheckIn.status == "scheduled")
            .values(status="starting", started_at=now))
    engine = get_engine()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            got = set(conn.execute(stmt.returning(CheckIn.id)).scalars())
        else:  # SQLite (no RETURNING here): read back in the same write transaction
            conn.execute(stmt)
            got = set(conn.execute(select(CheckIn.id).where(
                CheckIn.id.in_(list(ids)), CheckIn.status == "starting",
                CheckIn.started_at == now)).scalars())
    return [(ids[c], c) for c in ids if c in got]


def send_reminders(now: datetime | None = None) -> list[int]:
    """One reminder for each started check-in with no reply for REMIND_AFTER,
    outside the patient's quiet hours, never after STOP, never while an emergency or
    crisis escalation is open. Returns check-in ids."""
    from painpath.content import message
    from painpath.messaging import deliver, record_outbound
    from painpath.models import Answer, Message

    now = now or utcnow()
    sent, to_deliver = [], []
    with new_session() as session, session.begin():
        rows = session.execute(
            select(CheckIn, Patient).join(Patient, CheckIn.patient_id == Patient.id)
            .where(CheckIn.status.in_(("in_progress", "paused")),
                   CheckIn.reminder_sent_at.is_(None),
                   CheckIn.started_at <= now - REMIND_AFTER,
                   CheckIn.started_at > now - ANSWER_WINDOW)
        ).all()
        holds = outreach.holds_for(session, [patient.id for _, patient in rows])
        for checkin, patient in rows:
            if diary.is_diary_only(checkin):
                continue  # the next diary prompt is the reminder
            last_reply = session.execute(
                select(Message.created_at).where(Message.patient_id == patient.id,
                                                 Message.direction == "in")
                .order_by(Message.id.desc())).scalars().first()
            last_answer = session.execute(
                select(Answer.created_at).where(Answer.checkin_id == checkin.id)
                .order_by(Answer.id.desc())).scalars().first()
            latest = max([t for t in (last_reply, last_answer, checkin.started_at) if t])
            if latest > now - REMIND_AFTER or in_quiet_hours(now, patient.timezone, patient.clinic):
                continue
            if contacts_today(session, patient, now) >= patient.clinic.daily_contact_cap:
                continue
            if patient.channel == "sms" and patient.sms_opted_out:
                continue
            if outreach.held(session, patient.id, outreach.REMINDER, checkin.id,
                             f"reminder for check-in {checkin.key}", now, holds):
                continue  # an emergency or crisis is open: released when it is resolved
            key = "checkin_reminder_paused" if checkin.status == "paused" else "checkin_reminder"
            msg = record_outbound(session, to=patient.phone if patient.channel == "sms" else "web",
                                  body=message(key), channel=patient.channel,
                                  patient_id=patient.id, purpose=outreach.OUTREACH,
                                  idempotency_key=f"reminder:{checkin.id}")
            checkin.reminder_sent_at = now
            sent.append(checkin.id)
            if msg is not None and patient.channel == "sms":
                to_deliver.append(msg.id)
            elif msg is not None:
                msg.status = "delivered"  # the chat page shows it
    for message_id in to_deliver:
        deliver(message_id)
    return sent


def _mark_missed(session, checkin: CheckIn, now: datetime) -> None:  # type: ignore[no-untyped-def]
    """Mark a check-in missed; an early safety check-in missed is a nurse task."""
    from painpath.escalation import raise_flag

    checkin.status = "missed"
    if checkin.day <= CRITICAL_DAYS and not diary.is_diary_only(checkin):  # no safety question
        raise_flag(session, checkin.patient_id, "urgent",
                   [f"no answer to the early safety check-in ({checkin.key})"],
                   checkin_id=checkin.id, kind="missed_checkin", now=now)


def next_window_open(now: datetime, tz_name: str) -> datetime:
    """The next 08:00 local time at or after `now` (for messages deferred by quiet hours)."""
    zone = ZoneInfo(tz_name)
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), QUIET_END, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), QUIET_END, tzinfo=zone)
    return candidate
