"""Clinic admins' protocol pages: each procedure's check-in schedule, safety
questions and pain-diary prompts, edited in a form and saved through
painpath/protocols.py (`save`, `reset`): the same checks and the same rescheduling
of pending check-ins as `painpath protocol load`. Every change is audited.
"""
from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import yaml
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath import protocols
from painpath.content import get_content, parse_offset
from painpath.db import new_session
from painpath.models import Clinic, Protocol
from web.route_helpers import DashboardKit

logger = logging.getLogger(__name__)

SAFETY_ROWS_SPARE = 2  # empty rows offered for new safety questions
MAX_SAFETY_ROWS = 12
SAVED = {"saved": "Protocol saved. Pending check-ins of active enrolments were rescheduled.",
         "reset": "Protocol reset to the default. Pending check-ins were rescheduled."}
FIELD_LABELS = {"checkins": "Check-ins", "diary": "Pain-diary prompts", "spec": "Protocol",
                "safety": "Safety questions"}
_SPLIT = re.compile(r"[\s,;]+")


def offsets_text(keys: list[str]) -> str:
    return ", ".join(keys)


def parse_offsets(text: str) -> list[str]:
    """'1h, 4h 1d;7d' → ['1h', '4h', '1d', '7d'] (checked by painpath/protocols.py)."""
    return [t for t in _SPLIT.split(text.strip()) if t]


def _short(message: str, pid: str) -> str:
    """Drop the 'protocol: <procedure>: ' prefix that the CLI's messages carry."""
    for prefix in (f"protocol: {pid}: ", "protocol: "):
        if message.startswith(prefix):
            message = message[len(prefix):]
            break
    return message[:1].upper() + message[1:]


def safety_choices() -> list[tuple[str, str]]:
    """The yes/no safety questions a protocol may ask, (id, label)."""
    return sorted(((q.id, q.label) for q in get_content().questions.values()
                   if q.is_safety and q.parent is None), key=lambda x: x[1])


def _days(value: Any) -> str:
    if value is None:
        return ""
    return f"{float(value):g}"


def over_cap(checkins: list[str], cap: int) -> str | None:
    """A warning when more regular check-ins fall within the first day than the
    clinic's daily contact cap lets out (the later ones are held back, then missed)."""
    same_day = [k for k in checkins if parse_offset(k) < timedelta(days=1)]
    if len(same_day) <= cap:
        return None
    return (f"{len(same_day)} check-ins ({', '.join(same_day)}) fall within the first day, more "
            f"than the clinic's daily limit of {cap}: the later ones are held back and, once "
            "overdue, marked missed (an early one becomes a nurse task). Diary prompts of "
            "patients who consented to the diary are exempt.")


def protocol_list(session: Session, clinic: Clinic) -> list[dict[str, Any]]:
    """Every procedure's effective protocol for the clinic (own or default)."""
    content = get_content()
    rows = {r.procedure: r for r in session.execute(
        select(Protocol).where(Protocol.clinic_id == clinic.id)).scalars()}
    out = []
    for pid, proc in sorted(content.procedures.items(), key=lambda kv: kv[1].label):
        spec = protocols.effective_spec(session, clinic.id, pid)
        out.append({
            "id": pid, "label": proc.label, "own": pid in rows,
            "updated": rows[pid].updated_at if pid in rows else None,
            "checkins": spec["checkins"], "diary": spec["diary"],
            "safety": [_rule_label(r) for r in spec["safety"]],
            "over_cap": over_cap(spec["checkins"], clinic.daily_contact_cap),
        })
    return out


def _rule_label(rule: dict[str, Any]) -> str:
    q = get_content().questions.get(rule["item"])
    label = q.label if q else rule["item"]
    lo, hi = rule.get("from_day"), rule.get("until_day")
    if lo is not None and hi is not None:
        return f"{label} (days {_days(lo)}–{_days(hi)})"
    if lo is not None:
        return f"{label} (from day {_days(lo)})"
    if hi is not None:
        return f"{label} (until day {_days(hi)})"
    return label


def form_values(spec: dict[str, Any]) -> dict[str, Any]:
    """The edit form's fields for a stored or default spec."""
    rules = [{"item": r["item"], "from_day": _days(r.get("from_day")),
              "until_day": _days(r.get("until_day"))} for r in spec["safety"]]
    rules += [{"item": "", "from_day": "", "until_day": ""}] * SAFETY_ROWS_SPARE
    return {"checkins": offsets_text(spec["checkins"]), "diary": offsets_text(spec["diary"]),
            "safety": rules}


def spec_from_form(checkins: str, diary: str, items: list[str], from_days: list[str],
                   until_days: list[str]) -> tuple[dict[str, Any], dict[str, str], list[int]]:
    """Build a spec from the form. Returns (spec, errors the form itself finds,
    the form row of each safety rule in the spec) — the rest is checked by
    painpath/protocols.py."""
    errors: dict[str, str] = {}
    rules: list[dict[str, Any]] = []
    rows: list[int] = []
    for n, item in enumerate(items[:MAX_SAFETY_ROWS]):
        lo = from_days[n].strip() if n < len(from_days) else ""
        hi = until_days[n].strip() if n < len(until_days) else ""
        if not item.strip():
            if lo or hi:
                errors[f"safety.row{n}"] = "Choose the question for these days, or clear them."
            continue
        rule: dict[str, Any] = {"item": item.strip()}
        for key, raw in (("from_day", lo), ("until_day", hi)):
            if not raw:
                continue
            try:
                rule[key] = float(raw.replace(",", "."))
                if rule[key].is_integer():
                    rule[key] = int(rule[key])
            except ValueError:
                errors[f"safety.row{n}"] = ("Days must be numbers, e.g. 1 or 0.5 (day 0 is "
                                            "the day of the procedure).")
        rules.append(rule)
        rows.append(n)
    spec = {"checkins": parse_offsets(checkins), "safety": rules, "diary": parse_offsets(diary)}
    return spec, errors, rows


def spec_yaml(pid: str, spec: dict[str, Any]) -> str:
    """The protocol as `painpath protocol load` reads it."""
    return yaml.safe_dump({"procedures": {pid: spec}}, sort_keys=False,
                          default_flow_style=None, width=88)


def protocol_routes(router: APIRouter, kit: DashboardKit) -> None:
    """/admin/protocols, /admin/protocols/{procedure} (GET, POST), …/reset (POST)."""

    def clinic_of(session: Session, auth: Any) -> Clinic:
        return session.get(Clinic, auth.clinic_id)

    @router.get("/admin/protocols", response_class=HTMLResponse)
    def protocol_index(request: Request, saved: str = "") -> Response:
        auth, refused = kit.admin(request)
        if refused is not None:
            return refused
        with new_session(kit.db_url) as session:
            clinic = clinic_of(session, auth)
            items = protocol_list(session, clinic)
        return kit.finish(kit.render(request, "dashboard/protocols.html", {
            "auth": auth, "active": "protocols", "protocols": items,
            "saved": SAVED.get(saved)}), auth)

    def edit_page(request: Request, auth: Any, pid: str, values: dict[str, Any] | None = None,
                  errors: dict[str, str] | None = None, saved: str | None = None,
                  status_code: int = 200) -> Response:
        content = get_content()
        with new_session(kit.db_url) as session:
            clinic = clinic_of(session, auth)
            own = protocols.clinic_spec(session, clinic.id, pid) is not None
            spec = protocols.effective_spec(session, clinic.id, pid)
            proc = protocols.effective_procedure(session, clinic.id, pid)
        plan = [{"key": cp.key, "questions": [content.questions[i].label for i in items]}
                for cp, items in content.plan(pid, False, proc)]
        return kit.finish(kit.render(request, "dashboard/protocol_edit.html", {
            "auth": auth, "active": "protocols", "pid": pid,
            "label": content.procedures[pid].label, "own": own,
            "values": values or form_values(spec), "errors": errors or {},
            "field_labels": FIELD_LABELS, "choices": safety_choices(),
            "plan": plan, "yaml": spec_yaml(pid, spec), "saved": SAVED.get(saved or ""),
            "clinic_slug": clinic.slug,
            "over_cap": over_cap(spec["checkins"], clinic.daily_contact_cap),
        }, status_code=status_code), auth)

    def known(pid: str) -> bool:
        return pid in get_content().procedures

    @router.get("/admin/protocols/{pid}", response_class=HTMLResponse)
    def protocol_edit(request: Request, pid: str, saved: str = "") -> Response:
        auth, refused = kit.admin(request)
        if refused is not None:
            return refused
        if not known(pid):
            return kit.not_found(request, auth)
        return edit_page(request, auth, pid, saved=saved)

    @router.post("/admin/protocols/{pid}")
    async def protocol_save(request: Request, pid: str) -> Response:
        form = await request.form()
        token = str(form.get("csrf_token", ""))
        checkins = str(form.get("checkins", ""))[:2000]
        diary = str(form.get("diary", ""))[:2000]
        items = [str(v)[:64] for v in form.getlist("safety_item")]
        from_days = [str(v)[:16] for v in form.getlist("safety_from_day")]
        until_days = [str(v)[:16] for v in form.getlist("safety_until_day")]
        return await _run(save_form, request, pid, token, checkins, diary, items, from_days,
                          until_days)

    def save_form(request: Request, pid: str, token: str, checkins: str, diary: str,
                  items: list[str], from_days: list[str], until_days: list[str]) -> Response:
        auth, refused = kit.admin(request, token)
        if refused is not None:
            return refused
        if not known(pid):
            return kit.not_found(request, auth)
        spec, errors, rows = spec_from_form(checkins, diary, items, from_days, until_days)
        values = {"checkins": checkins, "diary": diary,
                  "safety": [{"item": items[n] if n < len(items) else "",
                              "from_day": from_days[n] if n < len(from_days) else "",
                              "until_day": until_days[n] if n < len(until_days) else ""}
                             for n in range(max(len(items), 1))]}
        # the form's own problems do not hide the protocol's: show them all at once
        problems: dict[str, str] = protocols.check_spec(pid, spec) if errors else {}
        if not errors:
            with new_session(kit.db_url) as session, session.begin():
                clinic = clinic_of(session, auth)
                before = protocols.effective_spec(session, clinic.id, pid)
                try:
                    result = protocols.save(session, clinic.slug, pid, spec)
                except protocols.ProtocolError as exc:
                    session.rollback()
                    problems = exc.problems or {"spec": str(exc)}
                else:
                    kit.audit(session, auth, "protocol_change", None,
                              f"{pid}: {_describe(result['spec'])} (was {_describe(before)}); "
                              f"{result['rescheduled_enrollments']} active enrolment(s) "
                              "rescheduled")
        for field, message in problems.items():
            if field.startswith("safety."):  # safety.N counts the rules sent, from 1
                n = int(field.split(".")[1]) - 1
                field = f"safety.row{rows[n]}" if n < len(rows) else "safety"
            errors.setdefault(field, _short(message, pid))
        if errors:
            return edit_page(request, auth, pid, values, errors, status_code=422)
        return kit.finish(RedirectResponse(f"/admin/protocols/{pid}?saved=saved",
                                           status_code=303), auth)

    @router.post("/admin/protocols/{pid}/reset")
    def protocol_reset(request: Request, pid: str, csrf_token: str = Form("")) -> Response:
        auth, refused = kit.admin(request, csrf_token)
        if refused is not None:
            return refused
        if not known(pid):
            return kit.not_found(request, auth)
        with new_session(kit.db_url) as session, session.begin():
            clinic = clinic_of(session, auth)
            before = protocols.effective_spec(session, clinic.id, pid)
            result = protocols.reset(session, clinic.slug, pid)
            kit.audit(session, auth, "protocol_reset", None,
                      f"{pid}: back to the default (was {_describe(before)}); "
                      f"{result['rescheduled_enrollments']} active enrolment(s) rescheduled")
        return kit.finish(RedirectResponse(f"/admin/protocols/{pid}?saved=reset",
                                           status_code=303), auth)


async def _run(fn: Any, *args: Any) -> Response:
    """Blocking database work off the event loop (the form is read asynchronously)."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def _describe(spec: dict[str, Any]) -> str:
    safety = ", ".join(
        r["item"] + (f" {_days(r.get('from_day')) or '0'}-{_days(r.get('until_day')) or 'end'}"
                     if r.get("from_day") is not None or r.get("until_day") is not None else "")
        for r in spec.get("safety", []))
    return (f"check-ins {offsets_text(spec.get('checkins', []))}; safety {safety or 'none'}; "
            f"diary {offsets_text(spec.get('diary', [])) or 'none'}")
