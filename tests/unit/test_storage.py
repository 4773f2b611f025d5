"""Storage: migrations, models and enrolment against SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from painpath.db import get_engine, new_session
from painpath.enrollment import EnrollmentError, EnrollmentRequest, enroll
from painpath.messaging import record_outbound
from painpath.models import Base, CheckIn, Consent, Enrollment, Message, Patient


def test_migrations_match_the_models(database_url: str) -> None:
    with get_engine(database_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def request(**overrides) -> EnrollmentRequest:  # type: ignore[no-untyped-def]
    values = dict(clinic_slug="test", phone="(415) 555-0111",
                  procedure="radiofrequency_ablation",
                  procedure_at="2026-11-20T09:30:00-06:00", timezone="America/Chicago",
                  name="Robin Patient")
    values.update(overrides)
    return EnrollmentRequest(**values)


def test_enroll_normalises_and_schedules(clinic: str) -> None:
    with new_session() as session, session.begin():
        patient = enroll(session, request())
        patient_id = patient.id
    with new_session() as session:
        patient = session.get(Patient, patient_id)
        assert patient.phone == "+14155550111"
        assert patient.timezone == "America/Chicago"
        enrollment = session.execute(select(Enrollment)).scalar_one()
        assert enrollment.procedure_at == datetime(2026, 11, 20, 15, 30, tzinfo=timezone.utc)
        checkins = session.execute(select(CheckIn).order_by(CheckIn.due_at)).scalars().all()
        assert [c.key for c in checkins] == ["1d", "3d", "7d", "14d", "21d", "42d", "90d", "180d"]
        assert checkins[0].due_at == enrollment.procedure_at + timedelta(days=1)
        assert checkins[0].due_at.tzinfo is not None
        assert "pain_baseline" in checkins[0].items and "pain_baseline" not in checkins[1].items
        assert session.execute(select(Consent.event)).scalars().all() == ["opt_in"]


def test_naive_procedure_time_is_read_in_the_patient_zone(clinic: str) -> None:
    with new_session() as session, session.begin():
        enroll(session, request(procedure_at="2026-07-01T10:00", timezone="America/Los_Angeles"))
    with new_session() as session:
        when = session.execute(select(Enrollment.procedure_at)).scalar_one()
    assert when == datetime(2026, 7, 1, 17, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("overrides, fragment", [
    ({"phone": "555-12"}, "phone"),
    ({"procedure": "knee_replacement"}, "unknown procedure"),
    ({"timezone": "Central Time"}, "time zone"),
    ({"procedure_at": "next tuesday"}, "ISO 8601"),
    ({"clinic_slug": "nope"}, "no clinic"),
])
def test_invalid_enrolment_writes_nothing(clinic: str, overrides, fragment) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EnrollmentError, match=fragment):
        with new_session() as session, session.begin():
            enroll(session, request(**overrides))
    with new_session() as session:
        assert session.execute(select(Patient)).first() is None
        assert session.execute(select(CheckIn)).first() is None


def test_second_active_enrolment_for_a_number_is_refused(clinic: str) -> None:
    with new_session() as session, session.begin():
        enroll(session, request())
    with pytest.raises(EnrollmentError, match="active enrolment"):
        with new_session() as session, session.begin():
            enroll(session, request(phone="+1 415 555 0111"))


def test_idempotency_key_prevents_a_duplicate_message(clinic: str) -> None:
    with new_session() as session, session.begin():
        first = record_outbound(session, to="+14155550111", body="hi", idempotency_key="k1")
        assert first is not None
    with new_session() as session, session.begin():
        assert record_outbound(session, to="+14155550111", body="hi", idempotency_key="k1") is None
    with new_session() as session:
        assert len(session.execute(select(Message)).scalars().all()) == 1


def test_day_offsets_keep_the_wall_clock_across_daylight_saving(clinic: str) -> None:
    # 09:30 in Chicago on Friday 30 Oct 2026; DST ends on Sunday 1 Nov 2026
    with new_session() as session, session.begin():
        enroll(session, request(procedure="epidural_steroid_injection",
                                procedure_at="2026-10-30T09:30:00-05:00"))
    with new_session() as session:
        due = {c.key: c.due_at for c in session.execute(select(CheckIn)).scalars()}
    assert due["6h"] == datetime(2026, 10, 30, 20, 30, tzinfo=timezone.utc)  # elapsed time
    assert due["1d"] == datetime(2026, 10, 31, 14, 30, tzinfo=timezone.utc)  # 09:30 CDT
    assert due["4d"] == datetime(2026, 11, 3, 15, 30, tzinfo=timezone.utc)   # 09:30 CST
    assert len(set(due.values())) == len(due)  # nothing doubled


def test_pump_split_migration_adds_the_withdrawal_question_to_pending_checkins(
        clinic: str, database_url: str) -> None:
    from painpath.migrate import downgrade, upgrade
    from painpath.models import Clinic, Protocol

    with new_session() as session, session.begin():
        patient_id = enroll(session, request(procedure="intrathecal_pump")).id
        clinic_id = session.execute(select(Clinic.id)).scalar_one()
        session.add(Protocol(clinic_id=clinic_id, procedure="intrathecal_pump", spec={
            "checkins": ["1d", "7d"],
            "safety": [{"item": "safety_pump", "until_day": 30}, {"item": "safety_neuro"}]}))
        first = session.execute(select(CheckIn).where(CheckIn.patient_id == patient_id)
                                .order_by(CheckIn.due_at)).scalars().first()
        first.status = "completed"
        first.items = ["safety_pump", "pain_now"]  # asked the old way: left as it was
    downgrade(database_url, "0008")
    with new_session() as session:
        rows = session.execute(select(CheckIn).order_by(CheckIn.due_at)).scalars().all()
        assert all("safety_pump_withdrawal" not in c.items for c in rows)
    upgrade(database_url)
    with new_session() as session:
        rows = session.execute(select(CheckIn).order_by(CheckIn.due_at)).scalars().all()
        assert rows[0].items == ["safety_pump", "pain_now"]
        for c in rows[1:]:  # (no pump drug recorded: the opioid question too, test_pumps.py)
            assert c.items[:4] == ["safety_pump", "safety_pump_withdrawal",
                                   "safety_pump_opioid_withdrawal", "safety_neuro"]
        spec = session.execute(select(Protocol.spec)).scalar_one()
        assert spec["safety"] == [{"item": "safety_pump", "until_day": 30},
                                  {"item": "safety_pump_withdrawal", "until_day": 30},
                                  {"item": "safety_neuro"}]
