"""SQLAlchemy models for PainPath's own data.

Schema changes go through Alembic (`painpath/migrations`); tests check that the
migrations and these models agree.
"""
from __future__ import annotations

import enum
import secrets
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import declarative_base, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Base = declarative_base(metadata=MetaData(naming_convention=NAMING))


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """An unguessable short id (patients' ids are also Rasa conversation ids)."""
    return secrets.token_hex(8)


class UTCDateTime(TypeDecorator):
    """Stores UTC; always returns timezone-aware UTC datetimes (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; PainPath stores timezone-aware UTC")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Clinic(Base):
    __tablename__ = "clinic"
    id = Column(Integer, primary_key=True)
    slug = Column(String(64), nullable=False, unique=True)
    name = Column(String(200), nullable=False)
    phone = Column(String(20), nullable=True)
    timezone = Column(String(64), nullable=False, default="America/New_York")
    emergency_number = Column(String(16), nullable=False, default="911")
    # escalation policy: minutes to acknowledge before the next page, and the
    # number paged when neither primary nor backup acknowledges
    ack_minutes_emergency = Column(Integer, nullable=False, default=5)
    ack_minutes_urgent = Column(Integer, nullable=False, default=30)
    fallback_phone = Column(String(20), nullable=True)
    # the clinic's own Twilio number: its patients' texts leave from it, and a text
    # to it is routed to its patients only (None: TWILIO_FROM_NUMBER, shared)
    sms_number = Column(String(20), nullable=True, unique=True)
    # what an urgent patient is told to do outside the care team's on-call hours
    # ("call 415-555-0100 and choose the doctor on call"); None: messages.yaml's default
    out_of_hours = Column(Text, nullable=True)
    # unprompted messages (check-in starts, reminders) only in this window of the
    # patient's own day, and at most `daily_contact_cap` of them per local day
    send_from = Column(String(5), nullable=False, default="08:00")
    send_until = Column(String(5), nullable=False, default="21:00")
    daily_contact_cap = Column(Integer, nullable=False, default=2)
    # mood and suicide-screening questions (PHQ-4, ASQ) go to SMS patients as a
    # secure web-chat link instead of in the text (CLINICAL.md §6, minimum necessary)
    mood_by_link = Column(Boolean, nullable=False, default=False, server_default=text("false"))
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)


class Protocol(Base):
    """A clinic's own check-in schedule for one procedure (else the YAML default)."""

    __tablename__ = "protocol"
    __table_args__ = (UniqueConstraint("clinic_id", "procedure", name="uq_protocol_clinic_procedure"),)
    id = Column(Integer, primary_key=True)
    clinic_id = Column(Integer, ForeignKey("clinic.id"), nullable=False, index=True)
    procedure = Column(String(64), nullable=False)
    spec = Column(JSON, nullable=False)  # {checkins: [...], safety: [...]} as in procedures.yaml
    updated_at = Column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)


class Clinician(Base):
    __tablename__ = "clinician"
    id = Column(Integer, primary_key=True)
    clinic_id = Column(Integer, ForeignKey("clinic.id"), nullable=False, index=True)
    name = Column(String(200), nullable=False)
    phone = Column(String(20), nullable=False)
    role = Column(String(16), nullable=False, default="nurse")
    on_call = Column(String(16), nullable=True)  # primary | backup | None
    # on-call hours in the clinic's time zone ("08:00"–"18:00"); both None = always
    on_call_start = Column(String(5), nullable=True)
    on_call_end = Column(String(5), nullable=True)
    username = Column(String(100), nullable=True, unique=True)
    password_hash = Column(String(255), nullable=True)
    active = Column(Boolean, nullable=False, default=True)
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)
    clinic = relationship("Clinic")


class Patient(Base):
    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("clinic_id", "phone", name="uq_patient_clinic_phone"),)
    id = Column(String(32), primary_key=True, default=new_id)
    clinic_id = Column(Integer, ForeignKey("clinic.id"), nullable=False, index=True)
    name = Column(String(200), nullable=True)
    phone = Column(String(20), nullable=False, index=True)
    timezone = Column(String(64), nullable=False)
    channel = Column(String(8), nullable=False, default="sms")  # sms | web
    sms_opted_out = Column(Boolean, nullable=False, default=False)
    # what the patient's web-chat links carry instead of the id (painpath/weblink.py);
    # replaced to revoke every link sent before, None until the first link
    chat_link_key = Column(String(32), nullable=True, unique=True, index=True)
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)
    clinic = relationship("Clinic")
    enrollments = relationship("Enrollment", back_populates="patient", order_by="Enrollment.id")


class Enrollment(Base):
    __tablename__ = "enrollment"
    id = Column(Integer, primary_key=True)
    patient_id = Column(String(32), ForeignKey("patient.id"), nullable=False, index=True)
    procedure = Column(String(64), nullable=False)
    procedure_at = Column(UTCDateTime(), nullable=False)
    status = Column(String(16), nullable=False, default="active")  # active|cancelled|completed
    baseline_pain = Column(Float, nullable=True)
    # intrathecal pump (CLINICAL.md §1.8): the drug picks the withdrawal question
    # (None: not recorded, asked as "other"); the next refill date (clinic-local day)
    pump_drug = Column(String(16), nullable=True)  # opioid | baclofen | other
    pump_refill_due = Column(UTCDateTime(), nullable=True)
    # steroid hyperglycaemia (CLINICAL.md §1.0): a diabetic patient's own plan limit
    diabetic = Column(Boolean, nullable=False, default=False)
    glucose_limit_mg_dl = Column(Float, nullable=True)  # None: the default (redflags.yaml)
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)
    patient = relationship("Patient", back_populates="enrollments")
    checkins = relationship("CheckIn", back_populates="enrollment", order_by="CheckIn.due_at")


class CheckIn(Base):
    __tablename__ = "checkin"
    __table_args__ = (UniqueConstraint("enrollment_id", "key", name="uq_checkin_enrollment_key"),)
    id = Column(Integer, primary_key=True)
    enrollment_id = Column(Integer, ForeignKey("enrollment.id"), nullable=False, index=True)
    patient_id = Column(String(32), ForeignKey("patient.id"), nullable=False, index=True)
    key = Column(String(32), nullable=False)  # e.g. "d1", "h4"
    day = Column(Float, nullable=False)  # days after the procedure
    due_at = Column(UTCDateTime(), nullable=False, index=True)
    # scheduled | in_progress | paused | completed | missed | cancelled
    status = Column(String(16), nullable=False, default="scheduled")
    items = Column(JSON, nullable=False)
    started_at = Column(UTCDateTime(), nullable=True)
    reminder_sent_at = Column(UTCDateTime(), nullable=True)  # one nudge if no reply
    completed_at = Column(UTCDateTime(), nullable=True)
    enrollment = relationship("Enrollment", back_populates="checkins")
    answers = relationship("Answer", back_populates="checkin", order_by="Answer.id")


class Answer(Base):
    __tablename__ = "answer"
    __table_args__ = (UniqueConstraint("checkin_id", "item", name="uq_answer_checkin_item"),)
    id = Column(Integer, primary_key=True)
    checkin_id = Column(Integer, ForeignKey("checkin.id"), nullable=False, index=True)
    item = Column(String(64), nullable=False)
    value = Column(Float, nullable=True)  # None when unanswered
    raw_text = Column(Text, nullable=True)
    status = Column(String(16), nullable=False, default="pending")  # pending|answered|unanswered
    attempts = Column(Integer, nullable=False, default=0)
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)
    checkin = relationship("CheckIn", back_populates="answers")


class Message(Base):
    __tablename__ = "message"
    id = Column(Integer, primary_key=True)
    patient_id = Column(String(32), ForeignKey("patient.id"), nullable=True, index=True)
    clinician_id = Column(Integer, ForeignKey("clinician.id"), nullable=True)
    direction = Column(String(8), nullable=False)  # in | out
    channel = Column(String(8), nullable=False)  # sms | web
    to = Column(String(64), nullable=True)
    from_ = Column("from", String(64), nullable=True)
    body = Column(Text, nullable=False)
    # queued | sending | sent | delivered | failed | undelivered | received | logged
    status = Column(String(16), nullable=False, default="queued", index=True)
    provider_sid = Column(String(64), nullable=True, index=True)
    idempotency_key = Column(String(128), nullable=True, unique=True)
    error = Column(Text, nullable=True)
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(UTCDateTime(), nullable=True, index=True)  # retry with backoff
    # dispatch (painpath/dispatch.py): a sender claims a row as "sending" until
    # `lease_until`; an expired lease is reclaimed. `unsure_since` is set while an
    # attempt's outcome is unknown (crash mid-send, timeout): the next sender asks
    # the provider whether that attempt went out before sending again.
    lease_until = Column(UTCDateTime(), nullable=True)
    claimed_by = Column(String(64), nullable=True)
    unsure_since = Column(UTCDateTime(), nullable=True)
    # why the message was written: "outreach" (routine, unprompted: check-in starts,
    # reminders, exercise prompts, summaries; held while an emergency or crisis is
    # open), "welcome" (at enrolment); None: a reply in a conversation or an alert
    purpose = Column(String(16), nullable=True)
    # the escalation an alert page, a clinician's ACK or its confirmation is about
    # (these name no patient id, yet are deleted with the patient through it)
    escalation_id = Column(Integer, ForeignKey("escalation.id"), nullable=True, index=True)
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)


class Consent(Base):
    __tablename__ = "consent"
    id = Column(Integer, primary_key=True)
    patient_id = Column(String(32), ForeignKey("patient.id"), nullable=False, index=True)
    kind = Column(String(16), nullable=False, default="sms")
    event = Column(String(16), nullable=False)  # opt_in | opt_out | help
    source = Column(String(64), nullable=True)  # enrollment | keyword:STOP | twilio:21610
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)


class Escalation(Base):
    __tablename__ = "escalation"
    id = Column(Integer, primary_key=True)
    patient_id = Column(String(32), ForeignKey("patient.id"), nullable=False, index=True)
    checkin_id = Column(Integer, ForeignKey("checkin.id"), nullable=True)
    tier = Column(String(16), nullable=False)  # emergency | crisis | urgent | routine
    reasons = Column(JSON, nullable=False)
    text = Column(Text, nullable=True)  # the patient's words
    # red_flag | missed_checkin | picture | mood_screen | opted_out | unrouted_sms (tasks
    # wait in the queue)
    kind = Column(String(24), nullable=False, default="red_flag")
    # open → acknowledged → resolved; "noted" for routine flags (no page)
    status = Column(String(16), nullable=False, default="open")
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)
    acknowledged_at = Column(UTCDateTime(), nullable=True)
    acknowledged_by = Column(Integer, ForeignKey("clinician.id"), nullable=True)
    resolved_at = Column(UTCDateTime(), nullable=True)
    resolved_by = Column(Integer, ForeignKey("clinician.id"), nullable=True)
    outcome = Column(String(32), nullable=True)  # called_patient | sent_to_ed | scheduled_visit | no_action_needed
    resolution_note = Column(Text, nullable=True)
    page_level = Column(Integer, nullable=False, default=1)  # 1 primary, 2 backup, 3 fallback
    next_page_at = Column(UTCDateTime(), nullable=True, index=True)
    call_by = Column(UTCDateTime(), nullable=True)  # promised to an urgent patient
    call_by_notified = Column(Boolean, nullable=False, default=False)
    # the random code in the alert SMS ("Reply ACK 12 KX7"): an SMS ACK needs it
    ack_code = Column(String(8), nullable=True)
    events = relationship("EscalationEvent", order_by="EscalationEvent.id")


class EscalationEvent(Base):
    """Every transition of an escalation: who, when, what (the audit of the loop)."""

    __tablename__ = "escalation_event"
    id = Column(Integer, primary_key=True)
    escalation_id = Column(Integer, ForeignKey("escalation.id"), nullable=False, index=True)
    at = Column(UTCDateTime(), nullable=False, default=utcnow)
    clinician_id = Column(Integer, ForeignKey("clinician.id"), nullable=True)
    action = Column(String(24), nullable=False)  # opened | paged | acknowledged | resolved | …
    detail = Column(Text, nullable=True)


class AuditLog(Base):
    """Who viewed or changed which patient record."""

    __tablename__ = "audit_log"
    id = Column(Integer, primary_key=True)
    at = Column(UTCDateTime(), nullable=False, default=utcnow, index=True)
    clinician_id = Column(Integer, ForeignKey("clinician.id"), nullable=True)
    patient_id = Column(String(32), nullable=True, index=True)
    action = Column(String(32), nullable=False)  # view_patient | acknowledge | resolve | …
    detail = Column(Text, nullable=True)


class ExerciseSession(Base):
    """One run of a self-management exercise (painpath/content/exercises.yaml).

    `scheduled` sessions (a pacing prompt, an activity review) are started by the
    scheduler at `due_at`; `offered` ones wait for the patient's YES.
    """

    __tablename__ = "exercise_session"
    id = Column(Integer, primary_key=True)
    patient_id = Column(String(32), ForeignKey("patient.id"), nullable=False, index=True)
    exercise = Column(String(32), nullable=False)
    # offered | scheduled | active | paused | completed | stopped | declined | missed
    status = Column(String(16), nullable=False, index=True)
    source = Column(String(16), nullable=False, default="request")  # request|checkin|schedule
    step = Column(Integer, nullable=False, default=0)
    attempts = Column(Integer, nullable=False, default=0)
    data = Column(JSON, nullable=False, default=dict)  # answers: the thought record, …
    due_at = Column(UTCDateTime(), nullable=True, index=True)
    sent_at = Column(UTCDateTime(), nullable=True)  # started by the scheduler (a contact)
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)
    completed_at = Column(UTCDateTime(), nullable=True)


class PacingPlan(Base):
    """A patient's activity pacing plan (painpath/pacing.py does the arithmetic)."""

    __tablename__ = "pacing_plan"
    id = Column(Integer, primary_key=True)
    patient_id = Column(String(32), ForeignKey("patient.id"), nullable=False, index=True)
    activity = Column(String(32), nullable=False)
    status = Column(String(16), nullable=False, default="baseline")  # baseline|active|stopped
    cap = Column(Float, nullable=False)
    baseline_reports = Column(JSON, nullable=False, default=list)
    baseline = Column(Float, nullable=True)
    quota = Column(Float, nullable=True)  # minutes a day
    comfortable = Column(JSON, nullable=False, default=list)
    good_streak = Column(Integer, nullable=False, default=0)
    prompt_time = Column(String(5), nullable=False, default="18:00")  # local HH:MM
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)
    logs = relationship("PacingLog", back_populates="plan", order_by="PacingLog.id")


class PacingLog(Base):
    """One day's pacing report and what it did to the level."""

    __tablename__ = "pacing_log"
    id = Column(Integer, primary_key=True)
    plan_id = Column(Integer, ForeignKey("pacing_plan.id"), nullable=False, index=True)
    outcome = Column(String(20), nullable=False)
    minutes = Column(Float, nullable=True)
    quota_before = Column(Float, nullable=True)
    quota_after = Column(Float, nullable=True)
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)
    plan = relationship("PacingPlan", back_populates="logs")


class Goal(Base):
    """A goal the patient set in an exercise (SMART goal, sleep habit, problem plan)."""

    __tablename__ = "goal"
    id = Column(Integer, primary_key=True)
    patient_id = Column(String(32), ForeignKey("patient.id"), nullable=False, index=True)
    kind = Column(String(32), nullable=False)
    text = Column(Text, nullable=False)
    status = Column(String(16), nullable=False, default="active")  # active|done|replaced
    created_at = Column(UTCDateTime(), nullable=False, default=utcnow)


class ProgramSummary(Base):
    """When the patient last got the weekly self-management summary."""

    __tablename__ = "program_summary"
    patient_id = Column(String(32), ForeignKey("patient.id"), primary_key=True)
    sent_at = Column(UTCDateTime(), nullable=False)


class ScreenStatus(str, enum.Enum):
    """Where a direct safety question stands (painpath/screening.py)."""

    PENDING = "pending"  # asked; the patient's next message answers it
    YES = "yes"
    NO = "no"  # the only answer that settles it
    UNCLEAR = "unclear"
    TIMEOUT = "timeout"  # no reply by `due_at`: escalated by the scheduler


class SafetyScreen(Base):
    """A direct safety question asked after a message (DESIGN.md "When unsure, ask"):
    a screen from painpath/content/screens.yaml, or the crisis follow-up ("Is there
    someone nearby who can stay with you?"). At most one is pending per patient."""

    __tablename__ = "safety_screen"
    __table_args__ = (
        Index("uq_safety_screen_pending", "patient_id", unique=True,
              sqlite_where=text("status = 'pending'"),
              postgresql_where=text("status = 'pending'")),
    )
    id = Column(Integer, primary_key=True)
    patient_id = Column(String(32), ForeignKey("patient.id"), nullable=False, index=True)
    screen_id = Column(String(32), nullable=False)  # a screens.yaml id, or "crisis_followup"
    tier = Column(String(16), nullable=False)  # escalated at on YES, unclear or silence
    flag_tier = Column(String(16), nullable=False)  # the tier of the message that asked it
    question = Column(Text, nullable=False)  # the text the patient was sent
    asked_at = Column(UTCDateTime(), nullable=False)
    due_at = Column(UTCDateTime(), nullable=True, index=True)  # None: no timeout (follow-up)
    status = Column(String(16), nullable=False, default=ScreenStatus.PENDING.value)
    answer_text = Column(Text, nullable=True)
    answered_at = Column(UTCDateTime(), nullable=True)
    # the escalation of the message that asked it, then the one its answer raised
    escalation_id = Column(Integer, ForeignKey("escalation.id"), nullable=True)
    # the form it interrupted, reopened at the same question after a clear NO
    # (None when nothing was in progress or the flag itself stopped it)
    interrupted = Column(String(16), nullable=True)  # checkin | exercise
    checkin_id = Column(Integer, ForeignKey("checkin.id"), nullable=True)
    exercise_session_id = Column(Integer, ForeignKey("exercise_session.id"), nullable=True)


class OutreachHold(Base):
    """A routine contact held back while an emergency or crisis escalation was open
    (painpath/outreach.py), and what became of it when the hold was lifted."""

    __tablename__ = "outreach_hold"
    __table_args__ = (UniqueConstraint("escalation_id", "kind", "ref",
                                       name="uq_outreach_hold_escalation_kind_ref"),)
    id = Column(Integer, primary_key=True)
    patient_id = Column(String(32), ForeignKey("patient.id"), nullable=False, index=True)
    escalation_id = Column(Integer, ForeignKey("escalation.id"), nullable=False, index=True)
    kind = Column(String(16), nullable=False)  # checkin | reminder | exercise | summary | message
    ref = Column(String(64), nullable=False)  # the check-in, session or message id
    detail = Column(Text, nullable=True)
    held_at = Column(UTCDateTime(), nullable=False, default=utcnow)
    released_at = Column(UTCDateTime(), nullable=True, index=True)
    outcome = Column(String(16), nullable=True)  # resumed | skipped (when released)
