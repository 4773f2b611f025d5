"""A fake Twilio REST server on 127.0.0.1 for tests and benchmarks.

The real `twilio` client talks to it through `TWILIO_API_BASE`. It implements
Messages.json create (form-encoded, basic auth) and list (GET, filtered by To and
From, newest first, as the dispatcher's crash reconciliation reads it), records what
it received and when, and can be told to fail some requests like Twilio does or to
answer slowly (`latency`, `slow_numbers`, `latency_fn`).
"""
from __future__ import annotations

import json
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator


@dataclass
class SentSms:
    sid: str
    to: str
    from_: str
    body: str
    received_at: float  # time.monotonic() when the fake got the request
    status_callback: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "fake-auth-token-0123456789abcdef"
    from_number: str = "+14155550000"
    fail_rate: float = 0.0
    opted_out: set[str] = field(default_factory=set)
    messages: list[SentSms] = field(default_factory=list)
    latency: float = 0.0  # seconds every create waits before answering
    slow_numbers: dict[str, float] = field(default_factory=dict)  # To → extra seconds
    latency_fn: Callable[[str], float] | None = None  # To → extra seconds (e.g. random)
    fail_numbers: set[str] = field(default_factory=set)  # To → always 500
    drop_after_accept: int = 0  # accept the next N, then drop the connection (no reply)
    # a share of creates that time out: the fake holds the request `timeout_seconds`
    # (longer than the client waits) and then drops it; with `timeout_accepts` odds it
    # had accepted the message anyway, as a slow Twilio may. Drawn with `fail_rate`
    # from one roll, so fail_rate 0.3 + timeout_rate 0.1 fail 30 % and time out 10 %.
    timeout_rate: float = 0.0
    timeout_seconds: float = 12.0
    timeout_accepts: float = 0.5

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._by_to: dict[str, list[SentSms]] = {}
        self.list_requests = 0
        self.failed_requests = 0  # answered 500 by fail_rate
        self.timed_out_requests = 0  # held and dropped by timeout_rate

    # --- server -----------------------------------------------------------------------------
    def start(self) -> "FakeTwilio":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                return

            def _reply(self, code: int, payload: dict) -> None:  # type: ignore[type-arg]
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                if not parts.path.endswith("/Messages.json") or fake.account_sid not in parts.path:
                    self._reply(404, {"code": 20404, "message": "not found", "status": 404})
                    return
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                size = int(query.get("PageSize", "50"))
                with fake._lock:
                    fake.list_requests += 1
                    pool = fake._by_to.get(query["To"], []) if "To" in query else fake.messages
                    found = [m for m in reversed(pool)
                             if "From" not in query or m.from_ == query["From"]][:size]
                self._reply(200, {"messages": [fake._resource(m) for m in found],
                                  "next_page_uri": None, "previous_page_uri": None,
                                  "first_page_uri": parts.path, "uri": self.path,
                                  "page": 0, "page_size": size, "start": 0,
                                  "end": max(0, len(found) - 1)})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if not self.path.endswith("/Messages.json") or fake.account_sid not in self.path:
                    self._reply(404, {"code": 20404, "message": "not found", "status": 404})
                    return
                to = form.get("To", "")
                delay = fake.latency + fake.slow_numbers.get(to, 0.0) + (
                    fake.latency_fn(to) if fake.latency_fn else 0.0)
                if delay > 0:
                    time.sleep(delay)
                roll = random.random()
                if roll < fake.timeout_rate:
                    with fake._lock:
                        fake.timed_out_requests += 1
                    if random.random() < fake.timeout_accepts:
                        fake._accept(to, form)
                    time.sleep(fake.timeout_seconds)  # the sender has given up by now
                    self.close_connection = True
                    return
                if (fake.fail_rate and fake.timeout_rate <= roll < fake.timeout_rate + fake.fail_rate) \
                        or to in fake.fail_numbers:
                    with fake._lock:
                        fake.failed_requests += fake.fail_rate > 0
                    self._reply(500, {"code": 20500, "message": "internal error", "status": 500})
                    return
                if to in fake.opted_out:
                    self._reply(400, {"code": 21610, "status": 400,
                                      "message": "Attempt to send to unsubscribed recipient"})
                    return
                sms = SentSms(sid="SM" + secrets.token_hex(16), to=to, from_=form.get("From", ""),
                              body=form.get("Body", ""), received_at=time.monotonic(),
                              status_callback=form.get("StatusCallback"))
                with fake._cond:
                    fake.messages.append(sms)
                    fake._by_to.setdefault(sms.to, []).append(sms)
                    fake._cond.notify_all()
                    drop = fake.drop_after_accept > 0
                    if drop:
                        fake.drop_after_accept -= 1
                if drop:  # accepted, but the sender never hears back (e.g. it crashed)
                    self.close_connection = True
                    return
                self._reply(201, fake._resource(sms))

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # many senders at once (the default backlog is 5)

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def _accept(self, to: str, form: dict[str, str]) -> SentSms:
        """Record a message as accepted (what a successful create does)."""
        sms = SentSms(sid="SM" + secrets.token_hex(16), to=to, from_=form.get("From", ""),
                      body=form.get("Body", ""), received_at=time.monotonic(),
                      status_callback=form.get("StatusCallback"))
        with self._cond:
            self.messages.append(sms)
            self._by_to.setdefault(sms.to, []).append(sms)
            self._cond.notify_all()
        return sms

    def _resource(self, sms: SentSms) -> dict:  # type: ignore[type-arg]
        return {"sid": sms.sid, "status": "queued", "to": sms.to, "from": sms.from_,
                "body": sms.body, "account_sid": self.account_sid,
                "date_created": format_datetime(sms.created_at)}

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Twilio's variables for a PainPath process, with the two base URLs that a
        process with Twilio configured refuses to start without (loopback placeholders:
        a test that receives webhooks or follows links sets its own after these)."""
        return {"TWILIO_ACCOUNT_SID": self.account_sid, "TWILIO_AUTH_TOKEN": self.auth_token,
                "TWILIO_FROM_NUMBER": self.from_number, "TWILIO_API_BASE": self.url,
                "PUBLIC_BASE_URL": "http://127.0.0.1:9", "WEB_BASE_URL": "http://127.0.0.1:9"}

    # --- inspection ---------------------------------------------------------------------------
    def sent_to(self, number: str) -> list[SentSms]:
        with self._lock:
            return [m for m in self.messages if m.to == number]

    def wait_for(self, predicate: Callable[[list[SentSms]], bool], timeout: float = 20.0) -> list[SentSms]:
        """Wait until `predicate(messages)` holds; returns the messages (raises on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.messages)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake Twilio: condition not met; got {len(self.messages)} SMS")
                self._cond.wait(left)
            return list(self.messages)

    def wait_for_count(self, number: str, count: int, timeout: float = 20.0) -> list[SentSms]:
        self.wait_for(lambda msgs: sum(1 for m in msgs if m.to == number) >= count, timeout)
        return self.sent_to(number)


def sign(auth_token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature for a POST of `params` to `url` (Twilio's own algorithm)."""
    return RequestValidator(auth_token).compute_signature(url, params)
