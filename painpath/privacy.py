"""A patient's data on request: export it (JSON) and delete it, each audited.

Which rows are a patient's is read from the database schema itself, so a table
added by a later migration is covered without a change here: a table holds
patient data when it has a ``patient_id`` column, or a foreign key to a table
that does (an answer through its check-in, an escalation event through its
escalation), transitively; ``patient`` itself is the root. Tables listed in
:data:`RETAINED` are exported but not deleted: the audit log records who saw or
changed a record and is kept by law after the record is gone (it holds the
patient id, a random token, and no health information). Messages recorded before
the number was matched to a patient (``patient_id`` empty) count as the
patient's when they were to or from the patient's number and no other patient
has that number.

Alert pages, a clinician's ACK text and its confirmation carry no patient id but
their escalation's (``message.escalation_id``), so they go with the escalation.

The patient's Rasa conversation (the tracker, keyed by the patient id) is deleted
too when the tracker store is SQL — Rasa's ``SQL`` or PainPath's
``ResilientSQLTrackerStore`` (the production one) — and its location is known
(``RASA_ENDPOINTS``, default ``bot/endpoints.yml``; its ``${VAR}``s from this
process's environment). Rasa 3.6 has no API to delete a conversation, so this
deletes the tracker's rows in its ``events`` table. When such a store cannot be
resolved or reached, :class:`TrackerStoreUnavailable` is raised and *nothing* is
deleted: a deletion that left the conversation behind would look complete. For
any other tracker store the audit entry says that the conversation was not reached.

The kept audit entries then name no one: their patient id becomes a keyed
pseudonym (:func:`audit_pseudonym`; whoever holds the id and the deployment's
secret key can still find them) and the patient's id, number, name and procedure
are cut out of their free text.

Every export and every deletion writes one :class:`~painpath.models.AuditLog`
row (``export_patient`` / ``delete_patient``) naming the clinician (None from
the CLI), the channel and counts of rows — never a name, number or message.
"""
from __future__ import annotations

import base64
import hmac
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import (
    MetaData,
    Table,
    and_,
    create_engine,
    delete,
    func,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from painpath.db import new_session
from painpath.models import AuditLog, Enrollment, Patient, utcnow
from painpath.settings import get_settings

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "painpath.patient-export/1"
ROOT_TABLE = "patient"
PATIENT_COLUMN = "patient_id"
# exported, never deleted (see the module docstring)
RETAINED = frozenset({"audit_log"})
# never patient data, whatever their columns say
IGNORED = frozenset({"alembic_version", "apscheduler_jobs", "events"})
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENDPOINTS = REPO_ROOT / "bot" / "endpoints.yml"
TRACKER_TABLE = "events"
# tracker store types whose conversations live in a SQL `events` table
SQL_TRACKER_TYPES = frozenset({"sql", "bot.painpath_rasa.tracker_store.resilientsqltrackerstore"})
PSEUDONYM_PREFIX = "gone:"
REDACTED = "[deleted]"


class PatientNotFound(LookupError):
    """No such patient (or not in the given clinic)."""


class TrackerStoreUnavailable(RuntimeError):
    """Rasa's SQL tracker store could not be resolved or reached: nothing was deleted
    (the message says why; never a password)."""


@dataclass
class Deletion:
    """What one deletion removed (counts only: this is what the audit log keeps)."""

    patient_id: str
    rows: dict[str, int] = field(default_factory=dict)
    tracker_events: int | None = None  # None: the conversation was not reached
    tracker_note: str = ""
    audit_id: int | None = None

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> str:
        """'answer 4, checkin 3, …; rasa conversation: 27 events deleted' (no PHI)."""
        parts = ", ".join(f"{t} {n}" for t, n in sorted(self.rows.items()) if n)
        return f"deleted {self.total} rows ({parts or 'none'}); rasa conversation: " \
               f"{self.tracker_note}"

    def as_json(self) -> dict[str, Any]:
        return {"patient_id": self.patient_id, "deleted_rows": dict(sorted(self.rows.items())),
                "total_rows": self.total, "rasa_tracker_events_deleted": self.tracker_events,
                "rasa_conversation": self.tracker_note, "audit_id": self.audit_id}


# --------------------------------------------------------------------------- #
# Which rows are the patient's
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class PatientTable:
    table: Table
    where: ColumnElement  # selects this patient's rows

    @property
    def name(self) -> str:
        return self.table.name


def patient_tables(conn: Connection, patient: Patient) -> list[PatientTable]:
    """Every table holding `patient`'s rows, parents before children, with the
    condition that selects them (schema reflected from the live database)."""
    meta = _schema(conn)
    owned: dict[str, PatientTable] = {}
    for table in meta.sorted_tables:  # referenced tables come first
        if table.name in IGNORED:
            continue
        conditions: list[ColumnElement] = []
        if table.name == ROOT_TABLE:
            conditions.append(table.c.id == patient.id)
        elif PATIENT_COLUMN in table.c:
            conditions.append(table.c[PATIENT_COLUMN] == patient.id)
            extra = _unlinked_rows(conn, table, patient)
            if extra is not None:
                conditions.append(extra)
        for fk in table.foreign_keys:
            parent = owned.get(fk.column.table.name)
            if parent is None or fk.column.table is table:
                continue
            conditions.append(fk.parent.in_(
                select(fk.column).where(parent.where).scalar_subquery()))
        if conditions:
            owned[table.name] = PatientTable(table, or_(*conditions))
    return list(owned.values())


_schemas: dict[tuple[str, tuple[str, ...]], MetaData] = {}
_schemas_lock = threading.Lock()


def _schema(conn: Connection) -> MetaData:
    """The reflected schema, cached per database and set of table names (reflecting
    PostgreSQL's catalog costs about half a second; a new table or migration changes
    the key)."""
    names = tuple(sorted(inspect(conn).get_table_names()))
    if "alembic_version" in names:  # a migration that adds a column changes it too
        names += tuple(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    key = (conn.engine.url.render_as_string(hide_password=True), names)
    with _schemas_lock:
        meta = _schemas.get(key)
    if meta is None:
        meta = MetaData()
        meta.reflect(bind=conn)
        with _schemas_lock:
            _schemas.clear()  # one schema per process is the normal case
            _schemas[key] = meta
    return meta


def _unlinked_rows(conn: Connection, table: Table, patient: Patient) -> ColumnElement | None:
    """Messages with no patient id to or from this patient's number (e.g. a text
    sent before enrolment), unless another patient has the same number."""
    if table.name != "message" or not {"from", "to"} <= set(table.c.keys()):
        return None
    others = conn.execute(
        select(func.count()).select_from(Patient.__table__)
        .where(Patient.phone == patient.phone, Patient.id != patient.id)
    ).scalar_one()
    if others:
        return None
    return and_(table.c[PATIENT_COLUMN].is_(None),
                or_(table.c["from"] == patient.phone, table.c["to"] == patient.phone))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # SQLite: PainPath stores UTC
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return value


def _rows(conn: Connection, pt: PatientTable) -> list[dict[str, Any]]:
    order = list(pt.table.primary_key.columns) or list(pt.table.c)[:1]
    result = conn.execute(select(pt.table).where(pt.where).order_by(*order))
    return [{k: _json_value(v) for k, v in row._mapping.items()} for row in result]


def _find(session: Session, patient_id: str, clinic_id: int | None,
          lock: bool = False) -> Patient:
    query = select(Patient).where(Patient.id == patient_id)
    if clinic_id is not None:
        query = query.where(Patient.clinic_id == clinic_id)
    if lock:
        query = query.with_for_update()
    patient = session.execute(query).scalar_one_or_none()
    if patient is None:
        raise PatientNotFound(patient_id)
    return patient


def _audit(session: Session, action: str, patient_id: str, clinician_id: int | None,
           detail: str) -> AuditLog:
    entry = AuditLog(clinician_id=clinician_id, patient_id=patient_id, action=action,
                     detail=detail[:2000], at=utcnow())
    session.add(entry)
    session.flush()
    return entry


# --------------------------------------------------------------------------- #
# Export
# --------------------------------------------------------------------------- #


def export_patient(patient_id: str, *, clinic_id: int | None = None,
                   clinician_id: int | None = None, via: str = "cli",
                   database_url: str | None = None) -> dict[str, Any]:
    """Everything PainPath holds about the patient, as JSON-ready data, and an
    ``export_patient`` audit entry (in the same transaction).

    Raises:
        PatientNotFound: no such patient in `clinic_id` (any clinic when None).
    """
    with new_session(database_url) as session, session.begin():
        patient = _find(session, patient_id, clinic_id)
        conn = session.connection()
        tables = {pt.name: _rows(conn, pt) for pt in patient_tables(conn, patient)}
        audit_table = _schema(conn).tables["audit_log"]
        retained = PatientTable(audit_table, audit_table.c.patient_id == patient.id)
        tables["audit_log"] = _rows(conn, retained)
        counts = {name: len(rows) for name, rows in tables.items()}
        entry = _audit(session, "export_patient", patient.id, clinician_id,
                       f"exported {sum(counts.values())} rows from {len(counts)} tables "
                       f"via {via}")
        logger.info("patient %s exported via %s (audit %s)", patient.id, via, entry.id)
        return {
            "format": EXPORT_FORMAT,
            "exported_at": _json_value(entry.at),
            "patient_id": patient.id,
            "patient": tables.pop(ROOT_TABLE)[0],
            "tables": tables,
            "row_counts": counts,
            "retained_on_deletion": sorted(RETAINED),
            "notes": ("Every table holding this patient's rows; audit_log lists who viewed "
                      "or changed the record and is kept after a deletion. The assistant's "
                      "conversation state (Rasa tracker) repeats the messages above."),
        }


# --------------------------------------------------------------------------- #
# Delete
# --------------------------------------------------------------------------- #


def tracker_store_url(endpoints: str | Path | None = None) -> URL | None:
    """The SQLAlchemy URL of Rasa's SQL tracker store named in `endpoints`
    (default ``bot/endpoints.yml``), or None when it is not a SQL store.

    Relative SQLite paths are read from the repository root (where `make run`
    starts Rasa); ``${VAR}`` references are expanded as Rasa does.

    Raises:
        TrackerStoreUnavailable: a SQL store whose ``${VAR}`` is not set here.
    """
    path = Path(endpoints) if endpoints else DEFAULT_ENDPOINTS
    if not path.is_absolute():
        path = REPO_ROOT / path
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        logger.warning("Rasa endpoints file %s not readable", path.name)
        return None
    store = config.get("tracker_store") if isinstance(config, dict) else None
    if not isinstance(store, dict) or str(store.get("type", "")).lower() not in SQL_TRACKER_TYPES:
        return None
    store = {k: os.path.expandvars(str(v)) if v is not None else None for k, v in store.items()}
    unset = sorted({m for v in store.values() if v for m in re.findall(r"\$\{(\w+)\}", v)})
    if unset:
        raise TrackerStoreUnavailable(
            f"Rasa's tracker store in {path.name} needs {', '.join(unset)} in this "
            "process's environment (the same values the Rasa servers have)")
    dialect = store.get("dialect") or "sqlite"
    db = store.get("db") or "rasa.db"
    if dialect.startswith("sqlite"):
        db_path = Path(db)
        if not db_path.is_absolute():
            db_path = REPO_ROOT / db_path
        return make_url(f"sqlite:///{db_path}")
    port = store.get("port") or ""
    if port and not port.isdigit():
        return None
    return URL.create(dialect, username=store.get("username") or None,
                      password=store.get("password") or None,
                      host=store.get("url") or "localhost",
                      port=int(port) if port else None, database=db)


def configured_tracker_url() -> URL | None:
    """The tracker store of the Rasa endpoints file in the settings (RASA_ENDPOINTS)."""
    return tracker_store_url(get_settings().rasa_endpoints)


def delete_tracker(url: URL | str | None, patient_id: str) -> tuple[int | None, str]:
    """Delete the Rasa conversation `patient_id` from a SQL tracker store.

    Returns (events deleted or None when `url` is None, a note for the audit log).

    Raises:
        TrackerStoreUnavailable: the store did not answer (nothing deleted there).
    """
    if url is None:
        return None, "not reached (the tracker store is not a SQL store PainPath knows): " \
                     "delete conversation in the tracker store by hand"
    url = make_url(url) if isinstance(url, str) else url
    if url.get_backend_name() == "sqlite" and url.database and \
            not Path(url.database).exists():
        return None, "not reached (no tracker database file)"
    engine = create_engine(url, future=True)
    try:
        with engine.begin() as conn:
            meta = MetaData()
            meta.reflect(bind=conn, only=lambda name, _: name == TRACKER_TABLE)
            if TRACKER_TABLE not in meta.tables:
                return 0, "0 events deleted (no conversations stored yet)"
            events = meta.tables[TRACKER_TABLE]
            count = conn.execute(delete(events).where(events.c.sender_id == patient_id)).rowcount
        return count, f"{count} events deleted"
    except SQLAlchemyError as exc:
        logger.warning("Rasa tracker store not reached for patient %s: %s", patient_id,
                       type(exc).__name__)
        raise TrackerStoreUnavailable(
            f"Rasa's tracker store did not answer ({type(exc).__name__}); nothing was "
            "deleted: try again when it is back") from None
    finally:
        engine.dispose()


def audit_pseudonym(patient_id: str) -> str:
    """What a deleted patient's kept audit entries carry instead of their id: a keyed
    hash (HMAC with the deployment's ``audit-pseudonym`` key), so that an auditor who
    holds the id can still find them, and nobody can go from them back to the id."""
    digest = hmac.new(get_settings().key_for("audit-pseudonym"), patient_id.encode(),
                      "sha256").hexdigest()
    return PSEUDONYM_PREFIX + digest[:24]


def _identifiers(session: Session, patient: Patient) -> list[str]:
    """The strings that name `patient` in free text: id, number (as stored and its
    national digits), name and each longer part of it, procedures."""
    procedures = session.execute(select(Enrollment.procedure).where(
        Enrollment.patient_id == patient.id)).scalars().all()
    found = {patient.id, patient.phone, patient.phone.lstrip("+"), *procedures}
    if patient.phone.startswith("+1") and len(patient.phone) == 12:
        found.add(patient.phone[2:])
    if patient.name:
        found.add(patient.name)
        found.update(p for p in re.split(r"\W+", patient.name) if len(p) >= 3)
    return sorted((f for f in found if f), key=len, reverse=True)


def _scrub_audit(conn: Connection, patient: Patient, identifiers: list[str]) -> int:
    """Pseudonymise the patient's kept audit entries and cut `identifiers` out of their
    free text, and out of any other entry that names the patient's id or number.
    Returns the entries changed."""
    table = AuditLog.__table__
    patient_id = patient.id
    pattern = re.compile("|".join(re.escape(i) for i in identifiers), re.IGNORECASE)
    mentions = or_(table.c.detail.contains(patient_id), table.c.detail.contains(patient.phone))
    rows = conn.execute(select(table.c.id, table.c.patient_id, table.c.detail).where(
        or_(table.c.patient_id == patient_id, mentions))).all()
    pseudonym = audit_pseudonym(patient_id)
    for row in rows:
        conn.execute(update(table).where(table.c.id == row.id).values(
            patient_id=pseudonym if row.patient_id == patient_id else row.patient_id,
            detail=pattern.sub(REDACTED, row.detail) if row.detail else row.detail))
    return len(rows)


def delete_patient(patient_id: str, *, clinic_id: int | None = None,
                   clinician_id: int | None = None, via: str = "cli",
                   database_url: str | None = None,
                   tracker_url: URL | str | None = None) -> Deletion:
    """Delete every row of the patient (see the module docstring) and their Rasa
    conversation, and write a ``delete_patient`` audit entry with counts only.

    The tracker goes first: if PainPath's own deletion then failed, the call can
    simply be repeated; the reverse order could leave a conversation nobody can
    find any more. The kept audit entries are pseudonymised in the same transaction
    as the deletion (see the module docstring).

    Raises:
        PatientNotFound: no such patient in `clinic_id` (any clinic when None).
        TrackerStoreUnavailable: Rasa's SQL tracker store did not answer; nothing
            was deleted.
    """
    with new_session(database_url) as session:  # fail before touching the tracker
        _find(session, patient_id, clinic_id)
    result = Deletion(patient_id=patient_id)
    result.tracker_events, result.tracker_note = delete_tracker(tracker_url, patient_id)
    with new_session(database_url) as session, session.begin():
        patient = _find(session, patient_id, clinic_id, lock=True)
        identifiers = _identifiers(session, patient)
        conn = session.connection()
        tables = [pt for pt in patient_tables(conn, patient) if pt.name not in RETAINED]
        for pt in reversed(tables):  # children first: their conditions read the parents
            result.rows[pt.name] = conn.execute(delete(pt.table).where(pt.where)).rowcount
        session.expunge(patient)
        _scrub_audit(conn, patient, identifiers)
        entry = _audit(session, "delete_patient", audit_pseudonym(patient_id), clinician_id,
                       f"{result.summary()}; via {via}")
        result.audit_id = entry.id
    logger.info("patient %s deleted via %s: %d rows, tracker %s (audit %s)", patient_id, via,
                result.total, result.tracker_events, result.audit_id)
    return result
