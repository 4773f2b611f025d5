"""Dispatcher: claims are disjoint and leased, every message goes out once through the
real twilio client to the fake Twilio server, a slow call does not stall the others,
and a sender that dies after Twilio accepted a message does not cause a second SMS.

Runs on SQLite by default and on PostgreSQL with PAINPATH_TEST_DATABASE_URL
(where claims use SELECT … FOR UPDATE SKIP LOCKED).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Iterator

import pytest
from sqlalchemy import select

from painpath import messaging
from painpath.db import new_session
from painpath.dispatch import Dispatcher, claim, drain, record_result, send_claimed
from painpath.messaging import SendResult, deliver, record_outbound, send_sms
from painpath.models import Message, utcnow
from painpath.settings import get_settings
from tests.conftest import use_database
from tests.fakes.fake_twilio import FakeTwilio


@pytest.fixture
def twilio(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    fake = FakeTwilio().start()
    for k, v in fake.env().items():
        monkeypatch.setenv(k, v)
    use_database(monkeypatch, database_url)
    assert get_settings().twilio_configured
    yield fake
    fake.stop()
    messaging.set_gateway(None)


def phone(i: int) -> str:
    return f"+1415555{1000 + i:04d}"


def queue(n: int, body: str = "Time for your check-in", start: int = 0) -> list[int]:
    with new_session() as session, session.begin():
        ids = [record_outbound(session, to=phone(start + i), body=f"{body} #{start + i}").id
               for i in range(n)]
    return ids


def rows() -> list[Message]:
    with new_session() as session:
        return list(session.execute(select(Message).order_by(Message.id)).scalars())


def run_until_done(worker: Dispatcher, expected: int, timeout: float = 30.0) -> None:
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with new_session() as session:
                left = session.execute(select(Message.id).where(
                    Message.status.in_(("queued", "sending")))).all()
            if not left and worker.stats.sent + worker.stats.failed >= expected:
                return
            time.sleep(0.05)
        raise AssertionError(f"not all sent in {timeout} s: {worker.stats.summary()}")
    finally:
        stop.set()
        t.join(15)


def test_claims_are_disjoint_and_an_expired_lease_is_reclaimed(database_url: str) -> None:
    ids = queue(10)
    now = utcnow()
    a = claim(4, name="a", now=now)
    b = claim(10, name="b", now=now)
    assert [c.id for c in a] == ids[:4] and [c.id for c in b] == ids[4:]
    assert claim(10, name="c", now=now + timedelta(seconds=59)) == []
    # the workers went silent: after the lease, another worker takes their rows over
    c = claim(10, name="c", now=now + timedelta(seconds=61))
    assert [m.id for m in c] == ids
    assert all(m.attempts == 2 and m.unsure_since == now for m in c)
    # … and the first worker, waking up late, cannot record over the new claim
    assert not record_result(a[0], SendResult(sid="SMlate", status="queued"))
    assert rows()[0].provider_sid is None


def test_a_failed_message_waits_for_its_backoff(database_url: str) -> None:
    [mid] = queue(1)
    c = claim(1, name="a")[0]
    record_result(c, SendResult(sid=None, status="failed", error="20500: boom", error_code=20500))
    due = rows()[0].next_attempt_at
    assert claim(1, name="b", now=due - timedelta(seconds=1)) == []
    assert [m.id for m in claim(1, name="b", now=due + timedelta(seconds=1))] == [mid]


def test_workers_send_every_message_once_through_the_twilio_client(twilio: FakeTwilio) -> None:
    ids = queue(300)
    workers = [Dispatcher(concurrency=8, name=f"w{i}", poll_seconds=0.05) for i in range(3)]
    stops = [threading.Event() for _ in workers]
    threads = [threading.Thread(target=w.run, args=(s,), daemon=True)
               for w, s in zip(workers, stops)]
    for t in threads:
        t.start()
    try:
        twilio.wait_for(lambda msgs: len(msgs) >= 300, timeout=60)
        time.sleep(0.5)  # a duplicate would arrive now
    finally:
        for s in stops:
            s.set()
        for t in threads:
            t.join(15)
    counts = Counter(m.to for m in twilio.messages)
    assert len(twilio.messages) == 300 and set(counts.values()) == {1}
    by_sid = {m.sid: m for m in twilio.messages}
    for row in rows():
        assert row.id in ids and row.status == "queued" and row.provider_sid in by_sid
        assert by_sid[row.provider_sid].to == row.to and row.attempts == 1
        assert row.lease_until is None and row.unsure_since is None
    assert sum(w.stats.sent for w in workers) == 300


def test_one_slow_twilio_call_does_not_stall_the_others(twilio: FakeTwilio) -> None:
    twilio.slow_numbers[phone(0)] = 3.0  # the first message in the queue hangs 3 s
    queue(40)
    worker = Dispatcher(concurrency=4, name="w", poll_seconds=0.05)
    t0 = time.monotonic()
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        twilio.wait_for(lambda msgs: len(msgs) >= 39, timeout=20)
        others_done = time.monotonic() - t0
        twilio.wait_for(lambda msgs: len(msgs) >= 40, timeout=20)
    finally:
        stop.set()
        thread.join(15)
    assert others_done < 2.0, f"39 fast messages took {others_done:.1f} s behind one slow call"
    assert twilio.messages[-1].to == phone(0)


def test_a_sender_that_died_after_twilio_accepted_does_not_send_again(twilio: FakeTwilio) -> None:
    [mid] = queue(1)
    gateway = messaging.get_gateway()
    c = claim(1, name="doomed")[0]
    send_claimed(c, gateway)  # Twilio has it … and the worker dies before recording
    assert len(twilio.messages) == 1
    later = utcnow() + timedelta(seconds=61)
    assert drain(gateway=gateway, now=later) == [mid]
    assert len(twilio.messages) == 1, "resent after the crash"
    assert twilio.list_requests == 1  # looked it up instead
    row = rows()[0]
    assert (row.status, row.provider_sid, row.attempts) == ("queued", twilio.messages[0].sid, 2)


def test_an_unanswered_send_is_looked_up_before_the_retry(twilio: FakeTwilio) -> None:
    [mid] = queue(1)
    twilio.drop_after_accept = 1  # Twilio takes it, the connection drops before the answer
    deliver(mid)
    row = rows()[0]
    assert row.status == "failed" and row.unsure_since is not None
    assert drain(now=row.next_attempt_at + timedelta(seconds=1)) == [mid]
    assert len(twilio.messages) == 1
    assert rows()[0].provider_sid == twilio.messages[0].sid


def test_a_refused_message_is_resent_without_a_lookup(twilio: FakeTwilio) -> None:
    [mid] = queue(1)
    twilio.fail_numbers.add(phone(0))
    deliver(mid)
    row = rows()[0]
    assert row.status == "failed" and len(twilio.messages) == 0
    twilio.fail_numbers.clear()
    drain(now=row.next_attempt_at + timedelta(seconds=1))
    assert len(twilio.messages) == 1 and rows()[0].status == "queued"
    assert twilio.list_requests == 1  # a 5xx is an unknown outcome: looked up, not found


def test_same_text_sent_earlier_is_not_mistaken_for_the_lost_attempt(
        twilio: FakeTwilio) -> None:
    """A re-ask with the same words a minute ago has its own row and SID: the lookup
    must not adopt it for a different message."""
    first = send_sms(phone(0), "Please reply with a number from 0 to 10.")
    assert first is not None and first.provider_sid
    with new_session() as session, session.begin():
        mid = record_outbound(session, to=phone(0),
                              body="Please reply with a number from 0 to 10.").id
    c = claim(1, name="doomed", ids=[mid])[0]
    record_result(c, SendResult(sid=None, status="failed", error="ReadTimeout", uncertain=True))
    drain(now=utcnow() + timedelta(minutes=1))
    assert len(twilio.sent_to(phone(0))) == 2


def test_deliver_sends_nothing_for_a_message_another_sender_holds(twilio: FakeTwilio) -> None:
    [mid] = queue(1)
    held = claim(1, name="worker")
    assert [c.id for c in held] == [mid]
    deliver(mid)  # e.g. the alert path, racing a dispatcher
    assert len(twilio.messages) == 0
    assert rows()[0].claimed_by == held[0].token


def test_an_inline_reply_is_never_also_sent_by_a_worker(twilio: FakeTwilio) -> None:
    twilio.latency = 0.3
    worker = Dispatcher(concurrency=4, name="w", poll_seconds=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        for i in range(5):
            send_sms(phone(i), f"reply {i}")
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(15)
    assert sorted(m.to for m in twilio.messages) == [phone(i) for i in range(5)]
    assert worker.stats.claimed == 0


def test_checkin_starts_queue_their_sms_once_with_a_key_per_checkin(
        clinic: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler starts through Rasa's HTTP API and records the bot's messages;
    a start repeated after a crash records nothing twice."""
    from datetime import datetime, timezone

    from painpath import rasa_client, scheduling
    from painpath.enrollment import EnrollmentRequest, enroll
    from painpath.models import CheckIn

    with new_session() as session, session.begin():
        patient = enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550123", procedure="epidural_steroid_injection",
            procedure_at=datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc),
            timezone="America/Chicago"))
        pid = patient.id
    calls = []

    def fake_trigger(conversation_id, intent, entities=None, output_channel=None, **_):  # type: ignore[no-untyped-def]
        calls.append((conversation_id, intent, entities, output_channel))
        with new_session() as session, session.begin():  # what action_start_checkin does
            session.get(CheckIn, int(entities["checkin_id"])).status = "in_progress"
        return [{"recipient_id": conversation_id, "text": "Hi, time for your check-in."},
                {"recipient_id": conversation_id, "text": "Any new numbness?",
                 "buttons": [{"title": "yes"}, {"title": "no"}]}]

    monkeypatch.setattr(rasa_client, "trigger_intent", fake_trigger)
    now = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)
    result = scheduling.start_due_checkins(now)
    assert len(result.started) == 1
    assert calls[0][1] == "EXTERNAL_start_checkin" and calls[0][3] is None
    scheduling.start_checkin_queued(pid)  # the same start again (e.g. after a crash)
    out = [m for m in rows() if m.direction == "out" and m.purpose != "welcome"]
    assert [(m.body, m.status) for m in out] == [
        ("Hi, time for your check-in.", "queued"), ("Any new numbness? (yes / no)", "queued")]
    assert [m.idempotency_key for m in out] == [f"checkin-start:{result.started[0]}:0",
                                                f"checkin-start:{result.started[0]}:1"]


def test_checkin_starts_run_concurrently(clinic: str) -> None:
    """Eight patients due together, each start taking 0.3 s: they overlap."""
    from datetime import datetime, timezone

    from painpath import scheduling
    from painpath.enrollment import EnrollmentRequest, enroll

    with new_session() as session, session.begin():
        for i in range(8):
            enroll(session, EnrollmentRequest(
                clinic_slug=clinic, phone=phone(i), procedure="epidural_steroid_injection",
                procedure_at=datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc),
                timezone="America/Chicago"))
    t0 = time.monotonic()
    result = scheduling.start_due_checkins(datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc),
                                           starter=lambda _: time.sleep(0.3), concurrency=8)
    assert len(result.started) == 8
    assert time.monotonic() - t0 < 1.5


def test_a_start_claimed_by_a_sweep_that_died_is_retried(clinic: str) -> None:
    from datetime import datetime, timezone

    from painpath import scheduling
    from painpath.enrollment import EnrollmentRequest, enroll
    from painpath.models import CheckIn

    with new_session() as session, session.begin():
        enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone=phone(0), procedure="epidural_steroid_injection",
            procedure_at=datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc),
            timezone="America/Chicago"))
    now = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)
    assert len(scheduling.start_due_checkins(now, starter=lambda _: None).started) == 1
    # the starter never reached Rasa's action: still "starting"
    assert scheduling.start_due_checkins(now + timedelta(minutes=1),
                                         starter=lambda _: None).started == []
    again = scheduling.start_due_checkins(now + timedelta(minutes=6), starter=lambda _: None)
    assert len(again.started) == 1
    with new_session() as session:
        assert session.get(CheckIn, again.started[0]).status == "starting"


def test_painpath_dispatcher_with_two_worker_processes(twilio: FakeTwilio, database_url: str,
                                                       tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`painpath dispatcher --workers 2`: two processes share the queue, each SMS once;
    SIGINT stops them."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    twilio.latency = 0.05  # one worker alone would need 2.5 s: the other starts well before
    queue(200)
    env = {**os.environ, **twilio.env(), "DATABASE_URL": database_url,
           "PAINPATH_SECRET_KEY": "k", "PYTHONPATH": str(root)}
    log = tmp_path / "dispatcher.log"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "painpath"), "dispatcher",
                             "--workers", "2", "--concurrency", "4"], cwd=root, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        twilio.wait_for(lambda msgs: len(msgs) >= 200, timeout=60)
        time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("dispatcher did not stop on SIGINT:\n" + log.read_text()[-4000:])
    assert len(twilio.messages) == 200 and len({m.to for m in twilio.messages}) == 200
    claimers = {r.claimed_by.split(":")[1] for r in rows()}
    assert len(claimers) == 2, claimers  # both worker processes took a share


def test_signal_stop_is_set_by_a_signal_while_the_main_thread_waits_on_it() -> None:
    """The dispatcher's SIGINT/SIGTERM flag: a handler sets it without a lock (an
    Event's lock, held by the waiting main thread, deadlocked a worker), and a wait
    returns soon after."""
    import signal

    from painpath.dispatch import SignalStop

    assert SignalStop().wait(0.05) is False
    before = signal.getsignal(signal.SIGALRM)
    try:
        for _ in range(20):  # signals land at different points of the wait loop
            stop = SignalStop()
            signal.signal(signal.SIGALRM, stop.set)
            signal.setitimer(signal.ITIMER_REAL, 0.013)
            t0 = time.monotonic()
            assert stop.wait(5.0) is True
            assert time.monotonic() - t0 < 1.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
