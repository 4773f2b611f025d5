"""Three dispatcher worker processes, 10,000 queued SMS, PostgreSQL, the real twilio
client against the fake Twilio server over HTTP: every message goes out exactly once —
even though one worker is SIGKILLed mid-run (its claimed messages are reclaimed when
their lease expires, and looked up at Twilio before being sent again).

Needs PostgreSQL: PAINPATH_TEST_DATABASE_URL=postgresql://…/<your db> (the schema of
that database is dropped and recreated). Takes about a minute on two cores.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from painpath.db import make_engine
from painpath.migrate import upgrade
from painpath.models import Message, utcnow
from tests.conftest import PG_URL, _reset_postgres
from tests.fakes.fake_twilio import FakeTwilio

ROOT = Path(__file__).resolve().parent.parent.parent
N = int(os.environ.get("PAINPATH_DISPATCH_TEST_MESSAGES", "10000"))

pytestmark = pytest.mark.skipif(not PG_URL, reason="needs PAINPATH_TEST_DATABASE_URL (PostgreSQL)")


def _queue(url: str, n: int) -> None:
    engine = make_engine(url)
    now = utcnow()
    rows = [{"direction": "out", "channel": "sms", "to": f"+1415{i:07d}",
             "from_": "+14155550000", "body": f"Check-in reminder #{i}", "status": "queued",
             "attempts": 0, "created_at": now, "updated_at": now} for i in range(n)]
    with engine.begin() as conn:
        for k in range(0, n, 2000):
            conn.execute(insert(Message), rows[k:k + 2000])
    engine.dispose()


def test_three_workers_send_10000_messages_once_even_when_one_is_killed(tmp_path: Path) -> None:
    assert PG_URL
    _reset_postgres(PG_URL)
    upgrade(PG_URL)
    _queue(PG_URL, N)
    rng = random.Random(7)
    twilio = FakeTwilio(latency_fn=lambda _to: rng.random() * 0.01)
    twilio.slow_numbers.update({f"+1415{i:07d}": 1.0 for i in range(0, N, 997)})  # a few slow
    twilio.start()
    env = {**os.environ, **twilio.env(), "DATABASE_URL": PG_URL,
           "PAINPATH_SECRET_KEY": "test", "PYTHONPATH": str(ROOT)}
    cmd = [str(Path(sys.executable).parent / "painpath"), "dispatcher", "--concurrency", "12",
           "--lease-seconds", "5", "--poll-seconds", "0.1"]
    logs = [open(tmp_path / f"worker{i}.log", "wb") for i in range(3)]
    workers = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True) for log in logs]
    engine = make_engine(PG_URL)
    t0 = time.monotonic()
    try:
        twilio.wait_for(lambda msgs: len(msgs) >= N // 3, timeout=300)
        os.kill(workers[0].pid, signal.SIGKILL)  # mid-run: it holds claimed messages
        workers[0].wait()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                left = conn.execute(select(func.count()).select_from(Message).where(
                    Message.provider_sid.is_(None))).scalar_one()  # not accepted by Twilio
            if left == 0:
                break
            assert all(w.poll() is None for w in workers[1:]), "a surviving worker exited"
            time.sleep(0.5)
        else:
            raise AssertionError(f"{left} messages still unsent after 300 s")
        elapsed = time.monotonic() - t0
        time.sleep(1.0)  # anything sent twice would arrive by now
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGINT)
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
        for log in logs:
            log.close()
        twilio.stop()
    with engine.connect() as conn:
        rows = conn.execute(select(Message.body, Message.status, Message.provider_sid,
                                   Message.claimed_by)).all()
    engine.dispose()
    sent = Counter(m.body for m in twilio.messages)
    duplicates = {b: c for b, c in sent.items() if c > 1}
    lost = [r.body for r in rows if r.body not in sent]
    assert not duplicates, f"{len(duplicates)} messages sent more than once"
    assert not lost, f"{len(lost)} messages never reached Twilio"
    assert len(twilio.messages) == N
    by_sid = {m.sid: m.body for m in twilio.messages}
    assert all(r.status == "queued" and by_sid.get(r.provider_sid) == r.body for r in rows)
    # the work was shared, and the killed worker's claims were finished by the others
    by_worker = Counter(r.claimed_by.split(":")[1] for r in rows)
    assert len(by_worker) == 3, by_worker
    print(f"\n{N} messages by 3 workers (one killed) in {elapsed:.1f} s "
          f"({N / elapsed:.0f}/s); per worker {dict(by_worker)}")
