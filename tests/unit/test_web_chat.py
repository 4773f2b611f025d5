"""The patient web chat (web.app) against SQLite and a fake Rasa REST channel."""
from __future__ import annotations

import dataclasses
import json
import re
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import select

from painpath import models
from painpath.db import get_engine, new_session
from painpath.models import Clinic, Clinician, Message, Patient
from painpath.settings import Settings, load_settings
from painpath.nonces import MemoryNonces
from painpath.webhook_auth import PURPOSE, verify
from painpath.weblink import chat_token, sign_link_key
from web.app import create_app

PATIENT_ID = "0123456789abcdef"
PATIENT_PHONE = "+15555550100"
NURSE_PHONE = "+15555550199"


class FakeRasa:
    """Rasa's REST channel on loopback: records requests, echoes two replies."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.secret_key = "test-secret-key-web-chat"
        key = dataclasses.replace(load_settings(), secret_key=self.secret_key).key_for(PURPOSE)
        nonces = MemoryNonces()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                payload = json.loads(raw or b"{}")
                fake.requests.append({"path": self.path, "json": payload,
                                      "signed": verify(raw, self.headers, key, nonces) is None})
                if fake.status != 200:
                    body = b'{"error": "boom"}'
                    self.send_response(fake.status)
                else:
                    body = json.dumps([
                        {"recipient_id": payload.get("sender"),
                         "text": f"You said: {payload.get('message')}"},
                        {"recipient_id": payload.get("sender"),
                         "text": "How is your pain from 0 to 10?",
                         "buttons": [{"title": "0-3", "payload": "/low"},
                                     {"title": "4-10", "payload": "/high"}]},
                        {"recipient_id": payload.get("sender"), "image": "x.png"},
                    ]).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture()
def fake_rasa() -> Iterator[FakeRasa]:
    fake = FakeRasa()
    yield fake
    fake.close()


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_rasa: FakeRasa) -> Settings:
    monkeypatch.setenv("PAINPATH_SECRET_KEY", "test-secret-key-web-chat")
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    models.Base.metadata.create_all(get_engine(url))
    with new_session(url) as s, s.begin():
        clinic = Clinic(slug="demo", name="Demo <b>Pain</b> & Spine", phone="+15555550000")
        s.add(clinic)
        s.flush()
        s.add(Patient(id=PATIENT_ID, clinic_id=clinic.id, name="Pat <i>Doe</i>",
                      phone=PATIENT_PHONE, timezone="America/New_York", channel="web"))
        s.add(Patient(id="fedcba9876543210", clinic_id=clinic.id, phone="+15555550111",
                      timezone="America/New_York"))
    return dataclasses.replace(
        load_settings(), database_url=url, rasa_url=fake_rasa.url,
        web_base_url="http://testserver", chat_link_ttl_hours=72,
    )


@pytest.fixture()
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture()
def token(settings: Settings) -> str:
    return make_token(settings)


def make_token(settings: Settings, patient_id: str = PATIENT_ID) -> str:
    """The patient's chat token (their link key, signed now)."""
    with new_session(settings.database_url) as s, s.begin():
        return chat_token(s, patient_id, settings)


def _messages(settings: Settings) -> list[Message]:
    with new_session(settings.database_url) as s:
        return list(s.execute(select(Message).order_by(Message.id)).scalars())


def _add(settings: Settings, **fields: Any) -> int:
    with new_session(settings.database_url) as s, s.begin():
        m = Message(**fields)
        s.add(m)
        s.flush()
        return int(m.id)


def _tamper(token: str) -> str:
    i = len(token) - 5  # a middle character of the signature
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]


# --------------------------------------------------------------------------- #


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"ok": True}


def test_valid_link_renders_the_chat_page(client: TestClient, token: str) -> None:
    r = client.get(f"/chat/{token}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<html lang="en">' in html
    assert 'name="viewport"' in html
    assert 'id="messages"' in html and 'role="log"' in html and 'aria-live="polite"' in html
    assert '<label for="message-input"' in html
    assert 'id="message-input"' in html and 'id="send-button"' in html
    assert "not monitored in real time" in html
    assert "911" in html and "988" in html
    assert f'data-messages-url="/chat/{token}/messages"' in html
    # The link is a credential: no Referer leaks, no caching.
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"


def test_static_assets_are_served(client: TestClient) -> None:
    js = client.get("/static/chat.js")
    assert js.status_code == 200
    assert "textContent" in js.text
    assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", js.text)
    assert client.get("/static/chat.css").status_code == 200


def test_tampered_link_is_403_without_patient_data(
    client: TestClient, settings: Settings, token: str
) -> None:
    _add(settings, patient_id=PATIENT_ID, direction="out", channel="web", to="web",
         body="Secret check-in question", status="delivered")
    r = client.get(f"/chat/{_tamper(token)}")
    assert r.status_code == 403
    assert "not valid" in r.text
    assert "contact your clinic" in r.text and "reply to the clinic" in r.text
    assert "Secret check-in question" not in r.text
    assert "Demo" not in r.text and "Doe" not in r.text
    assert 'id="messages"' not in r.text


def test_tampered_link_cannot_post_or_poll(
    client: TestClient, settings: Settings, token: str, fake_rasa: FakeRasa
) -> None:
    bad = _tamper(token)
    r = client.post(f"/chat/{bad}/messages", json={"text": "hello"})
    assert r.status_code == 403
    assert r.json()["reason"] == "invalid"
    assert _messages(settings) == []
    assert fake_rasa.requests == []
    assert client.get(f"/chat/{bad}/messages?after=0").status_code == 403


def test_a_signed_key_no_patient_holds_is_410(client: TestClient, settings: Settings) -> None:
    r = client.get(f"/chat/{sign_link_key('no-such-key', settings)}")
    assert r.status_code == 410 and "no longer works" in r.text


def test_expired_link_is_410(
    client: TestClient, settings: Settings, fake_rasa: FakeRasa
) -> None:
    past = datetime.now(timezone.utc) - timedelta(hours=settings.chat_link_ttl_hours, minutes=5)
    with time_machine.travel(past, tick=False):
        old = make_token(settings)
    page = client.get(f"/chat/{old}")
    assert page.status_code == 410
    assert "expired" in page.text
    assert "contact your clinic" in page.text
    assert 'id="messages"' not in page.text
    post = client.post(f"/chat/{old}/messages", json={"text": "hello"})
    assert post.status_code == 410
    assert post.json()["reason"] == "expired"
    assert client.get(f"/chat/{old}/messages").status_code == 410
    assert _messages(settings) == []
    assert fake_rasa.requests == []


def test_post_stores_inbound_and_replies_and_forwards_to_rasa(
    client: TestClient, settings: Settings, token: str, fake_rasa: FakeRasa
) -> None:
    r = client.post(f"/chat/{token}/messages", json={"text": "  my pain is a 4  "})
    assert r.status_code == 200, r.text
    out = r.json()["messages"]
    assert [m["direction"] for m in out] == ["in", "out", "out"]
    assert out[0]["body"] == "my pain is a 4"
    assert out[1]["body"] == "You said: my pain is a 4"
    assert out[2]["body"] == "How is your pain from 0 to 10?\n• 0-3\n• 4-10"
    assert all({"id", "direction", "body", "created_at"} <= set(m) for m in out)
    assert out[0]["id"] < out[1]["id"] < out[2]["id"]

    assert fake_rasa.requests == [
        {"path": "/webhooks/web/webhook",
         "json": {"sender": PATIENT_ID, "message": "my pain is a 4", "metadata": {"procedure": None}},
         "signed": True}
    ]

    stored = _messages(settings)
    assert [(m.patient_id, m.direction, m.channel, m.from_, m.to, m.status) for m in stored] == [
        (PATIENT_ID, "in", "web", "web", "bot", "received"),
        (PATIENT_ID, "out", "web", "bot", "web", "delivered"),
        (PATIENT_ID, "out", "web", "bot", "web", "delivered"),
    ]
    assert [m.id for m in stored] == [m["id"] for m in out]
    assert stored[0].body == "my pain is a 4"


def test_rasa_down_is_503_and_the_message_is_kept(
    settings: Settings, token: str
) -> None:
    down = dataclasses.replace(settings, rasa_url=_closed_port_url())
    with TestClient(create_app(down)) as c:
        r = c.post(f"/chat/{token}/messages", json={"text": "is anyone there?"})
    assert r.status_code == 503
    data = r.json()
    assert "isn't available" in data["error"] and "911" in data["error"]
    stored = _messages(settings)
    assert [(m.direction, m.body, m.status) for m in stored] == [
        ("in", "is anyone there?", "received")
    ]
    assert data["messages"][0]["id"] == stored[0].id


def test_rasa_error_status_is_503(
    client: TestClient, settings: Settings, token: str, fake_rasa: FakeRasa
) -> None:
    fake_rasa.status = 500
    r = client.post(f"/chat/{token}/messages", json={"text": "hello"})
    assert r.status_code == 503
    assert [m.direction for m in _messages(settings)] == ["in"]


@pytest.mark.parametrize("text", ["", "   \n ", "x" * 2001])
def test_empty_or_too_long_text_is_422(
    client: TestClient, settings: Settings, token: str, fake_rasa: FakeRasa, text: str
) -> None:
    r = client.post(f"/chat/{token}/messages", json={"text": text})
    assert r.status_code == 422
    assert _messages(settings) == []
    assert fake_rasa.requests == []


def test_text_of_exactly_2000_chars_is_accepted(client: TestClient, token: str) -> None:
    r = client.post(f"/chat/{token}/messages", json={"text": "y" * 2000})
    assert r.status_code == 200


def test_missing_or_non_string_text_is_422(client: TestClient, token: str) -> None:
    assert client.post(f"/chat/{token}/messages", json={}).status_code == 422
    assert client.post(f"/chat/{token}/messages", json={"text": ["a"]}).status_code == 422


def test_polling_returns_messages_after_the_given_id(
    client: TestClient, settings: Settings, token: str
) -> None:
    first = client.post(f"/chat/{token}/messages", json={"text": "hi"}).json()["messages"]
    last_seen = first[-1]["id"]
    assert client.get(f"/chat/{token}/messages?after={last_seen}").json() == {"messages": []}

    # The scheduler starts a check-in (a bot message nobody asked for).
    checkin = _add(settings, patient_id=PATIENT_ID, direction="out", channel="web", to="web",
                   body="Time for your day-1 check-in.", status="delivered")
    sms = _add(settings, patient_id=PATIENT_ID, direction="out", channel="sms",
               to=PATIENT_PHONE, body="Reminder by text", status="sent")
    # Not for the patient's eyes: the alert to the nurse, and another patient's chat.
    _add(settings, patient_id=PATIENT_ID, direction="out", channel="sms", to=NURSE_PHONE,
         body="PainPath alert: see dashboard", status="sent")
    _add(settings, patient_id="fedcba9876543210", direction="out", channel="web", to="web",
         body="someone else's message", status="delivered")

    new = client.get(f"/chat/{token}/messages?after={last_seen}").json()["messages"]
    assert [(m["id"], m["direction"], m["body"]) for m in new] == [
        (checkin, "out", "Time for your day-1 check-in."),
        (sms, "out", "Reminder by text"),
    ]
    assert all(set(m) == {"id", "direction", "body", "created_at"} for m in new)

    everything = client.get(f"/chat/{token}/messages?after=0").json()["messages"]
    assert [m["id"] for m in everything] == [*(m["id"] for m in first), checkin, sms]
    assert client.get(f"/chat/{token}/messages").json()["messages"] == everything


def test_alerts_to_clinicians_are_never_shown(
    client: TestClient, settings: Settings, token: str
) -> None:
    with new_session(settings.database_url) as s, s.begin():
        nurse = Clinician(clinic_id=1, name="Nurse", phone=NURSE_PHONE)
        s.add(nurse)
        s.flush()
        nurse_id = nurse.id
    _add(settings, patient_id=PATIENT_ID, clinician_id=nurse_id, direction="out",
         channel="web", to="web", body="internal note", status="delivered")
    assert client.get(f"/chat/{token}/messages").json()["messages"] == []
    assert "internal note" not in client.get(f"/chat/{token}").text


def test_html_in_messages_is_data_in_json_and_escaped_in_the_page(
    client: TestClient, settings: Settings, token: str, fake_rasa: FakeRasa
) -> None:
    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    r = client.post(f"/chat/{token}/messages", json={"text": evil})
    assert r.status_code == 200
    assert r.json()["messages"][0]["body"] == evil
    assert fake_rasa.requests[0]["json"]["message"] == evil
    polled = client.get(f"/chat/{token}/messages").json()["messages"]
    assert polled[0]["body"] == evil

    page = client.get(f"/chat/{token}").text
    assert "<script>alert(2)</script>" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    # The clinic name is rendered too, and escaped.
    assert "Demo &lt;b&gt;Pain&lt;/b&gt; &amp; Spine" in page
    assert "<b>Pain</b>" not in page
    # Both bubbles are rendered with the classes the page script and tests rely on.
    assert 'class="msg msg-user"' in page and 'class="msg msg-bot"' in page


def test_existing_conversation_is_rendered_in_order(
    client: TestClient, settings: Settings, token: str
) -> None:
    a = _add(settings, patient_id=PATIENT_ID, direction="out", channel="web", to="web",
             body="First from the clinic", status="delivered")
    b = _add(settings, patient_id=PATIENT_ID, direction="in", channel="sms",
             from_=PATIENT_PHONE, to="+15555550000", body="Reply by text", status="received")
    page = client.get(f"/chat/{token}").text
    assert page.index("First from the clinic") < page.index("Reply by text")
    assert f'data-last-id="{b}"' in page
    assert f'data-id="{a}"' in page
