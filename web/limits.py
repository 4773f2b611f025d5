"""Request body limits for the web app (an ASGI middleware).

Every request body is capped before any route reads it: by its declared
Content-Length at once, and while it streams for chunked bodies, so an oversized
body is answered with 413 and never buffered whole. The cap depends on the path
(the chat takes one message of at most 2,000 characters; the dashboard's forms
are small; Twilio's callbacks are a few hundred bytes).

A URL-encoded form carrying a NUL character (``%00`` or a raw NUL byte) is refused
with 400: no browser form or Twilio callback sends one, and PostgreSQL cannot store
it in text (a note or a name with one would fail with a 500 there and pass on SQLite).
"""
from __future__ import annotations

import logging
import re
from typing import Any, Awaitable, Callable

from starlette.exceptions import HTTPException

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KB = 1024
DEFAULT_LIMIT = 1024 * KB
# (path prefix, limit): the first match wins
PATH_LIMITS: tuple[tuple[str, int], ...] = (
    ("/chat/", 32 * KB),  # 2,000 characters, even as JSON \\uXXXX escapes
    ("/twilio/", 64 * KB),
    ("/login", 16 * KB),
)


class NulInForm(HTTPException):
    """Raised from `receive` when a URL-encoded body carries a NUL."""

    def __init__(self) -> None:
        super().__init__(status_code=400, detail="NUL character in form")


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes its limit; an HTTPException
    so that FastAPI's body parsing passes it on as a 413 (not a 400)."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="payload too large")


def limit_for(path: str) -> int:
    """The body limit in bytes for a request to `path`."""
    for prefix, limit in PATH_LIMITS:
        if path.startswith(prefix):
            return limit
    return DEFAULT_LIMIT


async def _refuse(send: Send, status: int = 413, body: bytes = b"payload too large") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Refuse request bodies over `limit_for(path)` bytes with 413."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope.get("path", ""))
        form = False
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                form = value.split(b";")[0].strip().lower() == b"application/x-www-form-urlencoded"
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    logger.warning("refused %s %s: body of %s bytes over %d", scope.get("method"),
                                   _route(scope), value.decode("latin-1")[:20], limit)
                    await _refuse(send)
                    return
        received = 0
        started = False
        tail = b""  # the end of the previous chunk: a "%00" can straddle two

        async def capped_receive() -> Message:
            nonlocal received, tail
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    raise BodyTooLarge()
                if form:
                    seen = tail + chunk
                    if b"%00" in seen or b"\x00" in seen:
                        raise NulInForm()
                    tail = seen[-2:]
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge:
            logger.warning("refused %s %s: streamed body over %d bytes", scope.get("method"),
                           _route(scope), limit)
            if not started:
                await _refuse(send)
        except NulInForm:
            logger.warning("refused %s %s: NUL in a form", scope.get("method"), _route(scope))
            if not started:
                await _refuse(send, 400, b"bad request")


_TOKEN = re.compile(r"/chat/[^/?\s]+")


def _route(scope: Scope) -> str:
    """The path for a log line, without a chat link's token (a credential)."""
    return _TOKEN.sub("/chat/<token>", str(scope.get("path", "")))
