"""The check-in engine: next item, parsing and storing answers, re-asks, summary."""
from __future__ import annotations

from sqlalchemy import select

from painpath import checkins
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.models import Answer, CheckIn, Escalation, Message


def start(clinic: str, baseline: float | None = None, procedure: str = "epidural_steroid_injection") -> int:
    with new_session() as session, session.begin():
        patient = enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550112", procedure=procedure,
            procedure_at="2026-11-20T09:30:00-05:00", name="Sam Lee", baseline_pain=baseline))
        checkin = checkins.next_checkin(session, patient.id)
        intro, items = checkins.begin(session, checkin)
        assert "Sam" in intro and "Test Pain Clinic" in intro
        assert items == checkin.items
        return checkin.id


def test_first_checkin_items_follow_the_content(clinic: str) -> None:
    checkin_id = start(clinic)
    with new_session() as session:
        checkin = session.get(CheckIn, checkin_id)
        assert checkin.key == "6h"
        assert checkin.items == ["safety_neuro", "safety_headache", "pain_baseline",
                                 "pain_now", "percent_relief"]
        assert checkin.status == "in_progress"


def test_answers_are_parsed_stored_and_summarised(clinic: str) -> None:
    checkin_id = start(clinic)
    with new_session() as session, session.begin():
        for item, text in [("safety_neuro", "no"), ("safety_headache", "nope"),
                           ("pain_baseline", "an 8"), ("pain_now", "was 8 now 3"),
                           ("percent_relief", "about 60%")]:
            outcome = checkins.submit(session, checkin_id, item, text)
            assert outcome.status == "accepted", (item, text)
        summary = checkins.finish(session, checkin_id)
    assert "8 before the procedure → 3 now" in summary and "60%" in summary
    with new_session() as session:
        answers = {a.item: a.value for a in session.execute(select(Answer)).scalars()}
        assert answers == {"safety_neuro": 0.0, "safety_headache": 0.0, "pain_baseline": 8.0,
                           "pain_now": 3.0, "percent_relief": 60.0}
        assert session.get(CheckIn, checkin_id).status == "completed"


def test_reask_then_unanswered_after_two_failures(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        assert checkins.submit(session, checkin_id, "pain_now", "terrible").status == "reask"
        outcome = checkins.submit(session, checkin_id, "pain_now", "15")
        assert outcome.status == "unanswered"
        assert outcome.replies == ["That's OK, let's move on."]
        checkin = session.get(CheckIn, checkin_id)
        assert checkins.remaining_items(session, checkin) == [
            "safety_neuro", "safety_headache", "percent_relief"]
    with new_session() as session:
        answer = session.execute(select(Answer).where(Answer.item == "pain_now")).scalar_one()
        assert (answer.status, answer.value, answer.attempts) == ("unanswered", None, 2)


def test_pause_keeps_answers_and_resume_continues(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        checkins.submit(session, checkin_id, "safety_neuro", "no")
        checkins.pause(session, checkin_id)
    with new_session() as session, session.begin():
        checkin = checkins.next_checkin(session, session.get(CheckIn, checkin_id).patient_id)
        assert checkin.id == checkin_id and checkin.status == "paused"
        intro, items = checkins.begin(session, checkin)
        assert "pick up" in intro
        assert items == ["safety_headache", "pain_now", "percent_relief"]


def test_yes_to_a_safety_question_escalates_with_an_alert(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        outcome = checkins.submit(session, checkin_id, "safety_neuro", "yes")
    assert outcome.stop_checkin is True
    assert "call 911 now" in outcome.replies[0]
    with new_session() as session:
        escalation = session.execute(select(Escalation)).scalar_one()
        assert escalation.tier == "emergency" and escalation.status == "open"
        alert = session.execute(select(Message).where(Message.clinician_id.isnot(None))).scalar_one()
        assert alert.to == "+14155550177" and alert.status == "queued"
        assert f"#{escalation.id}" in alert.body and "S.L." in alert.body
        assert "epidural" not in alert.body.lower()


def test_urgent_safety_answer_keeps_the_checkin_going(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        outcome = checkins.submit(session, checkin_id, "safety_headache", "yes")
    assert not outcome.stop_checkin
    assert "will call you by" in outcome.replies[0] and "+14155550198" in outcome.replies[0]
