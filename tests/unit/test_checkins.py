"""The check-in engine: next item, parsing and storing answers, re-asks, summary."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from painpath import checkins
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.escalation import one_tier_up
from painpath.models import Answer, CheckIn, Escalation, Message

MOOD = ["phq_interest", "phq_down", "gad_nervous", "gad_worry"]  # PHQ-4 at the first check-in


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
                                 "pain_now", "percent_relief",
                                 "phq_interest", "phq_down", "gad_nervous", "gad_worry"]
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
                           "pain_now": 3.0, "percent_relief": 60.0,
                           **{item: None for item in MOOD}}  # finished unasked
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
            "safety_neuro", "safety_headache", "percent_relief", *MOOD]
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
        assert items == ["safety_headache", "pain_now", "percent_relief", *MOOD]


def test_yes_to_an_emergency_safety_question_escalates_with_an_alert(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6, procedure="intrathecal_pump")
    with new_session() as session, session.begin():
        outcome = checkins.submit(session, checkin_id, "safety_pump", "yes")
    assert outcome.stop_checkin is True
    assert "call 911" in outcome.replies[0] and "Do not wait" in outcome.replies[0]
    with new_session() as session:
        escalation = session.execute(select(Escalation)).scalar_one()
        assert escalation.tier == "emergency" and escalation.status == "open"
        assert escalation.reasons == [
            "very sleepy, hard to wake, or slow or shallow breathing (possible overdose)"]
        assert session.get(CheckIn, checkin_id).status == "completed"
        alert = session.execute(select(Message).where(Message.clinician_id.isnot(None))).scalar_one()
        assert alert.to == "+14155550177" and alert.status == "queued"
        assert f"#{escalation.id}" in alert.body and "S.L." in alert.body
        assert "pump" not in alert.body.lower()


def test_urgent_safety_answer_keeps_the_checkin_going(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        outcome = checkins.submit(session, checkin_id, "safety_headache", "yes")
    assert not outcome.stop_checkin
    assert "will call you by" in outcome.replies[0] and "+14155550198" in outcome.replies[0]


def _tiers() -> list[str]:
    with new_session() as session:
        return list(session.execute(select(Escalation.tier).order_by(Escalation.id)).scalars())


def _tiers_in(session: Session) -> list[str]:
    session.flush()
    return list(session.execute(select(Escalation.tier).order_by(Escalation.id)).scalars())


def _items(checkin_id: int) -> list[str]:
    with new_session() as session:
        return list(session.get(CheckIn, checkin_id).items)


# --- Pump (CLINICAL.md §1.8): overdose signs are an emergency, alarm/withdrawal urgent ---

def test_pump_checkins_ask_overdose_signs_then_alarm_and_withdrawal(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6, procedure="intrathecal_pump")
    # no pump drug recorded: both withdrawal questions (baclofen, then opioid; test_pumps.py)
    assert _items(checkin_id)[:4] == ["safety_pump", "safety_pump_withdrawal",
                                      "safety_pump_opioid_withdrawal", "safety_neuro"]
    text = checkins.question("safety_pump").text.lower()
    assert "hard to wake" in text and "slow or shallow" in text
    assert checkins.question("safety_pump").flag_tier == "emergency"
    assert "alarm" in checkins.question("safety_pump_withdrawal").text.lower()
    assert checkins.question("safety_pump_withdrawal").flag_tier == "urgent"


def test_pump_withdrawal_yes_is_urgent_and_high_fever_raises_it(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6, procedure="intrathecal_pump")
    with new_session() as session, session.begin():
        checkins.submit(session, checkin_id, "safety_pump", "no")
        outcome = checkins.submit(session, checkin_id, "safety_pump_withdrawal", "yes")
        assert outcome.follow_up == "safety_pump_withdrawal_severe" and not outcome.stop_checkin
        assert _tiers_in(session) == ["urgent"]
        severe = checkins.submit(session, checkin_id, "safety_pump_withdrawal_severe", "yes")
    assert severe.stop_checkin and "call 911" in severe.replies[0]
    assert _tiers() == ["urgent", "emergency"]


# --- Swallow (CLINICAL.md §1.4): YES means the problem ---

def test_swallow_question_asks_about_trouble_so_no_means_normal(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6, procedure="sympathetic_block")
    assert "safety_swallow" in _items(checkin_id)
    q = checkins.question("safety_swallow")
    assert q.text == "Do you have trouble swallowing sips of water? Reply YES or NO."
    assert q.flag_tier == "urgent"
    with new_session() as session, session.begin():
        assert checkins.submit(session, checkin_id, "safety_swallow", "no").value is False
    assert _tiers() == []


def test_swallow_yes_is_urgent(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6, procedure="sympathetic_block")
    with new_session() as session, session.begin():
        outcome = checkins.submit(session, checkin_id, "safety_swallow", "yes it's hard")
    assert not outcome.stop_checkin and "will call you by" in outcome.replies[0]
    assert _tiers() == ["urgent"]


# --- Neuro: "since your last check-in", expected numbness vs getting worse ---

def test_neuro_yes_is_a_nurse_call_and_asks_the_follow_up_next(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        outcome = checkins.submit(session, checkin_id, "safety_neuro", "yes")
        assert outcome.follow_up == "safety_neuro_change"
        assert not outcome.stop_checkin and "will call you by" in outcome.replies[0]
        checkin = session.get(CheckIn, checkin_id)
        assert checkins.remaining_items(session, checkin) == [
            "safety_neuro_change", "safety_headache", "pain_now", "percent_relief", *MOOD]
        same = checkins.submit(session, checkin_id, "safety_neuro_change", "same, improving")
    assert same.status == "accepted" and same.value is False and same.replies == []
    assert not same.stop_checkin
    assert _tiers() == ["urgent"]
    with new_session() as session:
        assert session.get(CheckIn, checkin_id).status == "in_progress"


def test_neuro_follow_up_getting_worse_is_an_emergency(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        checkins.submit(session, checkin_id, "safety_neuro", "yes")
        worse = checkins.submit(session, checkin_id, "safety_neuro_change", "getting worse")
    assert worse.value is True and worse.stop_checkin
    assert "call 911" in worse.replies[0]
    assert _tiers() == ["urgent", "emergency"]
    with new_session() as session:
        escalation = session.execute(select(Escalation).where(
            Escalation.tier == "emergency")).scalar_one()
        assert escalation.reasons == [
            "weakness or numbness unexpected, worse or spreading, or bladder/bowel change"]


def test_a_follow_up_is_put_in_once_and_not_asked_after_no(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        checkins.submit(session, checkin_id, "safety_neuro", "no")
    assert "safety_neuro_change" not in _items(checkin_id)
    with new_session() as session, session.begin():
        checkins.submit(session, checkin_id, "safety_headache", "yes")
    assert _items(checkin_id)[:3] == ["safety_neuro", "safety_headache", "safety_headache_severe"]
    assert checkins.with_follow_up(["a", "b"], "a", "f") == ["a", "f", "b"]
    assert checkins.with_follow_up(["a", "f", "b"], "a", "f") == ["a", "f", "b"]


def test_neuro_asks_since_the_procedure_first_then_since_the_last_checkin(clinic: str) -> None:
    first = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        assert checkins.ask_text(session, first, "safety_neuro").startswith(
            "Since your procedure, have you had any of these: NEW weakness")
        checkins.submit(session, first, "safety_neuro", "no")
        checkins.finish(session, first)
        later = checkins.next_checkin(session, session.get(CheckIn, first).patient_id)
        checkins.begin(session, later)
        assert checkins.ask_text(session, later.id, "safety_neuro").startswith(
            "Since your last check-in, have you had any of these: new or worse weakness")
        assert checkins.ask_text(session, later.id, "safety_neuro", reask=True) == \
            checkins.question("safety_neuro").reask
        assert "call 911 now" in checkins.ask_text(session, later.id, "safety_neuro_change")
        assert "{" not in checkins.ask_text(session, later.id, "safety_infection_severe")


def test_a_missed_first_checkin_still_asks_since_the_procedure(clinic: str) -> None:
    first = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        checkins.finish(session, first)  # nothing answered
        later = checkins.next_checkin(session, session.get(CheckIn, first).patient_id)
        assert checkins.ask_text(session, later.id, "safety_neuro").startswith(
            "Since your procedure")


# --- A safety question answered unclearly twice goes one tier up ---

def test_unclear_twice_on_an_urgent_question_is_an_emergency(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        assert checkins.submit(session, checkin_id, "safety_headache", "hmm").status == "reask"
        assert _tiers_in(session) == []
        outcome = checkins.submit(session, checkin_id, "safety_headache", "not sure")
    assert outcome.status == "unclear" and outcome.value == "unclear"
    assert outcome.stop_checkin
    assert outcome.replies[0].startswith("I couldn't tell your answer")
    assert "call 911" in outcome.replies[1]
    with new_session() as session:
        escalation = session.execute(select(Escalation)).scalar_one()
        assert escalation.tier == "emergency"
        assert escalation.reasons == ["safety question not answered clearly (asked twice): "
                                      "Headache worse sitting or standing"]
        answer = session.execute(
            select(Answer).where(Answer.item == "safety_headache")).scalar_one()
        assert (answer.status, answer.value, answer.attempts) == ("unclear", None, 2)
        assert checkins.final_answer(session, checkin_id, "safety_headache") == (True, "unclear")


def test_unclear_twice_on_an_emergency_follow_up_stays_an_emergency(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        checkins.submit(session, checkin_id, "safety_neuro", "yes")
        checkins.submit(session, checkin_id, "safety_neuro_change", "dunno")
        outcome = checkins.submit(session, checkin_id, "safety_neuro_change", "yes")
    assert outcome.status == "unclear" and outcome.stop_checkin
    assert _tiers() == ["urgent", "emergency"]


def test_one_tier_up() -> None:
    assert [one_tier_up(t) for t in ("routine", "urgent", "emergency", "crisis")] == [
        "urgent", "emergency", "emergency", "crisis"]


def test_an_unclear_answer_to_a_plain_question_still_moves_on(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        checkins.submit(session, checkin_id, "percent_relief", "lots")
        outcome = checkins.submit(session, checkin_id, "percent_relief", "hmm")
    assert (outcome.status, outcome.replies) == ("unanswered", ["That's OK, let's move on."])
    assert _tiers() == []


# --- Infection and headache: a follow-up raises them to an emergency ---

@pytest.mark.parametrize(("parent", "follow_up", "procedure"), [
    ("safety_infection", "safety_infection_severe", "prp_injection"),
    ("safety_headache", "safety_headache_severe", "epidural_steroid_injection"),
])
def test_stiff_neck_or_confusion_after_a_yes_is_an_emergency(
        clinic: str, parent: str, follow_up: str, procedure: str) -> None:
    checkin_id = start(clinic, baseline=6, procedure=procedure)
    q = checkins.question(follow_up)
    assert q.parent == parent and q.flag_tier == "emergency"
    assert "stiff neck" in q.text and "confusion" in q.text and "very unwell" in q.text
    with new_session() as session, session.begin():
        if parent not in session.get(CheckIn, checkin_id).items:  # PRP: infection from day 1
            checkin = session.get(CheckIn, checkin_id)
            checkin.items = [parent, *checkin.items]
        first = checkins.submit(session, checkin_id, parent, "yes")
        assert first.follow_up == follow_up and not first.stop_checkin
        outcome = checkins.submit(session, checkin_id, follow_up, "yes my neck is stiff")
    assert outcome.stop_checkin and "call 911" in outcome.replies[0]
    assert _tiers() == ["urgent", "emergency"]


def test_no_to_the_infection_follow_up_stays_urgent(clinic: str) -> None:
    checkin_id = start(clinic, baseline=6)
    with new_session() as session, session.begin():
        checkin = session.get(CheckIn, checkin_id)
        checkin.items = ["safety_infection", *checkin.items]
        checkins.submit(session, checkin_id, "safety_infection", "yes")
        outcome = checkins.submit(session, checkin_id, "safety_infection_severe", "no")
    assert outcome.value is False and not outcome.stop_checkin and outcome.replies == []
    assert _tiers() == ["urgent"]
