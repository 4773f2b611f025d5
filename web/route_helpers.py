"""What dashboard pages in other modules share with web.dashboard's router.

`web.dashboard.dashboard_router` builds the session, CSRF and rendering helpers
(closures over its settings) and hands them to `mount_extensions`, which adds the
enrolment pages (web/enroll.py) and the clinic admin's protocol pages
(web/admin_protocols.py) to the same router: one login, one CSRF token, one set of
security headers and one audit log for every dashboard page.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from web.dashboard import Authed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DashboardKit:
    """The dashboard router's helpers (see web/dashboard.py for each one's contract)."""

    db_url: str
    authenticate: Callable[[Request], "Authed | None"]
    render: Callable[..., Response]  # (request, template, context, status_code=200)
    finish: Callable[..., Response]  # (response, auth, activity=True)
    to_login: Callable[[Request], Response]
    csrf_ok: Callable[["Authed", str], bool]
    forbidden: Callable[[Request, "Authed | None"], Response]
    not_found: Callable[[Request, "Authed"], Response]
    audit: Callable[..., None]  # (session, auth, action, patient_id=None, detail=None)
    # (request, patient_id, error=None, status_code=200, extra=None)
    patient_page: Callable[..., Response]
    now: Callable[[], datetime]

    def signed_in(self, request: Request, csrf_token: str | None = None
                  ) -> tuple["Authed | None", Response | None]:
        """The signed-in clinician (nurse or admin), or the response refusing the
        request: to the login page, or 403 for a form post with a wrong CSRF token."""
        auth = self.authenticate(request)
        if auth is None:
            return None, self.to_login(request)
        if csrf_token is not None and not self.csrf_ok(auth, csrf_token):
            return auth, self.forbidden(request, auth)
        return auth, None

    def admin(self, request: Request, csrf_token: str | None = None
              ) -> tuple["Authed | None", Response | None]:
        """`signed_in`, and only a clinic admin (403 for a nurse)."""
        auth, refused = self.signed_in(request, None)
        if refused is not None or auth is None:
            return auth, refused
        if auth.role != "admin":
            return auth, self.finish(self.render(
                request, "dashboard/error.html",
                {"auth": auth, "title": "Clinic admins only",
                 "message": "Only a clinic admin can see or change the clinic's check-in "
                            "protocols."}, status_code=403), auth)
        if csrf_token is not None and not self.csrf_ok(auth, csrf_token):
            return auth, self.forbidden(request, auth)
        return auth, None


def mount_extensions(router: APIRouter, kit: DashboardKit) -> None:
    """Add the enrolment and protocol pages to the dashboard's router."""
    from web.admin_protocols import protocol_routes
    from web.enroll import enroll_routes

    enroll_routes(router, kit)
    protocol_routes(router, kit)


def patient_extras(session: Session, auth: "Authed", patient: Any,
                   now: datetime) -> dict[str, Any]:
    """Extra context for the patient page: the enrolment panel and the pain diary."""
    from web.enroll import enrollment_panel

    return enrollment_panel(session, auth, patient, now)
