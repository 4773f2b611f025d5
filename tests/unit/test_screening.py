"""Direct safety questions (painpath/screening.py) and the crisis rules that follow
them (painpath/crisis.py): asked once, answered by the next message, escalated on
YES, unclear or silence, settled only by a clear NO. On SQLite, and on PostgreSQL
with `make test-pg`."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from painpath import checkins, programs, screening
from painpath.crisis import open_crisis, with_safety_numbers
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.escalation import handle_red_flag, repage_due, resolve
from painpath.inbound import neutralise_command
from painpath.messaging import ConsoleGateway, set_gateway
from painpath.outreach import WELCOME
from painpath.models import (
    CheckIn,
    Clinician,
    Escalation,
    ExerciseSession,
    Message,
    SafetyScreen,
    ScreenStatus,
)
from painpath.scheduling import start_due_checkins
from painpath.sms_text import segments, to_gsm
from painpath.screening import FOLLOWUP, Flag

NOW = datetime(2026, 11, 24, 16, 0, tzinfo=timezone.utc)  # 10:00 in Chicago
NURSE = "+14155550177"  # the `clinic` fixture's on-call nurse


@pytest.fixture
def patient_id(clinic: str) -> str:
    set_gateway(ConsoleGateway())
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550131", procedure="epidural_steroid_injection",
            procedure_at="2026-11-20T09:30:00-06:00", timezone="America/Chicago",
            name="Robin Vale", baseline_pain=6)).id


def ask(patient_id: str, screen: str, flag_tier: str = "none", now: datetime = NOW,
        **where: object) -> SafetyScreen | None:
    with new_session() as session, session.begin():
        return screening.ask(session, patient_id, screen, flag_tier, now=now, **where)  # type: ignore[arg-type]


def answer(patient_id: str, text: str, flag: Flag | None = None,
           now: datetime = NOW + timedelta(minutes=2)) -> screening.ScreenTurn:
    with new_session() as session, session.begin():
        return screening.answer(session, patient_id, text, flag, now=now)


def escalations(patient_id: str) -> list[Escalation]:
    with new_session() as session:
        return list(session.execute(select(Escalation).where(
            Escalation.patient_id == patient_id).order_by(Escalation.id)).scalars())


def pages() -> list[str]:
    with new_session() as session:
        return list(session.execute(select(Message.body).where(Message.to == NURSE)
                                    .order_by(Message.id)).scalars())


def rows(patient_id: str) -> list[SafetyScreen]:
    with new_session() as session:
        return list(session.execute(select(SafetyScreen).where(
            SafetyScreen.patient_id == patient_id).order_by(SafetyScreen.id)).scalars())


def started_checkin(patient_id: str) -> int:
    with new_session() as session, session.begin():
        checkin = checkins.next_checkin(session, patient_id)
        checkins.begin(session, checkin)
        return checkin.id


def test_a_screen_is_recorded_with_its_due_time_and_never_stacked(patient_id: str) -> None:
    row = ask(patient_id, "neuro")
    assert row is not None and row.status == ScreenStatus.PENDING
    assert row.due_at == NOW + timedelta(minutes=10)
    assert row.question.startswith("Is the weakness or numbness new")
    assert ask(patient_id, "chest") is None  # a second one while it is pending: not asked
    with new_session() as session:
        assert screening.question(session, patient_id) == row.question
    assert [r.screen_id for r in rows(patient_id)] == ["neuro"]


def test_yes_escalates_at_the_screens_tier_and_stops_the_checkin(patient_id: str) -> None:
    checkin_id = started_checkin(patient_id)
    ask(patient_id, "neuro", interrupted="checkin", checkin_id=checkin_id)
    turn = answer(patient_id, "yes it's spreading")
    assert "call 911" in turn.replies[0] and turn.resume is None and not turn.asked
    esc = escalations(patient_id)[-1]
    assert (esc.tier, esc.status) == ("emergency", "open")
    assert esc.reasons == ["screen neuro answered YES"]
    assert pages()[-1].startswith(f"PainPath alert #{esc.id}: EMERGENCY")
    assert rows(patient_id)[-1].status == "yes" and rows(patient_id)[-1].escalation_id == esc.id
    with new_session() as session:
        assert session.get(CheckIn, checkin_id).status == "paused"


@pytest.mark.parametrize("reply", ["not sure", "maybe", "no but it feels different"])
def test_an_unclear_answer_escalates_too(patient_id: str, reply: str) -> None:
    ask(patient_id, "chest")
    turn = answer(patient_id, reply)
    assert "call 911" in turn.replies[0]
    esc = escalations(patient_id)[-1]
    assert (esc.tier, esc.reasons) == ("emergency", ["screen chest answered unclearly"])
    assert rows(patient_id)[-1].status == "unclear"


def test_a_clear_no_notes_it_and_the_checkin_goes_on(patient_id: str) -> None:
    checkin_id = started_checkin(patient_id)
    ask(patient_id, "neuro", interrupted="checkin", checkin_id=checkin_id)
    turn = answer(patient_id, "no")
    assert turn.replies == ["Thanks, noted. I've passed that on to your care team."]
    assert turn.resume == "checkin" and turn.checkin_id == checkin_id
    esc = escalations(patient_id)[-1]
    assert (esc.tier, esc.status, esc.reasons) == ("routine", "noted", ["screen neuro answered NO"])
    assert pages() == []
    with new_session() as session:
        assert session.get(CheckIn, checkin_id).status == "in_progress"


def test_a_clear_no_resumes_the_paused_exercise(patient_id: str) -> None:
    with new_session() as session, session.begin():
        row = programs.start(session, patient_id, "breathing", now=NOW)
        row.step, exercise_id = 2, row.id
        programs.pause_active(session, patient_id)
    ask(patient_id, "neuro", interrupted="exercise", exercise_session_id=exercise_id)
    turn = answer(patient_id, "nope")
    assert (turn.resume, turn.exercise_session_id) == ("exercise", exercise_id)
    with new_session() as session:
        row = session.get(ExerciseSession, exercise_id)
        assert (row.status, row.step) == ("active", 2)


def test_a_no_adds_to_the_open_escalation_of_the_flag_that_asked(patient_id: str) -> None:
    with new_session() as session, session.begin():
        flagged = handle_red_flag(session, patient_id, "urgent", ["pump alarm"], "it beeped",
                                  now=NOW)
    ask(patient_id, "nurse_call", "urgent", escalation_id=flagged.escalation_id)
    answer(patient_id, "no thanks")
    [esc] = escalations(patient_id)
    assert esc.reasons == ["pump alarm", "screen nurse_call answered NO"]


def test_the_answer_is_triaged_too(patient_id: str) -> None:
    ask(patient_id, "neuro")
    turn = answer(patient_id, "no", Flag("crisis", ["thoughts of suicide"], "asq5"))
    assert turn.replies[0].startswith("Thanks, noted")
    assert "call or text 988 now" in turn.replies[1]
    assert turn.asked and turn.resume is None  # ASQ item 5 is asked next
    assert [(r.screen_id, r.status) for r in rows(patient_id)] == [("neuro", "no"),
                                                                   ("asq5", "pending")]
    assert [e.tier for e in escalations(patient_id)] == ["routine", "crisis"]
    assert "CRISIS" in pages()[-1]


def test_the_answers_own_screen_is_not_asked_again_or_below_what_was_escalated(
        patient_id: str) -> None:
    ask(patient_id, "neuro")
    turn = answer(patient_id, "yes it is getting worse", Flag("none", [], "nurse_call"))
    assert not turn.asked and len(turn.replies) == 1  # the 911 reply covers it
    ask(patient_id, "nurse_call")
    turn = answer(patient_id, "no", Flag("none", [], "nurse_call"))
    assert not turn.asked


def test_silence_escalates_once_with_the_tiers_reply(patient_id: str) -> None:
    ask(patient_id, "bleeding", interrupted="checkin", checkin_id=started_checkin(patient_id))
    assert screening.expire_due(NOW + timedelta(minutes=9)) == []
    with new_session() as session:  # the welcome SMS and the check-in's question
        before = set(session.execute(select(Message.id)).scalars())
    sent = screening.expire_due(NOW + timedelta(minutes=10, seconds=5))
    esc = escalations(patient_id)[-1]
    assert (esc.tier, esc.reasons) == ("emergency", ["screen bleeding: no reply within 10 min"])
    with new_session() as session:
        bodies = {m.id: m.body for m in session.execute(select(Message)).scalars()
                  if m.id not in before}
    assert sorted(sent) == sorted(bodies)  # the page and the patient's SMS, to send now
    assert any("call 911" in b for b in bodies.values())
    assert screening.expire_due(NOW + timedelta(hours=1)) == []  # once, across ticks
    assert rows(patient_id)[-1].status == "timeout"


def test_overlapping_ticks_page_once(patient_id: str) -> None:
    ask(patient_id, "chest")
    later = NOW + timedelta(minutes=11)
    results: list[list[int]] = []
    ready = threading.Barrier(2)

    def tick() -> None:
        ready.wait()
        results.append(screening.expire_due(later))

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) > 0 for r in results) == [False, True]
    assert len(pages()) == 1 and len(escalations(patient_id)) == 1


def test_an_answer_after_the_timeout_reaches_the_escalation(patient_id: str) -> None:
    ask(patient_id, "infection")
    screening.expire_due(NOW + timedelta(minutes=12))
    turn = answer(patient_id, "no", now=NOW + timedelta(minutes=15))
    assert turn.replies[0].startswith("Thanks for answering. Your care team has already")
    assert escalations(patient_id)[-1].reasons[-1] == \
        "screen infection answered NO after the timeout"
    assert answer(patient_id, "hello").closed  # nothing is waiting any more


def test_asq5_yes_after_a_crisis_is_imminent_and_pages_again(patient_id: str) -> None:
    with new_session() as session, session.begin():
        crisis = handle_red_flag(session, patient_id, "crisis", ["thoughts of suicide"],
                                 "what's the point", now=NOW)
    ask(patient_id, "asq5", "crisis", escalation_id=crisis.escalation_id)
    turn = answer(patient_id, "yes")
    assert turn.replies[0].startswith("Please call or text 988 now, or call 911.")
    [esc] = escalations(patient_id)
    assert "imminent" in esc.reasons and "screen asq5 answered YES" in esc.reasons
    assert pages()[-1].startswith(f"PainPath alert #{esc.id}: CRISIS (IMMINENT)")
    assert len(pages()) == 2  # the first page, then the imminent one
    assert turn.asked and rows(patient_id)[-1].screen_id == FOLLOWUP


def test_asq5_unclear_without_a_crisis_raises_an_imminent_one(patient_id: str) -> None:
    ask(patient_id, "asq5", "none")
    answer(patient_id, "idk")
    [esc] = escalations(patient_id)
    assert esc.tier == "crisis" and "imminent" in esc.reasons
    assert "(IMMINENT)" in pages()[-1]


def test_asq5_no_after_a_crisis_promises_a_call_today_in_local_time(patient_id: str) -> None:
    with new_session() as session, session.begin():
        crisis = handle_red_flag(session, patient_id, "crisis", ["thoughts of suicide"], "…",
                                 now=NOW)
    ask(patient_id, "asq5", "crisis", escalation_id=crisis.escalation_id)
    turn = answer(patient_id, "no i'm not", now=NOW)
    # 16:00 UTC + 2 h is 12:00 in Chicago, the patient's zone
    assert "will call you today by 12:00 PM" in turn.replies[0] and "988" in turn.replies[0]
    [esc] = escalations(patient_id)
    assert esc.call_by == NOW + timedelta(hours=2) and "imminent" not in esc.reasons
    assert not turn.asked and len(pages()) == 1


def test_asq5_silence_is_imminent_and_asks_the_followup(patient_id: str) -> None:
    with new_session() as session, session.begin():
        crisis = handle_red_flag(session, patient_id, "crisis", ["thoughts of suicide"], "…",
                                 now=NOW)
    ask(patient_id, "asq5", "crisis", escalation_id=crisis.escalation_id)
    screening.expire_due(NOW + timedelta(minutes=10))
    with new_session() as session:
        to_patient = list(session.execute(select(Message.body).where(
            Message.patient_id == patient_id, Message.purpose.is_distinct_from(WELCOME))
            .order_by(Message.id)).scalars())
    assert to_patient[0].startswith("Please call or text 988 now, or call 911.")
    assert "someone nearby who can stay with you" in to_patient[1] and "988" in to_patient[1]
    assert "(IMMINENT)" in pages()[-1]
    assert rows(patient_id)[-1].screen_id == FOLLOWUP


@pytest.mark.parametrize("reply,reply_start,note", [
    ("yes my sister is here", "I'm glad someone is with you",
     "crisis follow-up: someone nearby can stay with the patient"),
    ("no", "Thank you for telling me. Please call or text 988 now",
     "crisis follow-up: NO ONE nearby to stay with the patient"),
    ("dunno", "Thank you for telling me. Please call or text 988 now",
     "crisis follow-up: unclear whether anyone can stay with the patient"),
])
def test_the_crisis_followup_is_answered_with_the_numbers_and_a_note(
        patient_id: str, reply: str, reply_start: str, note: str) -> None:
    with new_session() as session, session.begin():
        crisis = handle_red_flag(session, patient_id, "crisis", ["thoughts of suicide"], "…",
                                 now=NOW)
    ask(patient_id, FOLLOWUP, "crisis", escalation_id=crisis.escalation_id)
    turn = answer(patient_id, reply)
    assert turn.replies[0].startswith(reply_start)
    assert "988" in turn.replies[0] and "911" in turn.replies[0]
    assert escalations(patient_id)[-1].reasons[-1] == note


def test_every_reply_carries_the_numbers_until_the_crisis_is_resolved(patient_id: str) -> None:
    with new_session() as session, session.begin():
        assert with_safety_numbers(session, patient_id, ["Hello!"]) == ["Hello!"]
        crisis = handle_red_flag(session, patient_id, "crisis", ["thoughts of suicide"], "…")
    with new_session() as session:
        plain, with_988, long = with_safety_numbers(
            session, patient_id, ["Hello!", "call or text 988", "x" * 300])[:3]
        assert plain == "Hello! If you are in danger, call or text 988 now, or call 911."
        assert with_988 == "call or text 988" and long == "x" * 300
        assert with_safety_numbers(session, patient_id, ["x" * 300])[1].startswith(
            "If you are in danger")
        nurse = session.execute(select(Clinician.id)).scalar_one()
    with new_session() as session, session.begin():
        resolve(session, crisis.escalation_id, nurse, "called_patient")
    with new_session() as session:
        assert open_crisis(session, patient_id) is None
        assert with_safety_numbers(session, patient_id, ["Hello!"]) == ["Hello!"]


def test_the_numbers_join_a_reply_only_when_both_fit_two_segments_as_sent(patient_id: str) -> None:
    """A reply with one character outside GSM-7 (Spanish í, an emoji) is UCS-2:
    two segments hold 134 characters, not 306."""
    with new_session() as session, session.begin():
        handle_red_flag(session, patient_id, "crisis", ["thoughts of suicide"], "…")
    spanish = "Gracias por decírmelo. " * 4  # 92 characters, UCS-2
    with new_session() as session:
        out = with_safety_numbers(session, patient_id, [spanish, "x" * 230])
    assert out[0] == spanish and out[1].startswith("If you are in danger")
    assert out[2] == "x" * 230 + " If you are in danger, call or text 988 now, or call 911."
    assert all(segments(to_gsm(text)) <= 2 for text in out)


def test_no_checkin_starts_while_a_question_is_pending(patient_id: str) -> None:
    ask(patient_id, "nurse_call")
    calls: list[str] = []
    assert start_due_checkins(NOW, starter=calls.append).started == [] and calls == []
    answer(patient_id, "no")
    assert start_due_checkins(NOW, starter=calls.append).started and calls == [patient_id]


@pytest.mark.parametrize("text,expected", [
    ("/I want to end my life tonight", "I want to end my life tonight"),
    ("  // /start_checkin", "start_checkin"),
    ("/", "?"),
    ("no / maybe", "no / maybe"),
    ("I want to end my life tonight", "I want to end my life tonight"),
])
def test_a_leading_slash_is_never_an_intent(text: str, expected: str) -> None:
    assert neutralise_command(text) == expected


def test_a_silent_followup_is_a_note_and_stops_holding_outreach(patient_id: str) -> None:
    with new_session() as session, session.begin():
        crisis = handle_red_flag(session, patient_id, "crisis", ["thoughts of suicide"], "…",
                                 now=NOW)
    ask(patient_id, FOLLOWUP, "crisis", escalation_id=crisis.escalation_id)
    before = len(pages())
    assert screening.expire_due(NOW + timedelta(minutes=59)) == []
    assert screening.expire_due(NOW + timedelta(minutes=61)) == []  # no page, no message
    assert len(pages()) == before and rows(patient_id)[-1].status == "timeout"
    assert escalations(patient_id)[-1].reasons[-1] == \
        "crisis follow-up: no answer within 60 min"
    with new_session() as session:
        assert screening.pending(session, patient_id) is None
    # an answer that comes later is still answered, with the numbers, and noted
    turn = answer(patient_id, "no", now=NOW + timedelta(minutes=70))
    assert "988" in turn.replies[0] and "911" in turn.replies[0]
    assert escalations(patient_id)[-1].reasons[-1] == \
        "crisis follow-up: NO ONE nearby to stay with the patient"


def test_an_overdue_same_day_call_keeps_the_crisis_numbers(patient_id: str) -> None:
    with new_session() as session, session.begin():
        crisis = handle_red_flag(session, patient_id, "crisis", ["thoughts of suicide"], "…",
                                 now=NOW)
    ask(patient_id, "asq5", "crisis", escalation_id=crisis.escalation_id)
    answer(patient_id, "no", now=NOW)
    with new_session() as session, session.begin():
        escalation = session.get(Escalation, crisis.escalation_id)
        escalation.status = "acknowledged"  # the nurse saw it but has not called yet
        repage_due(session, NOW + timedelta(hours=2, minutes=1))
    with new_session() as session:
        told = session.execute(select(Message.body).where(
            Message.patient_id == patient_id, Message.purpose.is_distinct_from(WELCOME))
        ).scalars().all()
    assert len(told) == 1 and "hasn't reached you yet" in told[0] and "988" in told[0]
