"""`POST /twilio/status`: Twilio delivery-status callbacks, signature-validated.

Hostile input: a body over 64 KB is refused with 413 without being buffered,
a body that is not UTF-8 form data with 400, a bad signature with 403; a signed
callback whose SID, status or error code is not one Twilio sends is ignored
(204, logged) so that nothing malformed reaches a column.
"""
from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from painpath.inbound import ERROR_CODE, MESSAGE_STATUSES, parse_form, valid_message_sid
from painpath.messaging import apply_status_callback
from painpath.settings import Settings

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def status_router(settings: Settings) -> APIRouter:
    router = APIRouter()

    @router.post("/twilio/status")
    async def twilio_status(request: Request) -> Response:
        body = await read_capped(request, MAX_BODY_BYTES)
        if body is None:
            return Response("payload too large", status_code=413)
        try:
            form = parse_form(body)
        except ValueError:
            return Response("bad request", status_code=400)
        signature = request.headers.get("X-Twilio-Signature", "")
        token = settings.twilio_auth_token
        url = settings.public_base_url + "/twilio/status"
        if not token or not signature or not RequestValidator(token).validate(url, form, signature):
            logger.warning("rejected Twilio status callback: bad or missing signature")
            return Response("forbidden", status_code=403)
        sid, status = form.get("MessageSid"), form.get("MessageStatus")
        error_code = form.get("ErrorCode") or None
        if not valid_message_sid(sid) or status not in MESSAGE_STATUSES or (
                error_code is not None and not ERROR_CODE.fullmatch(error_code)):
            logger.warning("ignored signed Twilio status callback with malformed fields")
            return Response(status_code=204)
        await run_in_threadpool(apply_status_callback, settings.database_url, sid, status,
                                error_code)
        return Response(status_code=204)

    return router
