"""The `painpath` command line (contract in DESIGN.md). `--json` makes any command print JSON."""
from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from typing import Any, Callable

from sqlalchemy import select

from painpath.db import new_session
from painpath.settings import ConfigError, get_settings

logger = logging.getLogger(__name__)


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def _emit(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, default=str))
    else:
        print(text if text is not None else data)


# --- commands -------------------------------------------------------------------------------

def cmd_migrate(args: argparse.Namespace) -> None:
    from painpath.migrate import upgrade

    upgrade(get_settings().database_url)
    _emit(args, {"migrated": True}, "database is up to date")


def cmd_enroll(args: argparse.Namespace) -> None:
    from painpath.enrollment import EnrollmentError, EnrollmentRequest, enroll

    req = EnrollmentRequest(clinic_slug=args.clinic, phone=args.phone, procedure=args.procedure,
                            procedure_at=args.procedure_at, timezone=args.timezone,
                            name=args.name, channel=args.channel,
                            baseline_pain=args.baseline_pain,
                            diary_consent=args.diary_consent,
                            diary_night_consent=args.diary_night_consent,
                            pump_drug=args.pump_drug, pump_refill_due=args.pump_refill_due,
                            diabetic=args.diabetic, glucose_limit_mg_dl=args.glucose_limit)
    try:
        with new_session() as session, session.begin():
            patient = enroll(session, req)
            patient_id = patient.id
    except EnrollmentError as exc:
        raise CliError(str(exc)) from None
    _emit(args, {"id": patient_id}, patient_id)


def cmd_import_csv(args: argparse.Namespace) -> None:
    from painpath.enrollment import EnrollmentError, import_csv

    try:
        text = open(args.file, encoding="utf-8-sig").read()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        report = import_csv(text, args.clinic, new_session)
    except EnrollmentError as exc:
        raise CliError(str(exc)) from None
    lines = [f"enrolled {len(report['enrolled'])}, errors {len(report['errors'])}"]
    lines += [f"  row {e['row']}: {e['error']}" for e in report["errors"]]
    _emit(args, report, "\n".join(lines))
    if report["errors"]:
        raise SystemExit(1)


def cmd_clinician_add(args: argparse.Namespace) -> None:
    from painpath.enrollment import EnrollmentError, get_clinic
    from painpath.models import Clinician
    from painpath.phone import InvalidPhone, normalize

    try:
        phone = normalize(args.phone)
    except InvalidPhone as exc:
        raise CliError(str(exc)) from None
    password_hash = None
    if args.username:
        password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() \
            else getpass.getpass("Password: ")
        if len(password) < 10:
            raise CliError("password must be at least 10 characters")
        from argon2 import PasswordHasher

        password_hash = PasswordHasher().hash(password)
    try:
        with new_session() as session, session.begin():
            clinic = get_clinic(session, args.clinic)
            if args.on_call:  # one primary and one backup per clinic
                for other in session.execute(select(Clinician).where(
                        Clinician.clinic_id == clinic.id, Clinician.on_call == args.on_call)
                ).scalars():
                    other.on_call = None
            start, end = _hours(args.on_call_hours)
            clinician = Clinician(clinic_id=clinic.id, name=args.name, phone=phone,
                                  role=args.role, on_call=args.on_call, username=args.username,
                                  password_hash=password_hash, on_call_start=start,
                                  on_call_end=end)
            session.add(clinician)
            session.flush()
            clinician_id = clinician.id
    except EnrollmentError as exc:
        raise CliError(str(exc)) from None
    _emit(args, {"id": clinician_id}, str(clinician_id))


def _hours(text: str | None) -> tuple[str | None, str | None]:
    """'08:00-18:00' → ('08:00', '18:00'); None → (None, None)."""
    if not text:
        return None, None
    import re

    m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)", text.strip())
    if not m:
        raise CliError("hours must look like 08:00-18:00")
    return f"{m.group(1)}:{m.group(2)}", f"{m.group(3)}:{m.group(4)}"


def cmd_clinic_set(args: argparse.Namespace) -> None:
    from painpath.contact import check_out_of_hours
    from painpath.enrollment import EnrollmentError, get_clinic
    from painpath.phone import InvalidPhone, normalize
    from painpath.senders import SmsNumberError, set_sms_number

    try:
        with new_session() as session, session.begin():
            clinic = get_clinic(session, args.clinic)
            if args.sms_number is not None:
                try:
                    set_sms_number(session, clinic, args.sms_number)
                except SmsNumberError as exc:
                    raise CliError(f"--sms-number: {exc}") from None
            for name in ("ack_minutes_emergency", "ack_minutes_urgent"):
                value = getattr(args, name)
                if value is not None:
                    if not 1 <= value <= 240:
                        raise CliError(f"--{name.replace('_', '-')} must be 1-240 minutes")
                    setattr(clinic, name, value)
            if args.fallback_phone is not None:
                clinic.fallback_phone = normalize(args.fallback_phone) if args.fallback_phone else None
            if args.phone:
                clinic.phone = normalize(args.phone)
            if args.out_of_hours is not None:
                try:
                    clinic.out_of_hours = check_out_of_hours(args.out_of_hours, clinic)
                except ValueError as exc:
                    raise CliError(f"--out-of-hours: {exc}") from None
            if args.send_window:
                clinic.send_from, clinic.send_until = _hours(args.send_window)
            if args.daily_cap is not None:
                if not 1 <= args.daily_cap <= 10:
                    raise CliError("--daily-cap must be 1-10 contacts a day")
                clinic.daily_contact_cap = args.daily_cap
            if args.mood_by_link is not None:
                clinic.mood_by_link = args.mood_by_link == "on"
            data = {"clinic": clinic.slug, "ack_minutes_emergency": clinic.ack_minutes_emergency,
                    "ack_minutes_urgent": clinic.ack_minutes_urgent,
                    "fallback_phone": clinic.fallback_phone, "phone": clinic.phone,
                    "sms_number": clinic.sms_number,
                    "out_of_hours": clinic.out_of_hours,
                    "send_window": f"{clinic.send_from}-{clinic.send_until}",
                    "daily_cap": clinic.daily_contact_cap,
                    "mood_by_link": "on" if clinic.mood_by_link else "off"}
    except (EnrollmentError, InvalidPhone) as exc:
        raise CliError(str(exc)) from None
    _emit(args, data, json.dumps(data))


def cmd_protocol_load(args: argparse.Namespace) -> None:
    from painpath.enrollment import EnrollmentError
    from painpath.protocols import ProtocolError, load

    try:
        text = open(args.file, encoding="utf-8").read()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        with new_session() as session, session.begin():
            result = load(session, args.clinic, text, where=args.file)
    except (ProtocolError, EnrollmentError) as exc:
        raise CliError(str(exc)) from None
    _emit(args, result, f"clinic {result['clinic']}: loaded {', '.join(result['procedures'])}; "
                        f"rescheduled {result['rescheduled_enrollments']} active enrolment(s)")


def cmd_protocol_show(args: argparse.Namespace) -> None:
    from painpath.content import get_content
    from painpath.enrollment import EnrollmentError
    from painpath.protocols import show

    if args.procedure and args.procedure not in get_content().procedures:
        raise CliError(f"unknown procedure {args.procedure!r}")
    try:
        with new_session() as session:
            data = show(session, args.clinic, args.procedure)
    except EnrollmentError as exc:
        raise CliError(str(exc)) from None
    lines = []
    for pid, p in data["procedures"].items():
        lines.append(f"{pid} ({p['source']}): "
                     + ", ".join(c["key"] + (" [PHQ-4]" if c["key"] in p["phq4"] else "")
                                 for c in p["checkins"]))
        for event in p.get("events", []):
            lines.append(f"  + {_event_when(event)}: " + ", ".join(event["items"]))
    _emit(args, data, "\n".join(lines))


def _event_when(event: dict) -> str:
    """A pump event check-in's timing, in words (`protocol show`)."""
    if "after" in event:
        return f"{event['key']} check-in {event['after']} after each one"
    if "before_refill_days" in event:
        return f"{event['key']} {event['before_refill_days']}d before the refill date"
    return f"{event['key']} check {event['after_refill_days']}d after the refill date"


def cmd_enrollment_change(args: argparse.Namespace) -> None:
    from painpath.enrollment import EnrollmentError, parse_when
    from painpath.models import Patient
    from painpath.protocols import reschedule_patient

    try:
        with new_session() as session, session.begin():
            patient = session.get(Patient, args.patient)
            if patient is None:
                raise CliError(f"no patient {args.patient!r}")
            if args.enrollment_command == "cancel":
                result = reschedule_patient(session, patient.id, cancel=True)
            else:
                when = parse_when(args.procedure_at, patient.timezone)
                result = reschedule_patient(session, patient.id, procedure_at=when)
    except (EnrollmentError, LookupError) as exc:
        raise CliError(str(exc)) from None
    _emit(args, result, json.dumps(result))


def cmd_checkin_start(args: argparse.Namespace) -> None:
    from painpath.channels import start_checkin

    try:
        result = start_checkin(args.patient)
    except LookupError as exc:
        raise CliError(str(exc)) from None
    _emit(args, result, f"check-in {result['checkin_id']} started for patient {args.patient} "
                        f"by {result['channel']} ({len(result['messages'])} message(s))")


def cmd_screens_expire(args: argparse.Namespace) -> None:
    """What the scheduler's screen-timeout job does, once, at `--now` (default: now)."""
    from datetime import datetime

    from painpath.screening import run_timeouts

    now = None
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            raise CliError(f"--now {args.now!r} is not an ISO 8601 time") from None
        if now.tzinfo is None:
            raise CliError("--now needs a UTC offset, e.g. 2026-11-24T15:00:00+00:00")
    sent = run_timeouts(now)
    _emit(args, {"messages": sent}, f"{len(sent)} message(s) for unanswered screens")


def _add_screens_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("screens", parents=[common], help="direct safety questions")
    ssub = p.add_subparsers(dest="screens_command", required=True)
    p = ssub.add_parser("expire", parents=[common],
                        help="escalate screens with no reply by their due time (the "
                             "scheduler's job, run once)")
    p.add_argument("--now", help="ISO 8601 time with offset to run at (default: now)")
    p.set_defaults(fn=cmd_screens_expire)


def cmd_patient_show(args: argparse.Namespace) -> None:
    from painpath.patients import show

    with new_session() as session:
        data = show(session, args.id)
    if data is None:
        raise CliError(f"no patient {args.id!r}")
    lines = [f"patient {data['id']} ({data['procedure']}, {data['procedure_at']})"]
    for c in data["checkins"]:
        lines.append(f"  check-in {c['id']} {c['key']:>4} due {c['due_at']} {c['status']}"
                     + (f" {c['answers']}" if c["answers"] else ""))
    for e in data["escalations"]:
        lines.append(f"  escalation {e['id']} {e['tier']} {e['status']}: {', '.join(e['reasons'])}")
    _emit(args, data, "\n".join(lines))


def cmd_patient_export(args: argparse.Namespace) -> None:
    from painpath.privacy import PatientNotFound, export_patient

    try:
        data = export_patient(args.id, via="cli")
    except PatientNotFound:
        raise CliError(f"no patient {args.id!r}") from None
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if not args.out:
        print(text)
        return
    try:  # a new file (never overwrite one), readable by its owner only
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror}") from None
    rows = sum(data["row_counts"].values())
    _emit(args, {"id": args.id, "out": args.out, "rows": rows},
          f"exported patient {args.id} ({rows} rows) to {args.out}")


def cmd_patient_delete(args: argparse.Namespace) -> None:
    from painpath.privacy import (
        PatientNotFound,
        TrackerStoreUnavailable,
        configured_tracker_url,
        delete_patient,
    )

    if not args.yes:
        raise CliError("this deletes the patient's data for good: add --yes to confirm")
    try:
        result = delete_patient(args.id, via="cli", tracker_url=configured_tracker_url())
    except PatientNotFound:
        raise CliError(f"no patient {args.id!r}") from None
    except TrackerStoreUnavailable as exc:
        raise CliError(f"nothing deleted: {exc}") from None
    _emit(args, result.as_json(), f"patient {args.id}: {result.summary()} "
                                  f"(audit entry {result.audit_id})")


def cmd_chat_link(args: argparse.Namespace) -> None:
    from painpath.weblink import chat_url

    try:
        url = chat_url(args.patient)
    except LookupError:
        raise CliError(f"no patient {args.patient!r}") from None
    _emit(args, {"url": url}, url)


def _jsonl(path: str, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
    with stream:
        for line in stream:
            if line.strip():
                row = json.loads(line)
                print(json.dumps(fn(row), ensure_ascii=False), flush=False)
    sys.stdout.flush()


def cmd_triage(args: argparse.Namespace) -> None:
    from painpath.triage import triage

    def one(row: dict[str, Any]) -> dict[str, Any]:
        result = triage(row.get("text") or "", row.get("procedure") or None)
        return {**row, "tier": result.tier, "reasons": list(result.reasons),
                "screen": result.screen}

    if args.jsonl:
        _jsonl(args.jsonl, one)
        return
    if not args.text:
        raise CliError("give TEXT or --jsonl FILE")
    out = one({"text": " ".join(args.text), "procedure": args.procedure})
    _emit(args, {"tier": out["tier"], "reasons": out["reasons"], "screen": out["screen"]},
          out["tier"] + ("" if not out["reasons"] else ": " + "; ".join(out["reasons"]))
          + ("" if not out["screen"] else f" (screen: {out['screen']})"))


def cmd_parse_answer(args: argparse.Namespace) -> None:
    from painpath.parsing import parse_answer

    if args.jsonl:
        _jsonl(args.jsonl, lambda row: {**row, "value": parse_answer(
            row.get("question") or args.question, row.get("text") or "")})
        return
    if not args.question or not args.text:
        raise CliError("give --question and TEXT, or --jsonl FILE")
    value = parse_answer(args.question, " ".join(args.text))
    _emit(args, {"value": value}, "null" if value is None else json.dumps(value))


def cmd_seed_demo(args: argparse.Namespace) -> None:
    from painpath.demo import seed_demo

    info = seed_demo()
    _emit(args, info, f"demo clinic '{info['clinic']}', demo patient {info['patient_id']}\n"
                      f"web chat: {info['chat_url']}\n"
                      f"nurse dashboard: {info['dashboard_url']} (login {info['nurse_login']}, "
                      f"password {info['nurse_password']})")


def cmd_scheduler(args: argparse.Namespace) -> None:
    from scheduler.service import run_forever

    get_settings()  # a misconfigured process stops here, naming the variable
    logging.getLogger().setLevel(logging.INFO)
    run_forever(dispatch=args.dispatch, start_concurrency=args.start_concurrency)


def cmd_dispatcher(args: argparse.Namespace) -> None:
    from painpath.dispatch import drain, run_workers

    get_settings()  # a misconfigured process stops here, naming the variable

    logging.getLogger().setLevel(logging.INFO)
    if args.once:
        ids = drain()
        _emit(args, {"sent": ids}, f"handled {len(ids)} message(s)")
        return
    run_workers(args.workers, concurrency=args.concurrency, lease_seconds=args.lease_seconds,
                poll_seconds=args.poll_seconds)


# --- parser ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON")
    parser = argparse.ArgumentParser(prog="painpath", parents=[common],
                                     description="PainPath post-procedure follow-up")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", parents=[common], help="apply database migrations")
    p.set_defaults(fn=cmd_migrate)

    p = sub.add_parser("scheduler", parents=[common], help="run the scheduler in the foreground")
    p.add_argument("--no-dispatch", dest="dispatch", action="store_false",
                   help="don't send SMS in this process (`painpath dispatcher` workers do)")
    p.add_argument("--start-concurrency", type=int, default=None,
                   help="check-in starts in flight at once (default 8)")
    p.set_defaults(fn=cmd_scheduler)

    p = sub.add_parser("dispatcher", parents=[common],
                       help="send queued SMS: claim, send, record (several may run)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--concurrency", type=int, default=16, help="sends in flight per worker")
    p.add_argument("--lease-seconds", type=float, default=60.0,
                   help="a claimed message is reclaimed when its sender is silent this long")
    p.add_argument("--poll-seconds", type=float, default=0.2, help="idle wait between claims")
    p.add_argument("--once", action="store_true",
                   help="send what is claimable now, in this process, and exit")
    p.set_defaults(fn=cmd_dispatcher)

    p = sub.add_parser("seed-demo", parents=[common], help="create the demo clinic and patient")
    p.set_defaults(fn=cmd_seed_demo)

    p = sub.add_parser("enroll", parents=[common], help="enrol a patient; prints the patient id")
    p.add_argument("--clinic", required=True)
    p.add_argument("--phone", required=True)
    p.add_argument("--procedure", required=True)
    p.add_argument("--procedure-at", required=True, help="ISO 8601")
    p.add_argument("--timezone", help="IANA name, default: the clinic's")
    p.add_argument("--name")
    p.add_argument("--channel", choices=["sms", "web"], default="sms")
    p.add_argument("--baseline-pain", type=float, help="usual pain 0-10 before the procedure")
    p.add_argument("--diary-consent", action="store_true",
                   help="the patient consents to the diagnostic-block pain diary")
    p.add_argument("--diary-night-consent", action="store_true",
                   help="… and to diary texts outside the send window")
    p.add_argument("--pump-drug", choices=["opioid", "baclofen", "other"],
                   help="intrathecal pump: its drug (picks the withdrawal questions)")
    p.add_argument("--pump-refill-due", help="intrathecal pump: next refill date, YYYY-MM-DD")
    p.add_argument("--diabetic", action="store_true",
                   help="diabetic: blood sugar asked on days 1-3 after a steroid")
    p.add_argument("--glucose-limit", type=float,
                   help="the patient's diabetes-plan limit in mg/dL (default 300)")
    p.set_defaults(fn=cmd_enroll)

    p = sub.add_parser("import-csv", parents=[common],
                       help="enrol patients from a CSV (phone, procedure, procedure_at, …)")
    p.add_argument("file")
    p.add_argument("--clinic", required=True)
    p.set_defaults(fn=cmd_import_csv)

    p = sub.add_parser("clinician", parents=[common], help="manage clinicians")
    csub = p.add_subparsers(dest="clinician_command", required=True)
    p = csub.add_parser("add", parents=[common], help="add a clinician")
    p.add_argument("--clinic", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--phone", required=True)
    p.add_argument("--role", choices=["nurse", "admin"], default="nurse")
    p.add_argument("--on-call", choices=["primary", "backup"])
    p.add_argument("--on-call-hours", help="e.g. 08:00-18:00 in the clinic's time zone")
    p.add_argument("--username", help="dashboard login; password read from stdin")
    p.set_defaults(fn=cmd_clinician_add)

    p = sub.add_parser("clinic", parents=[common], help="clinic settings")
    csub = p.add_subparsers(dest="clinic_command", required=True)
    p = csub.add_parser("set", parents=[common],
                        help="escalation settings, phone numbers, the out-of-hours route")
    p.add_argument("--clinic", required=True)
    p.add_argument("--ack-minutes-emergency", type=int, help="re-page after (emergency, crisis)")
    p.add_argument("--ack-minutes-urgent", type=int, help="re-page after (urgent)")
    p.add_argument("--fallback-phone", help="paged when primary and backup do not acknowledge")
    p.add_argument("--phone", help="the clinic's number patients are told to call")
    p.add_argument("--sms-number", metavar="E164",
                   help="the clinic's own Twilio number: its patients' texts leave from it and "
                        "replies to it reach only its patients ('' = the shared "
                        "TWILIO_FROM_NUMBER)")
    p.add_argument("--out-of-hours", metavar="TEXT",
                   help="what an urgent patient should do when no nurse is on shift, e.g. "
                        "'call 415-555-0100 and choose the doctor on call' ('' = the default)")
    p.add_argument("--send-window", help="unprompted messages only then, e.g. 08:00-21:00 "
                                         "(patient's local time)")
    p.add_argument("--daily-cap", type=int, help="unprompted contacts per patient per day")
    p.add_argument("--mood-by-link", choices=("on", "off"),
                   help="on: SMS patients get the mood and suicide-screening questions "
                        "(PHQ-4, ASQ) as a secure web-chat link instead of in the text")
    p.set_defaults(fn=cmd_clinic_set)

    p = sub.add_parser("protocol", parents=[common], help="clinic check-in schedules")
    psub = p.add_subparsers(dest="protocol_command", required=True)
    p = psub.add_parser("load", parents=[common], help="load a clinic's protocol YAML")
    p.add_argument("file")
    p.add_argument("--clinic", required=True)
    p.set_defaults(fn=cmd_protocol_load)
    p = psub.add_parser("show", parents=[common], help="the clinic's effective schedules")
    p.add_argument("--clinic", required=True)
    p.add_argument("--procedure")
    p.set_defaults(fn=cmd_protocol_show)

    p = sub.add_parser("enrollment", parents=[common], help="change or cancel an enrolment")
    esub = p.add_subparsers(dest="enrollment_command", required=True)
    p = esub.add_parser("update", parents=[common], help="new procedure time: reschedules")
    p.add_argument("--patient", required=True)
    p.add_argument("--procedure-at", required=True, help="ISO 8601")
    p.set_defaults(fn=cmd_enrollment_change)
    p = esub.add_parser("cancel", parents=[common], help="cancel: pending check-ins cancelled")
    p.add_argument("--patient", required=True)
    p.set_defaults(fn=cmd_enrollment_change)

    p = sub.add_parser("checkin", parents=[common], help="check-ins")
    csub = p.add_subparsers(dest="checkin_command", required=True)
    p = csub.add_parser("start", parents=[common], help="start the patient's next check-in now")
    p.add_argument("--patient", required=True)
    p.set_defaults(fn=cmd_checkin_start)

    _add_screens_parser(sub, common)
    p = sub.add_parser("patient", parents=[common], help="patients")
    psub = p.add_subparsers(dest="patient_command", required=True)
    p = psub.add_parser("show", parents=[common], help="show a patient's record")
    p.add_argument("id")
    p.set_defaults(fn=cmd_patient_show)
    p = psub.add_parser("export", parents=[common],
                        help="everything held about a patient, as JSON (audited)")
    p.add_argument("id")
    p.add_argument("--out", help="write to this new file (mode 600) instead of stdout")
    p.set_defaults(fn=cmd_patient_export)
    p = psub.add_parser("delete", parents=[common],
                        help="delete a patient's data and Rasa conversation (audited)")
    p.add_argument("id")
    p.add_argument("--yes", action="store_true", help="confirm the deletion")
    p.set_defaults(fn=cmd_patient_delete)

    p = sub.add_parser("chat-link", parents=[common], help="a signed web-chat link for a patient")
    p.add_argument("--patient", required=True)
    p.set_defaults(fn=cmd_chat_link)

    p = sub.add_parser("triage", parents=[common], help="red-flag triage of a message")
    p.add_argument("--procedure")
    p.add_argument("--jsonl", help="read {text, procedure} lines ('-' for stdin)")
    p.add_argument("text", nargs="*")
    p.set_defaults(fn=cmd_triage)

    p = sub.add_parser("parse-answer", parents=[common], help="parse a check-in answer")
    p.add_argument("--question", choices=["pain_0_10", "percent_relief", "pgic", "yes_no"])
    p.add_argument("--jsonl", help="read {question, text} lines ('-' for stdin)")
    p.add_argument("text", nargs="*")
    p.set_defaults(fn=cmd_parse_answer)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # spaCy's thinc imports TensorFlow
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from painpath.logsafety import install_phone_redaction

    install_phone_redaction()
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except (CliError, ConfigError) as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc)}))
        print(f"painpath: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
