"""`POST /twilio/status`: Twilio delivery-status callbacks, signature-validated."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from painpath.messaging import apply_status_callback
from painpath.settings import Settings

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def status_router(settings: Settings) -> APIRouter:
    router = APIRouter()

    @router.post("/twilio/status")
    async def twilio_status(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return Response("payload too large", status_code=413)
        form = {k: str(v) for k, v in (await request.form()).items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        token = settings.twilio_auth_token
        url = settings.public_base_url + "/twilio/status"
        if not token or not signature or not RequestValidator(token).validate(url, form, signature):
            logger.warning("rejected Twilio status callback: bad or missing signature")
            return Response("forbidden", status_code=403)
        sid, status = form.get("MessageSid"), form.get("MessageStatus")
        if sid and status:
            await run_in_threadpool(apply_status_callback, settings.database_url, sid, status,
                                    form.get("ErrorCode"))
        return Response(status_code=204)

    return router
