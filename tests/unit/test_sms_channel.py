"""The inbound SMS webhook (bot/painpath_rasa/twilio_channel.py) served by a real Sanic
server on 127.0.0.1, with the assistant behind it replaced by a recorder that can fail.

Twilio retries a webhook that failed with a 5xx (README: `#rc=3&rp=ct,5xx`) with the
same MessageSid. The replay guard ignores a replayed SMS, but must let the retry of a
turn that failed run that turn again, once; and a turn that died without an answer
(the Rasa server killed mid-turn) is run again by a retry that comes later.
"""
from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from datetime import timedelta
from typing import Any, Iterator

import httpx
import pytest
from sanic import Sanic
from sqlalchemy import select, update

from bot.painpath_rasa.twilio_channel import TwilioInput
from painpath.db import new_session
from painpath.models import Message, utcnow
from tests.fakes.fake_twilio import FakeTwilio, sign
from tests.unit.test_dashboard import add_patient

TOKEN = FakeTwilio.auth_token
PUBLIC = "https://painpath.example.org"
PHONE = "+14155550131"


class Assistant:
    """Stands in for Rasa's agent: records each turn; fails the texts in `fail_once`
    the first time they arrive."""

    def __init__(self) -> None:
        self.turns: list[tuple[str, str]] = []
        self.fail_once: set[str] = set()

    async def __call__(self, message: Any) -> None:
        self.turns.append((message.sender_id, message.text))
        if message.text in self.fail_once:
            self.fail_once.discard(message.text)
            raise RuntimeError("the action server is down")


@pytest.fixture
def server(clinic: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Assistant]]:
    from painpath.settings import get_settings

    twilio = FakeTwilio().start()  # replies go out through the real twilio client
    for key, value in twilio.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PUBLIC_BASE_URL", PUBLIC)
    get_settings.cache_clear()
    assistant = Assistant()
    Sanic.test_mode = True
    app = Sanic(f"channel_{secrets.token_hex(4)}")
    app.blueprint(TwilioInput().blueprint(assistant), url_prefix="/webhooks/twilio")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        server = await app.create_server(host="127.0.0.1", port=port,
                                         return_asyncio_server=True)
        await server.startup()
        await server.start_serving()
        holder["server"] = server
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(20), "Sanic did not start"
    assistant.twilio = twilio  # type: ignore[attr-defined]
    yield f"http://127.0.0.1:{port}/webhooks/twilio/webhook", assistant
    twilio.stop()
    holder["server"].close()  # stops listening; the loop goes with the thread
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    get_settings.cache_clear()


def post(url: str, sid: str, body: str, sender: str = PHONE, media: int = 0) -> httpx.Response:
    params = {"MessageSid": sid, "From": sender, "To": "+14155550000", "Body": body,
              "AccountSid": "AC" + "0" * 32, "NumMedia": str(media)}
    if media:
        params["MediaUrl0"] = "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME"
        params["MediaContentType0"] = "image/jpeg"
    signature = sign(TOKEN, f"{PUBLIC}/webhooks/twilio/webhook", params)
    return httpx.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=30)


def new_sid() -> str:
    return "SM" + secrets.token_hex(16)


def status_of(sid: str) -> str:
    with new_session() as session:
        return session.execute(select(Message.status).where(
            Message.provider_sid == sid, Message.direction == "in")).scalar_one()


def test_a_failed_turn_runs_again_on_twilios_retry_and_only_then(
        server: tuple[str, Assistant]) -> None:
    url, assistant = server
    pid = add_patient("test", PHONE)
    sid = new_sid()
    assistant.fail_once.add("my pain is 6")
    assert post(url, sid, "my pain is 6").status_code == 500
    assert status_of(sid) == "unhandled"
    assert post(url, sid, "my pain is 6").status_code == 200  # Twilio's retry
    assert status_of(sid) == "handled"
    assert post(url, sid, "my pain is 6").status_code == 200  # a replay after that
    assert assistant.turns == [(pid, "my pain is 6")] * 2
    with new_session() as session:  # recorded once
        assert len(session.execute(select(Message).where(
            Message.provider_sid == sid)).scalars().all()) == 1


def test_a_replay_of_a_handled_sms_is_ignored(server: tuple[str, Assistant]) -> None:
    url, assistant = server
    pid = add_patient("test", PHONE)
    sid = new_sid()
    for _ in range(3):
        assert post(url, sid, "yes").status_code == 200
    assert assistant.turns == [(pid, "yes")] and status_of(sid) == "handled"


def test_a_turn_that_died_runs_again_once_it_is_stale(server: tuple[str, Assistant]) -> None:
    """Still "received" (the server died mid-turn): a retry while the turn may still be
    running is ignored; a later one runs it, once even if two arrive together."""
    url, assistant = server
    pid = add_patient("test", PHONE)
    sid = new_sid()
    assert post(url, sid, "no new symptoms").status_code == 200
    with new_session() as session, session.begin():  # as if the turn never finished
        session.execute(update(Message).where(Message.provider_sid == sid)
                        .values(status="received"))
    assert post(url, sid, "no new symptoms").status_code == 200
    assert len(assistant.turns) == 1  # too early: it may still be running
    with new_session() as session, session.begin():
        session.execute(update(Message).where(Message.provider_sid == sid)
                        .values(created_at=utcnow() - timedelta(minutes=3)))
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        post(url, sid, "no new symptoms").status_code)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200, 200]
    assert assistant.turns == [(pid, "no new symptoms")] * 2
    assert status_of(sid) == "handled"


def test_keywords_are_never_retried_but_an_opted_out_patients_words_are(
        server: tuple[str, Assistant]) -> None:
    """STOP was handled when it came. An opted-out patient gets no SMS, but their
    words still reach the assistant (a red flag must reach the nurse), so a failed
    turn of theirs is retried too."""
    url, assistant = server
    pid = add_patient("test", PHONE)
    stop = new_sid()
    assert post(url, stop, "STOP").status_code == 200
    with new_session() as session, session.begin():
        session.execute(update(Message).where(Message.provider_sid == stop)
                        .values(created_at=utcnow() - timedelta(minutes=3)))
    assert post(url, stop, "STOP").status_code == 200
    failed = new_sid()
    assistant.fail_once.add("I can't feel my legs")
    assert assistant.turns == []
    assert post(url, failed, "I can't feel my legs").status_code == 500
    assert post(url, failed, "I can't feel my legs").status_code == 200
    assert assistant.turns == [(pid, "I can't feel my legs")] * 2


def test_a_picture_without_words_is_answered_and_becomes_a_nurse_task(
        server: tuple[str, Assistant]) -> None:
    """Most often a photo of the injection site: nobody at PainPath can see it, so the
    patient is asked for words and the care team gets a task. Not a turn: the
    assistant needs words."""
    from painpath.models import Escalation

    url, assistant = server
    pid = add_patient("test", PHONE)
    sid = "MM" + secrets.token_hex(16)
    assert post(url, sid, "", media=1).status_code == 200
    assert post(url, sid, "", media=1).status_code == 200  # a replay: nothing more
    assert post(url, new_sid(), "   ").status_code == 200  # empty, no picture
    assert assistant.turns == []
    twilio = assistant.twilio  # type: ignore[attr-defined]
    twilio.wait_for(lambda msgs: len(msgs) >= 2, timeout=10)
    bodies = [m.body for m in twilio.messages]
    assert len(bodies) == 2 and "can't open pictures" in bodies[0] and "+14155550198" in bodies[0]
    assert "empty" in bodies[1]
    with new_session() as session:
        tasks = session.execute(select(Escalation).where(Escalation.patient_id == pid)).scalars().all()
        assert [(t.kind, t.tier, t.status) for t in tasks] == [("picture", "routine", "open")]
