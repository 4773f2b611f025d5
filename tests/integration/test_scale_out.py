"""Two Rasa servers and two action servers serve the same patients.

The production configuration (bot/endpoints.production.yml, filled in from each
server's environment): PainPath's data and Rasa's tracker store on one PostgreSQL
database, Rasa's lock store on Redis (PainPath's atomic Redis lock store), each Rasa
server calling its own action server. One patient's messages go alternately to
one server and the other, as a load balancer in front of them would spread them:
every turn is processed exactly once, in the order sent, never interleaved with
another turn of the same conversation.

Needs PostgreSQL on 127.0.0.1:5432 (trust auth; a database `painpath_scale_out` is
dropped and created) and Redis on 127.0.0.1:6379 (db 7, a fresh key prefix).
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fakes.fake_twilio import FakeTwilio, sign

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = os.environ.get("PAINPATH_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PAINPATH_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
DB_NAME = "painpath_scale_out"

pytestmark = pytest.mark.stack


def _services_up() -> str | None:
    try:
        import psycopg2
        import redis

        psycopg2.connect(PG_ADMIN, connect_timeout=3).close()
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: skip with the reason
        return f"{type(exc).__name__}: {exc}"
    return None


def recreate_database(name: str) -> str:
    """Drop and create database `name` on the test server; returns its URL."""
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


@dataclass
class ScaledStack:
    stack: Any
    twilio: FakeTwilio
    url: str
    env: dict[str, str]

    def cli(self, *args: str) -> str:
        result = subprocess.run([str(Path(sys.executable).parent / "painpath"), *args],
                                cwd=ROOT, env={**os.environ, **self.env}, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def sms(self, server: int, phone: str, body: str) -> httpx.Response:
        """Twilio's signed webhook, delivered to Rasa server `server` (0 or 1).

        The signature is over PUBLIC_BASE_URL, as behind a load balancer."""
        params = {"From": phone, "To": self.twilio.from_number, "Body": body,
                  "MessageSid": "SM" + secrets.token_hex(16),
                  "AccountSid": self.twilio.account_sid, "NumMedia": "0"}
        signed_url = self.env["PUBLIC_BASE_URL"] + "/webhooks/twilio/webhook"
        return httpx.post(self.stack.rasa_urls[server] + "/webhooks/twilio/webhook", data=params,
                          headers={"X-Twilio-Signature": sign(self.twilio.auth_token, signed_url,
                                                              params)}, timeout=60)

    def enroll(self, phone: str, hours_ago: float = 7) -> str:
        when = (datetime.now(timezone.utc) - timedelta(hours=hours_ago)).isoformat()
        out = self.cli("enroll", "--clinic", "scale", "--phone", phone,
                       "--procedure", "epidural_steroid_injection", "--procedure-at", when,
                       "--timezone", "America/New_York", "--baseline-pain", "7", "--json")
        return str(json.loads(out)["id"])

    def tracker_events(self, patient_id: str, server: int = 0) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.stack.rasa_urls[server]}/conversations/{patient_id}/tracker",
                         headers=self.stack.api_headers(), timeout=30)
        resp.raise_for_status()
        return list(resp.json()["events"])


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaledStack]:
    reason = _services_up()
    if reason:
        pytest.skip(f"needs PostgreSQL and Redis: {reason}")
    from stack import Stack, free_port  # tools/stack.py

    from painpath.db import new_session
    from painpath.enrollment import ensure_clinic
    from painpath.migrate import upgrade
    from painpath.models import Clinician

    tmp = tmp_path_factory.mktemp("scale")
    url = recreate_database(DB_NAME)
    upgrade(url)
    with new_session(url) as session, session.begin():
        c = ensure_clinic(session, "scale", "Scale-out Clinic", phone="+14155550198")
        session.add(Clinician(clinic_id=c.id, name="Nia Nurse", phone="+14155550166",
                              role="nurse", on_call="primary"))
    twilio = FakeTwilio().start()
    rasa_port = free_port()
    env = {**twilio.env(), "DATABASE_URL": url, "PAINPATH_SECRET_KEY": "scale-secret",
           "PUBLIC_BASE_URL": "https://painpath.example.org"}
    st = Stack(env=env, rasa_port=rasa_port, actions_port=free_port(), web_port=free_port(),
               log_dir=tmp, tracker_store_url=url, lock_store_url=REDIS_URL,
               replicas=[(free_port(), free_port())], production_endpoints=True)
    env["RASA_URL"] = st.rasa_url
    env["WEB_BASE_URL"] = st.web_url
    try:
        st.start()
    except Exception:
        for name in ("actions", "rasa", "actions2", "rasa2", "web"):
            print(f"--- {name} log ---\n{st.tail(name)}")
        st.stop()
        twilio.stop()
        raise
    yield ScaledStack(stack=st, twilio=twilio, url=url, env=env)
    st.stop()
    twilio.stop()
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    for key in r.scan_iter(f"{st.lock_key_prefix}:*"):
        r.delete(key)


def turns(events: list[dict[str, Any]]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The conversation cut at each user message: (text, [(event, name/text), …])."""
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for e in events:
        if e["event"] == "user":
            out.append((e.get("text") or "", []))
        elif out and e["event"] in ("bot", "action"):
            out[-1][1].append((e["event"], e.get("text") or e.get("name") or ""))
    return out


def assert_not_interleaved(segments: list[tuple[str, list[tuple[str, str]]]]) -> None:
    """Each turn answers its own message and ends by listening, exactly once."""
    for text, seg in segments:
        listens = [i for i, (kind, name) in enumerate(seg) if (kind, name) == ("action", "action_listen")]
        assert listens == [len(seg) - 1], f"turn {text!r} interleaved: {seg}"
        assert any(kind == "bot" for kind, _ in seg), f"turn {text!r} got no reply: {seg}"


def answer_for(question: str) -> str:
    low = question.lower()
    if "not at all" in low:  # a PHQ-4 item (first check-in) or its re-ask
        return "1"
    if "reply yes or no" in low:
        return "no"
    if "relief" in low or "%" in question:
        return "50"
    return "4"


def replies_after(twilio: FakeTwilio, phone: str, n0: int, quiet: float = 0.8,
                  timeout: float = 30) -> list[str]:
    """The SMS sent to `phone` after the first `n0`, once none came for `quiet` s."""
    twilio.wait_for_count(phone, n0 + 1, timeout=timeout)
    count = len(twilio.sent_to(phone))
    while True:
        time.sleep(quiet)
        now = len(twilio.sent_to(phone))
        if now == count:
            return [m.body for m in twilio.sent_to(phone)[n0:]]
        count = now


def test_a_checkin_answered_alternately_on_two_servers(scaled: ScaledStack) -> None:
    """A check-in started through server 1; the answers go to server 2, 1, 2, …: every
    question is asked once, every answer recorded once, in order."""
    from painpath.content import message

    phone = "+14155550121"
    patient_id = scaled.enroll(phone)
    scaled.cli("checkin", "start", "--patient", patient_id)  # through RASA_URL: server 1
    texts = replies_after(scaled.twilio, phone, 0)
    done = [message(k) for k in ("checkin_done", "summary_next", "summary_no_answers")]
    sent: list[str] = []
    questions = [texts[-1]]
    for k in range(12):
        if any(d in t for t in texts for d in done):
            break
        body = answer_for(texts[-1])
        n0 = len(scaled.twilio.sent_to(phone))
        resp = scaled.sms((k + 1) % 2, phone, body)
        assert resp.status_code == 200, resp.text
        sent.append(body)
        texts = replies_after(scaled.twilio, phone, n0)
        questions.append(texts[-1])
    assert any(d in t for t in texts for d in done), f"check-in did not finish: {questions}"
    assert len(sent) >= 4  # two safety questions, pain now, relief
    # no question was asked twice: a turn processed twice would re-ask or skip
    assert len(set(questions)) == len(questions), questions

    for server in (0, 1):  # both servers read the same conversation
        segments = turns(scaled.tracker_events(patient_id, server))
        assert segments[0][0] == "EXTERNAL: EXTERNAL_start_checkin"  # the check-in start
        assert [text for text, _ in segments[1:]] == sent
        assert_not_interleaved(segments)
    shown = json.loads(scaled.cli("patient", "show", patient_id, "--json"))
    checkin = next(c for c in shown["checkins"] if c["answers"])
    assert checkin["status"] == "completed", checkin
    values = {str(v) for v in checkin["answers"].values()}
    assert {"4", "50"} <= {v.split(".")[0] for v in values}, checkin["answers"]
    inbound = [m for m in shown["messages"] if m["direction"] == "in"]
    assert [m["body"] for m in inbound] == sent


def _lock_tickets(r: Any, prefix: str, conversation_id: str) -> set[int]:
    raw = r.get(f"{prefix}:lock:{conversation_id}")
    if not raw:
        return set()
    return {json.loads(t)["number"] for t in json.loads(raw)["tickets"]}


def test_overlapping_messages_on_two_servers_take_turns(scaled: ScaledStack) -> None:
    """Each message is sent, to the other server than the last, as soon as the previous
    one holds its ticket in the Redis lock: all are processed once, in the order sent,
    one turn at a time, and each gets its own reply. So that messages really overlap
    whatever the machine's speed, the test itself holds the conversation's lock (as a
    third server would) while the first messages arrive: they must queue behind it."""
    import redis
    from rasa.utils.endpoints import EndpointConfig

    from bot.painpath_rasa.lock_store import AtomicRedisLockStore

    r = redis.Redis.from_url(REDIS_URL)
    url = urlsplit(REDIS_URL)
    holder = AtomicRedisLockStore(endpoint_config=EndpointConfig(
        url=url.hostname or "127.0.0.1", type="x", port=url.port or 6379,
        db=int(url.path.lstrip("/") or 0), key_prefix=scaled.stack.lock_key_prefix))
    waited = _overlapping_round(scaled, r, "+14155550122", holder)
    assert waited >= 3, "the messages never overlapped: the test did not exercise the lock"


def _overlapping_round(scaled: ScaledStack, r: Any, phone: str, holder: Any) -> int:
    prefix = scaled.stack.lock_key_prefix
    patient_id = scaled.enroll(phone, hours_ago=1)  # nothing due: every message is one turn
    held = holder.issue_ticket(patient_id)  # the first messages queue behind this
    sent = [f"ok thanks {word}" for word in ("alpha", "bravo", "charlie", "delta", "echo",
                                             "foxtrot", "golf", "hotel", "india", "juliet",
                                             "kilo", "lima", "mike", "november")]
    waited = 0
    futures: list[Future[httpx.Response]] = []
    with ThreadPoolExecutor(max_workers=len(sent)) as pool:
        for k, body in enumerate(sent):
            before = _lock_tickets(r, prefix, patient_id)
            fut = pool.submit(scaled.sms, k % 2, phone, body)
            futures.append(fut)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until this message holds a ticket
                now = _lock_tickets(r, prefix, patient_id)
                if now - before:
                    if len(now) > 1:
                        waited += 1
                    break
                if fut.done():  # already processed and gone
                    break
                time.sleep(0.001)
            if k == 3:
                holder.finish_serving(patient_id, held)  # let the queue move
        responses = [f.result(timeout=120) for f in futures]
    assert [resp.status_code for resp in responses] == [200] * len(sent)
    segments = turns(scaled.tracker_events(patient_id, 1))
    assert [text for text, _ in segments] == sent
    assert_not_interleaved(segments)
    replies = sum(1 for _, seg in segments for kind, _ in seg if kind == "bot")
    scaled.twilio.wait_for_count(phone, replies, timeout=30)
    time.sleep(1)
    assert len(scaled.twilio.sent_to(phone)) == replies  # each reply sent once
    assert _lock_tickets(r, prefix, patient_id) == set()  # nothing left waiting
    return waited

