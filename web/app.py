"""The PainPath web app: health check and the patient web chat.

Build it with :func:`create_app` (``uvicorn web.app:create_app --factory``);
nothing is created at import time so that importing this module never reads
the environment or opens a database.

The patient web chat lives under ``/chat/{token}`` where ``token`` is a signed,
expiring, revocable chat link (:mod:`painpath.weblink`). The page posts the patient's
messages here; they are stored and forwarded to Rasa's REST channel with the
patient id as the conversation id (the same conversation as their SMS), and the
bot's replies are stored and returned. The page also polls for new messages so
that conversations the clinic starts (a scheduled check-in) appear.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from sqlalchemy import and_, or_, select
from starlette.concurrency import run_in_threadpool

from painpath.crisis import with_safety_numbers
from painpath.db import new_session
from painpath.inbound import clean_text
from painpath.logsafety import install_phone_redaction
from painpath.models import Clinic, Enrollment, Message, Patient
from painpath.settings import Settings, get_settings
from painpath.webhook_auth import PURPOSE as WEB_TO_RASA
from painpath.webhook_auth import signed_headers
from painpath.weblink import InvalidChatLink, patient_for_token
from web.dashboard import dashboard_router
from web.limits import ASGIApp, BodySizeLimit, Receive, Scope, Send
from web.twilio_status import status_router

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

MAX_MESSAGE_CHARS = 2000
MAX_MESSAGE_ID = 2**62  # `after` beyond any id (and within a 64-bit column)
RASA_TIMEOUT_SECONDS = 30.0

# The chat link is a credential: keep it out of other sites' Referer headers,
# out of caches and out of frames; the page loads only its own script and style.
CHAT_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
}

LINK_ERRORS = {
    "invalid": (403, "This chat link is not valid."),
    "expired": (410, "This chat link has expired."),
    "revoked": (410, "This chat link no longer works."),
}


class ChatMessageIn(BaseModel):
    """Body of ``POST /chat/{token}/messages``."""

    text: str


class RasaUnavailable(Exception):
    """Rasa could not be reached or answered with an error."""


# --------------------------------------------------------------------------- #
# Database helpers (blocking; called through run_in_threadpool)
# --------------------------------------------------------------------------- #


def _message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "direction": message.direction,
        "body": message.body,
        "created_at": message.created_at.isoformat() if message.created_at else None,
    }


def _load_patient(settings: Settings, token: str) -> tuple[Patient, Clinic | None]:
    """The patient whose current chat link `token` is, and their clinic.

    Raises:
        InvalidChatLink: a bad, expired or revoked link.
    """
    with new_session(settings.database_url) as session:
        patient = patient_for_token(session, token, settings)
        clinic = session.get(Clinic, patient.clinic_id)
        session.expunge_all()
        return patient, clinic


def _patient_messages(database_url: str, patient: Patient, after: int = 0) -> list[dict[str, Any]]:
    """The patient's own conversation (web and SMS) with id > `after`, oldest first.

    Messages about the patient sent to or from clinicians (escalation alerts,
    a nurse's SMS replies) share the patient id and are never shown here.
    """
    conversation = and_(
        Message.patient_id == patient.id,
        Message.clinician_id.is_(None),
        or_(
            Message.channel == "web",
            and_(Message.channel == "sms", Message.direction == "in",
                 Message.from_ == patient.phone),
            and_(Message.channel == "sms", Message.direction == "out",
                 Message.to == patient.phone),
        ),
    )
    with new_session(database_url) as session:
        rows = session.execute(
            select(Message).where(conversation, Message.id > after).order_by(Message.id)
        ).scalars().all()
        return [_message_json(m) for m in rows]


def _store_inbound(database_url: str, patient_id: str, text: str) -> dict[str, Any]:
    with new_session(database_url) as session, session.begin():
        message = Message(
            patient_id=patient_id, direction="in", channel="web", from_="web", to="bot",
            body=text, status="received",
        )
        session.add(message)
        session.flush()
        return _message_json(message)


def _store_replies(database_url: str, patient_id: str, bodies: list[str]) -> list[dict[str, Any]]:
    if not bodies:
        return []
    with new_session(database_url) as session, session.begin():
        bodies = with_safety_numbers(session, patient_id, bodies)  # while a crisis is open
        messages = [
            Message(patient_id=patient_id, direction="out", channel="web", from_="bot",
                    to="web", body=body, status="delivered")
            for body in bodies
        ]
        session.add_all(messages)
        session.flush()
        return [_message_json(m) for m in messages]


# --------------------------------------------------------------------------- #
# Rasa
# --------------------------------------------------------------------------- #


def _reply_body(reply: dict[str, Any]) -> str | None:
    """The text a patient sees for one REST-channel reply (buttons as a list)."""
    parts: list[str] = []
    text = reply.get("text")
    if isinstance(text, str) and text.strip():
        parts.append(text)
    buttons = reply.get("buttons")
    if isinstance(buttons, list):
        titles = [b.get("title") for b in buttons if isinstance(b, dict)]
        parts.extend(f"• {t}" for t in titles if isinstance(t, str) and t)
    return "\n".join(parts) if parts else None


def _triage_metadata(database_url: str, patient_id: str) -> dict[str, Any]:
    """The triage metadata of the patient's active enrolment: its procedure and the
    patient's own glucose limit (CLINICAL.md §1.0)."""
    with new_session(database_url) as session:
        row = session.execute(
            select(Enrollment.procedure, Enrollment.glucose_limit_mg_dl)
            .where(Enrollment.patient_id == patient_id, Enrollment.status == "active")
            .order_by(Enrollment.id.desc())
        ).first()
    if row is None:
        return {"procedure": None}
    return {"procedure": row[0], "glucose_limit_mg_dl": row[1]}


async def _ask_rasa(settings: Settings, patient_id: str, text: str) -> list[str]:
    """Send the patient's text to Rasa's web-chat channel, signed (timestamp, nonce,
    body) with the web-to-Rasa key: Rasa refuses a replay (painpath/webhook_auth.py)."""
    url = f"{settings.rasa_url}/webhooks/web/webhook"
    metadata = await run_in_threadpool(_triage_metadata, settings.database_url, patient_id)
    body = json.dumps({"sender": patient_id, "message": text,
                       "metadata": metadata}).encode()
    headers = {"Content-Type": "application/json",
               **signed_headers(body, settings.key_for(WEB_TO_RASA))}
    try:
        async with httpx.AsyncClient(timeout=RASA_TIMEOUT_SECONDS) as client:
            response = await client.post(url, content=body, headers=headers)
            response.raise_for_status()
            replies = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise RasaUnavailable(type(exc).__name__) from exc
    if not isinstance(replies, list):
        raise RasaUnavailable("unexpected response")
    bodies = [_reply_body(r) for r in replies if isinstance(r, dict)]
    return [b for b in bodies if b]


# --------------------------------------------------------------------------- #
# Routes
# --------------------------------------------------------------------------- #


def _chat_router(settings: Settings, templates: Jinja2Templates) -> APIRouter:
    router = APIRouter()
    db_url = settings.database_url

    async def resolve(token: str) -> tuple[Patient, Clinic | None]:
        """The patient behind `token` (InvalidChatLink otherwise)."""
        return await run_in_threadpool(_load_patient, settings, token)

    def link_error_json(exc: InvalidChatLink) -> JSONResponse:
        status, text = LINK_ERRORS[exc.reason]
        return JSONResponse(
            {"error": f"{text} Please use the latest link from your clinic's text message.",
             "reason": exc.reason},
            status_code=status, headers=CHAT_SECURITY_HEADERS,
        )

    @router.get("/chat/{token}", response_class=HTMLResponse)
    async def chat_page(request: Request, token: str) -> Response:
        try:
            patient, clinic = await resolve(token)
        except InvalidChatLink as exc:
            status, headline = LINK_ERRORS[exc.reason]
            return templates.TemplateResponse(
                request, "error.html",
                {"headline": headline, "reason": exc.reason,
                 "emergency_number": settings.emergency_number,
                 "crisis_line": settings.crisis_line},
                status_code=status, headers=CHAT_SECURITY_HEADERS,
            )
        history = await run_in_threadpool(_patient_messages, db_url, patient)
        emergency = (clinic.emergency_number if clinic and clinic.emergency_number
                     else settings.emergency_number)
        return templates.TemplateResponse(
            request, "chat.html",
            {
                "clinic_name": clinic.name if clinic else "Your clinic",
                "clinic_phone": clinic.phone if clinic else None,
                "messages": history,
                "last_id": history[-1]["id"] if history else 0,
                "messages_url": f"/chat/{token}/messages",
                "emergency_number": emergency,
                "crisis_line": settings.crisis_line,
                "max_chars": MAX_MESSAGE_CHARS,
            },
            headers=CHAT_SECURITY_HEADERS,
        )

    @router.post("/chat/{token}/messages")
    async def post_message(token: str, payload: ChatMessageIn) -> Response:
        try:
            patient, _clinic = await resolve(token)
        except InvalidChatLink as exc:
            return link_error_json(exc)
        text = clean_text(payload.text).strip()  # no NUL, no lone surrogates
        if not text:
            return JSONResponse({"error": "Please type a message first."}, status_code=422,
                                headers=CHAT_SECURITY_HEADERS)
        if len(text) > MAX_MESSAGE_CHARS:
            return JSONResponse(
                {"error": f"That message is too long. Please keep it under "
                          f"{MAX_MESSAGE_CHARS} characters."},
                status_code=422, headers=CHAT_SECURITY_HEADERS,
            )
        inbound = await run_in_threadpool(_store_inbound, db_url, patient.id, text)
        try:
            bodies = await _ask_rasa(settings, patient.id, text)
        except RasaUnavailable as exc:
            logger.warning("web chat: Rasa unavailable for patient %s (%s); message %s kept",
                           patient.id, exc, inbound["id"])
            return JSONResponse(
                {
                    "error": (
                        "Sorry, the assistant isn't available right now. Your message was "
                        "saved and the clinic can see it. If this is an emergency, call "
                        f"{settings.emergency_number}."
                    ),
                    "messages": [inbound],
                },
                status_code=503, headers=CHAT_SECURITY_HEADERS,
            )
        replies = await run_in_threadpool(_store_replies, db_url, patient.id, bodies)
        return JSONResponse({"messages": [inbound, *replies]}, headers=CHAT_SECURITY_HEADERS)

    @router.get("/chat/{token}/messages")
    async def poll_messages(token: str, after: int = 0) -> Response:
        try:
            patient, _clinic = await resolve(token)
        except InvalidChatLink as exc:
            return link_error_json(exc)
        after = min(max(after, 0), MAX_MESSAGE_ID)
        messages = await run_in_threadpool(_patient_messages, db_url, patient, after)
        return JSONResponse({"messages": messages}, headers=CHAT_SECURITY_HEADERS)

    return router


HSTS_HEADER = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class StrictTransportSecurity:
    """Add `Strict-Transport-Security` to every response served over https: when the
    request came over https (uvicorn sets the scheme from X-Forwarded-Proto for a
    trusted proxy) or the deployment's WEB_BASE_URL is https. A browser that once saw
    it never again sends the session cookie or a chat link over plain http."""

    def __init__(self, app: ASGIApp, always: bool) -> None:
        self.app = app
        self.always = always

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (self.always or scope.get("scheme") == "https"):
            await self.app(scope, receive, send)
            return

        async def with_hsts(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != HSTS_HEADER[0]]
                message = {**message, "headers": [*headers, HSTS_HEADER]}
            await send(message)

        await self.app(scope, receive, with_hsts)


class _RedactChatTokens(logging.Filter):
    """Keep chat-link tokens out of the access log (a token is a credential)."""

    _pattern = re.compile(r"/chat/[^/?\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._pattern.sub("/chat/<token>", a) if isinstance(a, str) else a
                for a in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = self._pattern.sub("/chat/<token>", record.msg)
        return True


def _install_access_log_redaction() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactChatTokens) for f in access.filters):
        access.addFilter(_RedactChatTokens())


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the web app for `settings` (default: from the environment)."""
    settings = settings or get_settings()
    app = FastAPI(title="PainPath", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    app.state.templates = templates
    _install_access_log_redaction()
    install_phone_redaction()  # third-party error text can name a number
    app.add_middleware(BodySizeLimit)  # 413 before any route reads an oversized body
    app.add_middleware(StrictTransportSecurity,
                       always=settings.web_base_url.lower().startswith("https://"))

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.include_router(_chat_router(settings, templates))
    app.include_router(status_router(settings))
    app.include_router(dashboard_router(settings))  # signs its session cookie with secret_key

    if settings.run_scheduler:  # `make run`: the web app process also owns the scheduler
        from scheduler.service import build_scheduler

        scheduler = build_scheduler(settings.database_url)
        app.add_event_handler("startup", scheduler.start)
        app.add_event_handler("shutdown", lambda: scheduler.shutdown(wait=False))
    return app
