"""Request body limits for the web app (an ASGI middleware).

Every request body is capped before any route reads it: by its declared
Content-Length at once, and while it streams for chunked bodies, so an oversized
body is answered with 413 and never buffered whole. The cap depends on the path
(the chat takes one message of at most 2,000 characters; the dashboard's forms
are small; Twilio's callbacks are a few hundred bytes).
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


async def _refuse(send: Send) -> None:
    body = b"payload too large"
    await send({"type": "http.response.start", "status": 413,
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
        for name, value in scope.get("headers", []):
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

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
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


_TOKEN = re.compile(r"/chat/[^/?\s]+")


def _route(scope: Scope) -> str:
    """The path for a log line, without a chat link's token (a credential)."""
    return _TOKEN.sub("/chat/<token>", str(scope.get("path", "")))
