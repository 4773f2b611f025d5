"""Logs never pair a patient id with a tier (security issue, item 11).

A log line "escalation 7 tier=crisis for patient 3f2a…" tells anyone who reads the
logs (operators, log vendors) that this patient is in a suicidal crisis. Log lines
may name the escalation, or the tier, but never the patient together with a tier,
a red flag, a safety question or held outreach (which only an emergency or crisis
causes).
"""
from __future__ import annotations

import ast
import logging
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.escalation import ActionHandleRedFlag
from actions.screens import ActionHoldOutreach
from painpath import crisis, outreach, screening
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll, ensure_clinic
from painpath.escalation import repage_due, resolve
from painpath.messaging import ConsoleGateway, set_gateway
from painpath.models import Clinician, utcnow
from painpath.sms import route_inbound
from painpath.triage import triage

ROOT = Path(__file__).resolve().parents[2]
APP_DIRS = ("painpath", "actions", "web", "scheduler", "bot")
# what says (or implies) how ill a patient is: a tier, a red flag, a safety question
# asked or timed out, outreach held (only an open emergency or crisis holds it)
CLINICAL = re.compile(r"\b(emergency|crisis|urgent|routine|imminent|red[ _-]?flags?|tier"
                      r"|screens?|safety question|held)\b", re.IGNORECASE)
PATIENT = re.compile(r"patient|sender_id", re.IGNORECASE)
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
PHONE = "+14155550931"


def pairs_patient_with_tier(line: str, patient_ids: set[str]) -> bool:
    return any(pid in line for pid in patient_ids) and CLINICAL.search(line) is not None


def log_calls(path: Path) -> Iterator[tuple[int, str]]:
    """(line, source) of every `logger.<level>(…)` / `logging.<level>(…)` call."""
    source = path.read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in LOG_METHODS and isinstance(node.func.value, ast.Name) and \
                node.func.value.id in ("logger", "logging", "log", "LOGGER"):
            yield node.lineno, ast.get_source_segment(source, node) or ""


def test_no_log_call_names_a_patient_next_to_a_tier() -> None:
    planted = 'logger.info("escalation %s tier=%s for patient %s", e.id, tier, patient_id)'
    assert CLINICAL.search(planted) and PATIENT.search(planted)  # the check can fail
    found = [f"{path.relative_to(ROOT)}:{line}: {call}"
             for folder in APP_DIRS for path in sorted((ROOT / folder).rglob("*.py"))
             if ".venv" not in path.parts
             for line, call in log_calls(path)
             if PATIENT.search(call) and CLINICAL.search(call)]
    assert not found, "\n".join(found)


@pytest.fixture
def patient_id(clinic: str) -> str:
    set_gateway(ConsoleGateway())
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone=PHONE, procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:30:00-06:00", name="Lee Quinn")).id


def flag_tracker(patient_id: str, text: str) -> Tracker:
    result = triage(text)
    assert result.tier in ("emergency", "crisis"), (text, result)
    entities = [{"entity": "red_flag_tier", "value": result.tier}] + [
        {"entity": "red_flag_reason", "value": r} for r in result.reasons]
    if result.screen:
        entities.append({"entity": "red_flag_screen", "value": result.screen})
    return Tracker(sender_id=patient_id, slots={"requested_slot": None, "checkin_id": None},
                   latest_message={"text": text, "intent": {"name": "red_flag"},
                                   "entities": entities},
                   events=[], paused=False, followup_action=None, active_loop={},
                   latest_action_name="action_listen")


async def test_a_red_flag_flow_logs_no_patient_id_with_a_tier(
        patient_id: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # a second patient at another clinic
    with new_session() as session, session.begin():
        other = ensure_clinic(session, "other", "Other Clinic", tz_name="America/Chicago")
        session.add(Clinician(clinic_id=other.id, name="Oz", phone="+14155550932",
                              on_call="primary"))
    with new_session() as session, session.begin():
        other_id = enroll(session, EnrollmentRequest(
            clinic_slug="other", phone="+14155550933", procedure="facet_injection",
            procedure_at="2026-11-20T09:30:00-06:00")).id
    ids = {patient_id, other_id}
    # a crisis by SMS, handled by the action as Rasa would run it
    text = "I want to end my life tonight, I have the pills here"
    routed = route_inbound(PHONE, text, "SM" + secrets.token_hex(16))
    assert routed.patient_id == patient_id
    await ActionHandleRedFlag().run(CollectingDispatcher(), flag_tracker(patient_id, text), {})
    with new_session() as session, session.begin():
        outcome = crisis.imminent(session, patient_id, ["plan"], text)
        outreach.hold(session, patient_id, int(outcome.escalation_id or 0), "checkin", 1,
                      "check-in held", utcnow())
    await ActionHoldOutreach().run(CollectingDispatcher(),
                                   flag_tracker(patient_id, text), {})
    # an emergency on another patient, never acknowledged: re-paged, screen times out
    await ActionHandleRedFlag().run(CollectingDispatcher(), flag_tracker(
        other_id, "since lunch I cant feel my legs and I wet myself"), {})
    later = utcnow() + timedelta(hours=3)
    with new_session() as session, session.begin():
        repage_due(session, later)
    screening.expire_due(later)
    with new_session() as session, session.begin():
        nurse = session.query(Clinician).filter_by(phone="+14155550177").one()
        resolve(session, int(outcome.escalation_id or 0), nurse.id, "called_patient")

    lines = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert any("escalation" in line for line in lines)  # the flow did log
    assert pairs_patient_with_tier(f"escalation 1 tier=crisis for patient {patient_id}", ids)
    leaks = [line for line in lines if pairs_patient_with_tier(line, ids)]
    assert not leaks, "\n".join(leaks)
