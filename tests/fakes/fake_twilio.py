"""A fake Twilio REST server on 127.0.0.1 for tests and benchmarks.

The real `twilio` client talks to it through `TWILIO_API_BASE`. It implements
Messages.json create (form-encoded, basic auth), records what it received and
when, and can be told to fail some requests like Twilio does.
"""
from __future__ import annotations

import json
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs

from twilio.request_validator import RequestValidator


@dataclass
class SentSms:
    sid: str
    to: str
    from_: str
    body: str
    received_at: float  # time.monotonic() when the fake got the request
    status_callback: str | None = None


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "fake-auth-token-0123456789abcdef"
    from_number: str = "+14155550000"
    fail_rate: float = 0.0
    opted_out: set[str] = field(default_factory=set)
    messages: list[SentSms] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None

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

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if not self.path.endswith("/Messages.json") or fake.account_sid not in self.path:
                    self._reply(404, {"code": 20404, "message": "not found", "status": 404})
                    return
                if fake.fail_rate and random.random() < fake.fail_rate:
                    self._reply(500, {"code": 20500, "message": "internal error", "status": 500})
                    return
                to = form.get("To", "")
                if to in fake.opted_out:
                    self._reply(400, {"code": 21610, "status": 400,
                                      "message": "Attempt to send to unsubscribed recipient"})
                    return
                sms = SentSms(sid="SM" + secrets.token_hex(16), to=to, from_=form.get("From", ""),
                              body=form.get("Body", ""), received_at=time.monotonic(),
                              status_callback=form.get("StatusCallback"))
                with fake._cond:
                    fake.messages.append(sms)
                    fake._cond.notify_all()
                self._reply(201, {"sid": sms.sid, "status": "queued", "to": sms.to,
                                  "from": sms.from_, "body": sms.body,
                                  "account_sid": fake.account_sid})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        return {"TWILIO_ACCOUNT_SID": self.account_sid, "TWILIO_AUTH_TOKEN": self.auth_token,
                "TWILIO_FROM_NUMBER": self.from_number, "TWILIO_API_BASE": self.url}

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
