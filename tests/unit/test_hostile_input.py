"""Hostile input at every door: the web chat, Twilio's status callback, the dashboard
login (in process, against `web.app.create_app`) and the inbound SMS webhook (the
real Rasa server of the `stack` fixture).

Random bytes, invalid UTF-8, 100 kB bodies, emoji, HTML/JS and SQL fragments never
cause a 5xx; oversized bodies get 413; forged and replayed Twilio requests are
refused or ignored; login guessing is rate-limited per username and per client
address; patient text is rendered escaped.
"""
from __future__ import annotations

import dataclasses
import json
import secrets
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st
from markupsafe import escape
from sqlalchemy import func, select

import web.dashboard as dashboard
from painpath import consent
from painpath.db import new_session
from painpath.inbound import clean_text
from painpath.models import Answer, CheckIn, Escalation, Message, Patient
from painpath.settings import Settings, load_settings
from painpath.weblink import chat_url
from tests.fakes.fake_twilio import sign
from tests.unit.test_dashboard import PASSWORD, add_clinician, add_patient, csrf_of
from tests.unit.test_web_chat import FakeRasa
from web.app import create_app

TWILIO_TOKEN = "hostile-test-auth-token-0123456789"
PUBLIC = "https://painpath.example.org"
STATUS_URL = f"{PUBLIC}/twilio/status"
KB = 1024
FUZZ = hsettings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])

FRAGMENTS = [
    "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</textarea><svg/onload=alert(1)>",
    "javascript:alert(document.cookie)", "{{7*7}}", "{% include 'x' %}", "${jndi:ldap://x/a}",
    "'; DROP TABLE patient; --", "' OR '1'='1", "1; SELECT pg_sleep(5)--", "%00", "\x00",
    "\u202e", "\ufeff", "\u200b", "\U0001F600", "\U0001F469\U0001F3FD\u200d\u2695\ufe0f",
    "\U0001F3F3\ufe0f\u200d\U0001F308", "Z\u0337\u0322a\u0338l\u0334g\u0335o", "\r\n\r\n", "\\",
    "%s%n%x", "../../etc/passwd", "\x1b[31m", "\x7f", "\ud800", "\udfff", "\u0000end",
]
# Text as people and attackers type it: fragments mixed with arbitrary Unicode
# (including lone surrogates, which JSON can carry and UTF-8 cannot).
hostile_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS),
              st.text(st.characters(codec=None, exclude_categories=()), max_size=30)),
    max_size=12).map("".join)


def no_5xx(resp: httpx.Response) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text[:200])


# --------------------------------------------------------------------------- #
# In-process web app
# --------------------------------------------------------------------------- #


@pytest.fixture
def fake_rasa() -> Iterator[FakeRasa]:
    fake = FakeRasa()
    yield fake
    fake.close()


@pytest.fixture
def app_settings(database_url: str, clinic: str, fake_rasa: FakeRasa) -> Settings:
    return dataclasses.replace(
        load_settings(), rasa_url=fake_rasa.url, secret_key=fake_rasa.secret_key,
        public_base_url=PUBLIC, twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=TWILIO_TOKEN, twilio_from_number="+14155550000")


@pytest.fixture
def web(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings), base_url="http://testserver") as client:
        yield client


@pytest.fixture
def chat(app_settings: Settings) -> tuple[str, str]:
    """(patient id, the messages URL of their chat link)."""
    pid = add_patient("test", "+14155550121", name="Wendy Web")
    path = chat_url(pid, app_settings).removeprefix(app_settings.web_base_url)
    return pid, f"{path}/messages"


def stored_bodies(pid: str) -> list[str]:
    with new_session() as session:
        return list(session.execute(
            select(Message.body).where(Message.patient_id == pid, Message.direction == "in")
            .order_by(Message.id)).scalars())


# ------------------------------------------------------------------------ chat


@st.composite
def chat_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """(body, content type): JSON messages, broken JSON, random and non-UTF-8 bytes."""
    kind = draw(st.sampled_from(["text", "text", "text", "surrogate", "json", "bytes",
                                 "bad_utf8", "form"]))
    if kind == "text":
        return json.dumps({"text": draw(hostile_text)}).encode(), "application/json"
    if kind == "surrogate":  # a lone surrogate escape inside otherwise valid JSON
        return b'{"text": "pain \\ud83d here ' + draw(st.sampled_from(
            [b"", b"\\udc00", b"\\u0000", b"<b>"])) + b'"}', "application/json"
    if kind == "json":
        value = draw(st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                st.sampled_from(["text", "x", "__proto__"]), inner, max_size=3),
            max_leaves=8))
        return json.dumps(value).encode(), "application/json"
    if kind == "bytes":
        return draw(st.binary(max_size=2000)), draw(st.sampled_from(
            ["application/json", "text/plain", "application/octet-stream"]))
    if kind == "bad_utf8":
        return b'{"text": "' + draw(st.binary(min_size=1, max_size=50)) + b'\xff\xfe"}', \
            "application/json"
    form = {"text": draw(hostile_text).encode("utf-8", "surrogatepass")}  # bad UTF-8 too
    return urlencode(form).encode(), "application/x-www-form-urlencoded"


@FUZZ
@given(body=chat_bodies())
def test_chat_fuzz_never_5xx_and_stores_clean_text(web: TestClient, chat: tuple[str, str],
                                                    body: tuple[bytes, str]) -> None:
    pid, url = chat
    raw, content_type = body
    before = len(stored_bodies(pid))
    resp = web.post(url, content=raw, headers={"Content-Type": content_type})
    no_5xx(resp)
    assert resp.status_code in (200, 400, 422), resp.status_code
    after = stored_bodies(pid)
    if resp.status_code == 200:
        sent = json.loads(raw)["text"]
        (stored,) = after[before:]
        assert stored == clean_text(str(sent)).strip()
        assert "\x00" not in stored and stored.encode("utf-8")  # storable everywhere
        assert resp.json()["messages"][0]["body"] == stored
    else:
        assert len(after) == before  # nothing stored for a refused message


def test_chat_refuses_a_100_kb_body_with_413(web: TestClient, chat: tuple[str, str]) -> None:
    pid, url = chat
    big = json.dumps({"text": "a" * 100 * KB}).encode()
    resp = web.post(url, content=big, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while it streams
        yield b'{"text": "'
        for _ in range(100):
            yield b"b" * KB
        yield b'"}'

    resp = web.post(url, content=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    resp = web.post(url, content=b"{}", headers={"Content-Type": "application/json",
                                                 "Content-Length": "-5"})
    assert resp.status_code in (400, 413)
    assert stored_bodies(pid) == []
    # the limit leaves room for the longest message the chat accepts, as \\u escapes
    ok = json.dumps({"text": "\u00e9" * 2000}).encode()  # ensure_ascii: 12 kB
    assert web.post(url, content=ok, headers={"Content-Type": "application/json"}
                    ).status_code == 200


@FUZZ
@given(token=hostile_text, after=st.one_of(st.integers(), st.text(max_size=30)))
def test_chat_links_and_polling_fuzz_never_5xx(web: TestClient, chat: tuple[str, str],
                                               token: str, after: Any) -> None:
    _, url = chat
    path = "/chat/" + quote(clean_text(token) or "x", safe="")
    no_5xx(web.get(path))
    no_5xx(web.get(path + "/messages"))
    no_5xx(web.post(path + "/messages", json={"text": "hi"}))
    resp = web.get(url, params={"after": str(after)})
    no_5xx(resp)
    assert resp.status_code in (200, 422)


def test_polling_after_a_huge_id_is_fine(web: TestClient, chat: tuple[str, str]) -> None:
    _, url = chat
    everything = web.get(url).json()  # the conversation so far (the welcome SMS)
    for after in ("99999999999999999999999999", "-99999999999999999999", "9223372036854775808"):
        resp = web.get(url, params={"after": after})
        assert resp.status_code == 200
        assert resp.json() == (everything if after.startswith("-") else {"messages": []})


# -------------------------------------------------------------- Twilio status


def status_form(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32,
            **extra}


def post_status(web: TestClient, form: dict[str, str], signature: str | None = None,
                url: str = STATUS_URL) -> httpx.Response:
    sig = signature if signature is not None else sign(TWILIO_TOKEN, url, form)
    return web.post("/twilio/status", content=urlencode(form).encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded",
                             "X-Twilio-Signature": sig})


@pytest.fixture
def sent_sms(chat: tuple[str, str]) -> str:
    """A sent SMS with a Twilio SID; returns the SID."""
    pid, _ = chat
    sid = "SM" + secrets.token_hex(16)
    with new_session() as session, session.begin():
        session.add(Message(patient_id=pid, direction="out", channel="sms", to="+14155550121",
                            from_="+14155550000", body="Time for your check-in",
                            status="sent", provider_sid=sid))
    return sid


def status_of(sid: str) -> tuple[str, str | None]:
    with new_session() as session:
        m = session.execute(select(Message).where(Message.provider_sid == sid)).scalar_one()
        return m.status, m.error


@FUZZ
@given(data=st.data())
def test_status_callback_fuzz_never_5xx(web: TestClient, sent_sms: str,
                                        data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["bytes", "form", "signed"]))
    if kind == "bytes":
        raw = data.draw(st.binary(max_size=3000))
        ctype = data.draw(st.sampled_from(["application/x-www-form-urlencoded",
                                           "multipart/form-data; boundary=x", "text/plain"]))
        resp = web.post("/twilio/status", content=raw, headers={
            "Content-Type": ctype, "X-Twilio-Signature": data.draw(hostile_text)[:100]
            .encode("ascii", "ignore").decode() or "x"})
        no_5xx(resp)
        assert resp.status_code in (400, 403)
    else:
        form = data.draw(st.dictionaries(
            st.sampled_from(["MessageSid", "MessageStatus", "ErrorCode", "To", "Body", "x"]),
            hostile_text.map(clean_text), max_size=5))
        signature = None if kind == "signed" else "forged" + secrets.token_hex(8)
        resp = post_status(web, form, signature)
        no_5xx(resp)
        assert resp.status_code == (204 if kind == "signed" else 403)
    assert status_of(sent_sms) == ("sent", None)  # nothing valid was said about it


def test_status_callback_signed_updates_forged_is_refused(web: TestClient,
                                                          sent_sms: str) -> None:
    form = status_form(sent_sms, "delivered")
    assert post_status(web, form, signature="").status_code == 403
    assert post_status(web, form, sign("not-the-token", STATUS_URL, form)).status_code == 403
    assert post_status(web, form, sign(TWILIO_TOKEN, f"{PUBLIC}/other", form)).status_code == 403
    tampered = {**form, "MessageStatus": "failed"}
    assert post_status(web, tampered, sign(TWILIO_TOKEN, STATUS_URL, form)).status_code == 403
    assert status_of(sent_sms) == ("sent", None)
    assert post_status(web, status_form(sent_sms, "delivered")).status_code == 204
    assert status_of(sent_sms) == ("delivered", None)
    # signed, but fields Twilio never sends: ignored, never stored
    for bad in (status_form(sent_sms, "x" * 500), status_form(sent_sms, "failed", ErrorCode="1; drop"),
                status_form("SM" + "z" * 32, "failed")):
        assert post_status(web, bad).status_code == 204
    assert status_of(sent_sms) == ("delivered", None)


def test_status_callback_refuses_100_kb_with_413(web: TestClient, sent_sms: str) -> None:
    form = status_form(sent_sms, "delivered", Pad="p" * 100 * KB)
    assert post_status(web, form).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield urlencode(status_form(sent_sms, "delivered")).encode() + b"&Pad="
        for _ in range(100):
            yield b"p" * KB

    resp = web.post("/twilio/status", content=chunks(),
                    headers={"Content-Type": "application/x-www-form-urlencoded",
                             "X-Twilio-Signature": "x"})
    assert resp.status_code == 413
    assert status_of(sent_sms) == ("sent", None)


def test_status_callback_rejects_invalid_utf8_with_400(web: TestClient) -> None:
    resp = web.post("/twilio/status", content=b"MessageSid=SM%ff%fe&MessageStatus=\xff",
                    headers={"Content-Type": "application/x-www-form-urlencoded",
                             "X-Twilio-Signature": "x"})
    assert resp.status_code == 400


# ---------------------------------------------------------------------- login


def login_page_token(web: TestClient) -> str:
    page = web.get("/login")
    assert page.status_code == 200
    return csrf_of(page.text)


@FUZZ
@given(username=hostile_text, password=hostile_text)
def test_login_fuzz_never_5xx(web: TestClient, username: str, password: str) -> None:
    dashboard_router_throttle(web).__init__()  # fresh limits: each example is one guess
    token = login_page_token(web)
    form = urlencode({"username": username.encode("utf-8", "surrogatepass"),
                      "password": password.encode("utf-8", "surrogatepass"),
                      "csrf_token": token, "next": "/queue"}).encode()
    resp = web.post("/login", content=form, follow_redirects=False,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    no_5xx(resp)
    assert resp.status_code in (400, 401, 422), resp.status_code


def dashboard_router_throttle(web: TestClient) -> dashboard.LoginThrottle:
    for route in web.app.router.routes:  # type: ignore[attr-defined]
        if getattr(route, "path", "") == "/login" and "POST" in getattr(route, "methods", ()):
            closure = route.endpoint.__closure__ or ()
            for cell in closure:
                if isinstance(cell.cell_contents, dashboard.LoginThrottle):
                    return cell.cell_contents
    raise AssertionError("no login throttle found")


def try_login(app: Any, ip: str, username: str, password: str) -> int:
    with TestClient(app, base_url="http://testserver", client=(ip, 40000)) as client:
        token = login_page_token(client)
        return client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": token, "next": "/queue"},
                           follow_redirects=False).status_code


def test_password_spraying_from_one_address_is_rate_limited(
        web: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many usernames, each under its own limit, from one address: that address is
    refused (429, before any password is hashed); another address still signs in."""
    add_clinician("test", "nora")
    throttle = dashboard_router_throttle(web)
    hashed = []
    real_verify = dashboard.verify_password
    monkeypatch.setattr(dashboard, "verify_password",
                        lambda h, p: hashed.append(1) or real_verify(h, p))
    attacker = "203.0.113.7"
    codes = [try_login(web.app, attacker, f"user{i}", "Winter2025!")
             for i in range(throttle.ip_limit)]
    assert codes == [401] * throttle.ip_limit
    assert len(hashed) == throttle.ip_limit
    assert try_login(web.app, attacker, "nora", PASSWORD) == 429  # even the right password
    assert try_login(web.app, attacker, "user99", "x") == 429
    assert len(hashed) == throttle.ip_limit  # refused without hashing
    assert try_login(web.app, "198.51.100.20", "nora", PASSWORD) == 303  # a nurse elsewhere


def test_guessing_one_username_from_many_addresses_never_locks_the_nurse_out(
        web: TestClient) -> None:
    """Each guessing address waits on its own; the nurse's own sign-in is never refused
    (a lockout would let anyone keep a named nurse out of the dashboard)."""
    add_clinician("test", "nora")
    throttle = dashboard_router_throttle(web)
    for i in range(3 * throttle.limit):
        assert try_login(web.app, f"203.0.113.{i + 1}", "nora", f"guess{i}") == 401
    assert try_login(web.app, "198.51.100.20", "nora", PASSWORD) == 303


def test_the_throttle_forgets_and_stays_bounded() -> None:
    clock = [1000.0]
    throttle = dashboard.LoginThrottle(limit=3, ip_limit=1000, max_keys=200,
                                       clock=lambda: clock[0])
    for i in range(5000):  # a flood of made-up usernames from many addresses
        throttle.failed(f"user{i}", f"10.0.{i // 250}.{i % 250}")
    assert throttle.tracked() <= 200
    for _ in range(3):
        throttle.failed("nora", "192.0.2.1")
    assert throttle.locked("nora", "192.0.2.1")
    assert throttle.locked("NORA ", "192.0.2.1")  # case, spaces
    assert not throttle.locked("nora", "192.0.2.99")  # only the failing client waits
    clock[0] += throttle.delay_after(3, throttle.limit) + 1
    assert not throttle.locked("nora", "192.0.2.1")  # the wait ends
    throttle.failed("nora", "192.0.2.1")
    assert throttle.wait_seconds("nora", "192.0.2.1") == 2 * throttle.base  # and grows
    clock[0] += throttle.window + 1
    throttle.failed("nora", "192.0.2.1")
    assert not throttle.locked("nora", "192.0.2.1")  # forgotten after the window


# ------------------------------------------------------------------ escaping


@FUZZ
@given(words=hostile_text.map(lambda t: clean_text(t) + "<script>x()</script>"))
def test_patient_text_is_rendered_escaped(web: TestClient, chat: tuple[str, str],
                                          words: str) -> None:
    """Whatever a patient writes appears in the dashboard and in their chat page as
    text, never as markup."""
    pid, url = chat
    with new_session() as session, session.begin():
        patient = session.get(Patient, pid)
        patient.name = words[:200]
        checkin = session.execute(select(CheckIn).where(CheckIn.patient_id == pid)
                                  .order_by(CheckIn.id)).scalars().first()
        session.execute(Answer.__table__.delete().where(Answer.checkin_id == checkin.id))
        session.add(Answer(checkin_id=checkin.id, item="pain_now", value=5, raw_text=words,
                           status="answered"))
        session.add(Message(patient_id=pid, direction="in", channel="web", from_="web",
                            to="bot", body=words, status="received"))
        session.add(Escalation(patient_id=pid, tier="urgent", reasons=[words], text=words,
                               status="open"))
    escaped = str(escape(words))
    if not web.cookies.get(dashboard.SESSION_COOKIE):
        add_clinician("test", "nora")
        token = login_page_token(web)
        assert web.post("/login", data={"username": "nora", "password": PASSWORD,
                                        "csrf_token": token}, follow_redirects=False
                        ).status_code == 303
    pages = [web.get(f"/patients/{pid}").text, web.get("/queue").text,
             web.get(url.rsplit("/", 1)[0]).text]
    for html in pages:
        assert "<script>x()</script>" not in html
    assert escaped in pages[0] and escaped in pages[2]
    assert escape(words[:280]) in pages[1]


# --------------------------------------------------------------------------- #
# The inbound SMS webhook on the real Rasa server
# --------------------------------------------------------------------------- #

STACK_FUZZ = hsettings(max_examples=50, deadline=None,
                       suppress_health_check=[HealthCheck.too_slow])


def webhook_post(stack: Any, raw: bytes, content_type: str = "application/x-www-form-urlencoded",
                 signature: str = "x", **headers: str) -> httpx.Response:
    return httpx.post(stack.webhook_url, content=raw, timeout=60,
                      headers={"Content-Type": content_type, "X-Twilio-Signature": signature,
                               **headers})


def signed_params(stack: Any, from_number: str, body: str,
                  sid: str | None = None) -> tuple[dict[str, str], str]:
    params = {"From": from_number, "To": stack.twilio.from_number, "Body": body,
              "MessageSid": sid or "SM" + secrets.token_hex(16),
              "AccountSid": stack.twilio.account_sid, "NumMedia": "0"}
    return params, sign(stack.twilio.auth_token, stack.webhook_url, params)


def sms_rows(stack: Any, sid: str) -> int:
    with new_session(stack.database_url) as session:
        return session.execute(select(func.count()).select_from(Message).where(
            Message.provider_sid == sid, Message.direction == "in")).scalar_one()


def inbound_bodies(stack: Any, phone: str) -> list[str]:
    with new_session(stack.database_url) as session:
        return list(session.execute(select(Message.body).where(
            Message.from_ == phone, Message.direction == "in").order_by(Message.id)).scalars())


@pytest.fixture(scope="module")
def sms_patient(stack: Any) -> tuple[str, str]:
    phone = "+14155559171"
    pid = stack.cli("enroll", "--clinic", "e2e", "--phone", phone, "--procedure",
                    "facet_injection", "--procedure-at", "2026-01-05T09:00:00-05:00",
                    "--timezone", "America/New_York").stdout.strip()
    return pid, phone


@pytest.mark.stack
@STACK_FUZZ
@given(raw=st.one_of(st.binary(max_size=3000),
                     st.binary(max_size=200).map(lambda b: b"Body=" + b + b"\xff&From=%2B1"),
                     st.dictionaries(st.sampled_from(["From", "Body", "MessageSid", "To", "x"]),
                                     hostile_text.map(clean_text), max_size=5)
                     .map(lambda d: urlencode(d).encode())),
       content_type=st.sampled_from(["application/x-www-form-urlencoded", "text/plain",
                                     "multipart/form-data; boundary=zz", "application/json"]))
def test_sms_webhook_fuzz_unsigned_never_5xx(stack: Any, raw: bytes, content_type: str) -> None:
    resp = webhook_post(stack, raw, content_type, signature="forged" + secrets.token_hex(4))
    no_5xx(resp)
    assert resp.status_code in (400, 403, 415), resp.status_code


@pytest.mark.stack
@STACK_FUZZ
@given(body=hostile_text.filter(lambda t: consent.keyword(t) is None),
       sender=st.sampled_from(["patient", "unknown", "garbage"]))
@example(body="", sender="patient")  # a picture without text
@example(body=" \t\r\n ", sender="patient")
@example(body="\u200b\ufeff", sender="patient")
@example(body="\U0001F642", sender="patient")
@example(body="...?!", sender="patient")
@example(body="\x00\x01\x1b", sender="patient")
def test_sms_webhook_fuzz_signed_never_5xx(stack: Any, sms_patient: tuple[str, str],
                                           body: str, sender: str) -> None:
    """Signed like Twilio, with whatever a phone can send (and more): always 200, the
    text stored clean, each MessageSid processed once."""
    pid, phone = sms_patient
    wire = body.encode("utf-8", "surrogatepass").decode("utf-8", "replace")  # as sent
    from_number = {"patient": phone, "unknown": "+14155550179",
                   "garbage": "<script>" + wire[:20]}[sender]
    params, signature = signed_params(stack, from_number, wire)
    before = inbound_bodies(stack, phone)
    resp = httpx.post(stack.webhook_url, data=params, timeout=60,
                      headers={"X-Twilio-Signature": signature})
    no_5xx(resp)
    assert resp.status_code == 200, resp.text
    assert "<Response>" in resp.text
    if sender == "patient":
        assert inbound_bodies(stack, phone)[len(before):] == [clean_text(wire, 1600)]
    if sender != "garbage":
        assert sms_rows(stack, params["MessageSid"]) == 1


@pytest.mark.stack
def test_sms_webhook_refuses_100_kb_with_413(stack: Any, sms_patient: tuple[str, str]) -> None:
    _, phone = sms_patient
    params, signature = signed_params(stack, phone, "a" * 100 * KB)
    resp = httpx.post(stack.webhook_url, data=params, timeout=60,
                      headers={"X-Twilio-Signature": signature})
    assert resp.status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b"From=%2B14155559171&Body="
        for _ in range(100):
            yield b"b" * KB

    assert webhook_post(stack, b"".join(chunks())).status_code == 413
    resp = httpx.post(stack.webhook_url, content=chunks(), timeout=60, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"})
    assert resp.status_code == 413
    assert sms_rows(stack, params["MessageSid"]) == 0


@pytest.mark.stack
def test_sms_webhook_invalid_utf8_is_400(stack: Any) -> None:
    assert webhook_post(stack, b"From=%2B14155559171&Body=%ff%fe").status_code == 400
    assert webhook_post(stack, b"From=%2B14155559171&Body=\xc3\x28").status_code == 400


@pytest.mark.stack
def test_forged_signatures_are_refused(stack: Any, sms_patient: tuple[str, str]) -> None:
    _, phone = sms_patient
    params, good = signed_params(stack, phone, "my pain is 3")
    forged = {
        "none": "",
        "wrong token": sign("not-the-auth-token", stack.webhook_url, params),
        "wrong url": sign(stack.twilio.auth_token, stack.webhook_url + "x", params),
        "garbage": "A" * 28,
    }
    for why, signature in forged.items():
        resp = httpx.post(stack.webhook_url, data=params, timeout=60,
                          headers={"X-Twilio-Signature": signature})
        assert resp.status_code == 403, why
    tampered = {**params, "Body": "STOP"}
    resp = httpx.post(stack.webhook_url, data=tampered, timeout=60,
                      headers={"X-Twilio-Signature": good})
    assert resp.status_code == 403
    assert sms_rows(stack, params["MessageSid"]) == 0
    # signed, but no MessageSid (nothing to de-duplicate on): refused
    no_sid = {k: v for k, v in params.items() if k != "MessageSid"}
    resp = httpx.post(stack.webhook_url, data=no_sid, timeout=60, headers={
        "X-Twilio-Signature": sign(stack.twilio.auth_token, stack.webhook_url, no_sid)})
    assert resp.status_code == 400


@pytest.mark.stack
def test_a_replayed_sms_is_processed_once(stack: Any, sms_patient: tuple[str, str]) -> None:
    _, phone = sms_patient
    params, signature = signed_params(stack, phone, "hello there")
    replies_before = len(stack.twilio.sent_to(phone))
    first = httpx.post(stack.webhook_url, data=params, timeout=60,
                       headers={"X-Twilio-Signature": signature})
    assert first.status_code == 200
    replies = len(stack.twilio.sent_to(phone)) - replies_before
    assert replies >= 1  # the bot answered
    for _ in range(3):  # the same signed request again (a replay, or Twilio retrying)
        again = httpx.post(stack.webhook_url, data=params, timeout=60,
                           headers={"X-Twilio-Signature": signature})
        assert again.status_code == 200
    assert sms_rows(stack, params["MessageSid"]) == 1
    assert len(stack.twilio.sent_to(phone)) - replies_before == replies  # no second answer


@pytest.mark.stack
def test_concurrent_replays_are_processed_once(stack: Any,
                                               sms_patient: tuple[str, str]) -> None:
    _, phone = sms_patient
    params, signature = signed_params(stack, phone, "ok")
    codes: list[int] = []

    def post() -> None:
        codes.append(httpx.post(stack.webhook_url, data=params, timeout=60,
                                headers={"X-Twilio-Signature": signature}).status_code)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 4
    assert sms_rows(stack, params["MessageSid"]) == 1


@pytest.mark.stack
def test_a_replayed_clinician_ack_is_processed_once(stack: Any,
                                                    sms_patient: tuple[str, str]) -> None:
    pid, _ = sms_patient
    nurse = "+14155550166"  # the e2e clinic's on-call nurse (conftest)
    from painpath.escalation import raise_flag

    with new_session(stack.database_url) as session, session.begin():
        eid = raise_flag(session, pid, "urgent", ["test"], text="fever").escalation_id
        code = session.get(Escalation, eid).ack_code  # paged to this nurse
    params, signature = signed_params(stack, nurse, f"ACK {eid} {code}")
    sent_before = len(stack.twilio.sent_to(nurse))
    for _ in range(2):
        resp = httpx.post(stack.webhook_url, data=params, timeout=60,
                          headers={"X-Twilio-Signature": signature})
        assert resp.status_code == 200
    confirmations = [m.body for m in stack.twilio.sent_to(nurse)[sent_before:]
                     if f"Acknowledged alert #{eid}" in m.body]
    assert len(confirmations) == 1  # acknowledged and confirmed once
    assert sms_rows(stack, params["MessageSid"]) == 1
    with new_session(stack.database_url) as session:
        assert session.get(Escalation, eid).status == "acknowledged"


@pytest.mark.stack
@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile_text.filter(lambda t: clean_text(t).strip() != ""))
def test_web_chat_fuzz_through_the_real_assistant(stack: Any, sms_patient: tuple[str, str],
                                                  text: str) -> None:
    """The chat relays to the real Rasa server: whatever is typed gets a 200."""
    pid, _ = sms_patient
    link = stack.cli("chat-link", "--patient", pid).stdout.strip()
    url = link.replace(stack.env["WEB_BASE_URL"], stack.stack.web_url) + "/messages"
    raw = json.dumps({"text": text[:2000]}).encode()
    resp = httpx.post(url, content=raw, timeout=60, headers={"Content-Type": "application/json"})
    no_5xx(resp)
    assert resp.status_code in (200, 422)
