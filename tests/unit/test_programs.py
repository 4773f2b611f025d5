"""The self-management engine (painpath/programs.py): every exercise end to end,
exits and resume, offers after a check-in, pacing over days, the scheduler's part."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from painpath import checkins, programs
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll
from painpath.sms_text import fits, is_gsm, segments, to_gsm
from painpath.models import (
    Answer,
    CheckIn,
    Escalation,
    ExerciseSession,
    Goal,
    Message,
    PacingPlan,
    Patient,
    ProgramSummary,
)

PROC_AT = "2026-11-20T09:30:00-06:00"
NOW = datetime(2026, 11, 25, 16, 0, tzinfo=timezone.utc)  # 10:00 in Chicago


def patient(clinic: str, procedure: str = "epidural_steroid_injection", phone: str = "+14155550112",
            procedure_at: str = PROC_AT) -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone=phone, procedure=procedure, procedure_at=procedure_at,
            name="Sam Lee", timezone="America/Chicago")).id


def run(patient_id: str, exercise: str, replies: list[str], now: datetime = NOW) -> tuple[int, list[str]]:
    """Start `exercise`, answer each prompt with `replies`; returns (session id, all texts)."""
    texts = []
    with new_session() as session, session.begin():
        row = programs.start(session, patient_id, exercise, now=now)
        session_id = row.id
        texts.append(programs.prompt(row))
    for reply in replies:
        with new_session() as session, session.begin():
            turn = programs.advance(session, session_id, reply, now=now)
            texts.extend(turn.replies)
            row = session.get(ExerciseSession, session_id)
            if turn.done:
                break
            texts.append(programs.prompt(row))
    return session_id, texts


def status(session_id: int) -> tuple[str, dict[str, Any]]:
    with new_session() as session:
        row = session.get(ExerciseSession, session_id)
        return row.status, dict(row.data)


def test_content_loads_and_every_message_fits_two_sms() -> None:
    p = programs.load_programs()
    assert {"breathing", "relaxation", "thought_record", "activation", "sleep", "problem_solving",
            "smart_goal", "mindfulness"} <= {e for e, x in p.exercises.items() if x.offerable}
    for exercise in p.exercises.values():
        for step in exercise.steps:
            assert fits(step.text) and fits(step.gentle or "") and fits(step.restricted or "")
        assert exercise.sources, exercise.id
    forbidden = ("mg", "dose", "opioid", "ibuprofen", "medication", "diagnos")
    for text in [m for m in p.messages.values()] + [s.text for e in p.exercises.values()
                                                       for s in e.steps]:
        assert not any(f" {word}" in text.lower() for word in forbidden), text


def test_breathing_runs_to_the_end_and_keeps_the_ratings(clinic: str) -> None:
    pid = patient(clinic)
    session_id, texts = run(pid, "breathing", ["no", "ok", "7", "ok", "done", "3"])
    assert texts[0].startswith("Belly breathing (about 3 min)") and "worrying" in texts[0]
    assert "dizzy" in " ".join(texts)
    assert texts[-1].startswith("Tension 7 before, 3 after")
    state, data = status(session_id)
    assert state == "completed" and data["tension_before"] == 7 and data["tension_after"] == 3
    assert all(fits(t) for t in texts)


def test_relaxation_skips_tensing_the_treated_area(clinic: str) -> None:
    pid = patient(clinic, procedure="scs_implant")
    _, texts = run(pid, "relaxation", ["no"] + ["ok"] * 7 + ["8"])
    joined = " ".join(texts)
    assert "skip this group for you, with no tensing, bracing or twisting" in joined
    assert "gently draw your tummy in" not in joined
    assert "make gentle fists" in joined  # other groups as usual
    pid2 = patient(clinic, procedure="prp_injection", phone="+14155550113")
    _, texts = run(pid2, "relaxation", ["no"] + ["ok"] * 7 + ["8"])
    assert "gently draw your tummy in" in " ".join(texts)


def test_thought_record_is_stored_step_by_step(clinic: str) -> None:
    pid = patient(clinic)
    answers = ["no", "lying awake at 3am", "this will never get better", "80",
               "it's been months", "I walked further last week than in June",
               "Even though it's slow, some things are improving", "a 50"]
    session_id, texts = run(pid, "thought_record", answers)
    state, data = status(session_id)
    assert state == "completed"
    assert data["situation"] == "lying awake at 3am"
    assert data["thought"] == "this will never get better"
    assert (data["feeling_before"], data["feeling_after"]) == (80, 50)
    assert data["balanced"].startswith("Even though")
    assert "from 80 to 50" in texts[-1]
    with new_session() as session:
        shown = programs.progress(session, pid)["thought_records"]
    assert shown[0]["balanced"].startswith("Even though")


def test_an_unusable_number_is_asked_again_once_then_left_empty(clinic: str) -> None:
    pid = patient(clinic)
    session_id, texts = run(pid, "mindfulness", ["no", "ok", "ok", "ok", "ok", "lovely", "hmm"])
    assert "Please reply with one number from 0 to 10" in texts[-2]
    state, data = status(session_id)
    assert state == "completed" and data["rating"] is None


@pytest.mark.parametrize("word,expected", [("later", "paused"), ("Not now", "paused"),
                                           ("skip", "stopped"), ("STOP", "stopped")])
def test_exit_words_leave_cleanly(clinic: str, word: str, expected: str) -> None:
    pid = patient(clinic)
    session_id, texts = run(pid, "sleep", ["no", "ok", word])
    assert status(session_id)[0] == expected
    assert ("RESUME EXERCISE" in texts[-1]) == (expected == "paused")


def test_a_paused_exercise_resumes_where_it_stopped(clinic: str) -> None:
    pid = patient(clinic)
    session_id, _ = run(pid, "problem_solving", ["no", "getting groceries in", "later"])
    with new_session() as session, session.begin():
        row = programs.resume(session, pid, now=NOW + timedelta(hours=2))
        assert row is not None and row.id == session_id
        text = programs.prompt(row)
    assert text.startswith("Welcome back to Problem solving") and "brainstorm" in text
    for reply in ["online order, ask a neighbour", "ask a neighbour", "ask Ann on Saturday"]:
        with new_session() as session, session.begin():
            turn = programs.advance(session, session_id, reply, now=NOW + timedelta(hours=2))
    assert turn.done and "First step: ask Ann on Saturday" in turn.replies[-1]
    with new_session() as session:
        goals = session.execute(select(Goal)).scalars().all()
        assert [(g.kind, g.text) for g in goals] == [("problem_solving", "ask Ann on Saturday")]
        assert programs.resume(session, pid) is None


def test_smart_goal_asks_for_a_smaller_step_when_confidence_is_low(clinic: str) -> None:
    pid = patient(clinic)
    _, texts = run(pid, "smart_goal", ["no", "walk to the park", "walk 20 minutes", "Mon Wed Fri",
                                       "4", "walk 10 minutes"])
    assert "smaller version" in texts[-2]
    assert "Your goal: walk 10 minutes, Mon Wed Fri" in texts[-1]
    pid2 = patient(clinic, phone="+14155550113")
    _, texts = run(pid2, "smart_goal", ["no", "garden", "pot 2 plants", "Sunday", "9"])
    assert "Your goal: pot 2 plants, Sunday" in texts[-1]
    with new_session() as session:
        assert len(session.execute(select(Goal)).scalars().all()) == 2


def test_sleep_habit_choice_is_saved_as_a_goal(clinic: str) -> None:
    pid = patient(clinic)
    _, texts = run(pid, "sleep", ["no", "ok", "ok", "ok", "ok", "4"])
    assert "Your sleep goal this week: a wind-down routine" in texts[-1]


def test_smart_goals_respect_a_lifting_restriction(clinic: str) -> None:
    pid = patient(clinic, procedure="scs_implant")  # no lifting, bending or twisting for 8 weeks
    _, texts = run(pid, "smart_goal", ["no", "play with the grandkids",
                                       "lift my grandson twice a day", "every morning", "8"])
    assert "no lifting, bending or twisting" in texts[1] and "grandkids" not in texts[1]
    assert "with no lifting, bending or twisting" in texts[2]
    assert "no lifting, bending or twisting. If this step needs any" in texts[-2]
    assert texts[-1].startswith("Your goal: lift my grandson twice a day")
    pid2 = patient(clinic, procedure="scs_implant", phone="+14155550113")
    _, texts = run(pid2, "smart_goal", ["no", "walk to the park", "walk 10 minutes", "daily", "8"])
    assert not any("If this step needs any" in t for t in texts)
    pid3 = patient(clinic, phone="+14155550114")  # no restriction after this procedure
    _, texts = run(pid3, "smart_goal", ["no", "garden", "lift 2 pots", "Sunday", "9"])
    assert "play with grandkids" in texts[1] and "no lifting" not in " ".join(texts)


def test_the_sleep_get_up_tip_says_how_to_get_up_safely(clinic: str) -> None:
    pid = patient(clinic)
    _, texts = run(pid, "sleep", ["no", "ok", "ok", "ok", "ok", "2"])
    tip = next(t for t in texts if "awake for about 20 minutes" in t)
    assert "Sit up slowly" in tip and "so you don't fall" in tip and fits(tip)


LONG = ("I would really like to be able to walk all the way to the park with my dog and back "
        "again without having to stop on the bench halfway, like I used to every Sunday ")


def test_long_answers_echoed_back_never_take_more_than_two_segments(clinic: str) -> None:
    pid = patient(clinic)
    _, texts = run(pid, "smart_goal", ["no", LONG, LONG, LONG, "9"])
    done = texts[-1]
    assert done.startswith("Your goal: I would really like") and "Reply GOAL any time" in done
    assert segments(to_gsm(done)) <= 2, (len(done), done)
    _, texts = run(pid, "thought_record", ["no", "at home", "it will never end", "80", LONG, LONG,
                                           "Even though it hurts 😞, I have had better days " * 4,
                                           "40"])
    done = texts[-1]
    assert done.startswith('Your balanced thought: "Even though it hurts') and "THOUGHTS" in done
    assert is_gsm(to_gsm(done)) and segments(to_gsm(done)) <= 2, done
    assert all(fits(t) for t in texts)


def test_weekly_summary_with_a_long_goal_fits(clinic: str) -> None:
    pid = patient(clinic)
    run(pid, "smart_goal", ["no", "walk", "walk to the park with my dog ✨ " * 4, "daily", "9"])
    week = NOW + timedelta(days=7, minutes=1)
    assert programs.send_weekly_summaries(now=week) == [pid]
    with new_session() as session:
        body = session.execute(select(Message.body).where(Message.patient_id == pid)
                               .order_by(Message.id.desc())).scalars().first()
    assert body.startswith("Your week: 1 exercise done (set a smart goal); goal: walk to the park")
    assert segments(body) <= 2 and body.endswith("Reply MENU for exercises.")


def test_behavioural_activation_plans_and_follows_up_the_next_day(clinic: str) -> None:
    pid = patient(clinic)
    _, texts = run(pid, "activation", ["no", "ok", "call my sister", "after lunch", "6"])
    assert "I'll check in tomorrow" in texts[-1]
    with new_session() as session:
        review = session.execute(select(ExerciseSession).where(
            ExerciseSession.exercise == "activation_review")).scalars().one()
        assert review.status == "scheduled"
        assert review.due_at == datetime(2026, 11, 27, 1, 0, tzinfo=timezone.utc)  # 19:00 CST
        assert review.data["activity"] == "call my sister"
    started: list[tuple[str, int]] = []
    tomorrow = datetime(2026, 11, 27, 1, 5, tzinfo=timezone.utc)
    assert programs.due_sessions(now=tomorrow, starter=lambda p, s: started.append((p, s))) == [review.id]
    assert programs.due_sessions(now=tomorrow, starter=lambda p, s: started.append((p, s))) == []
    with new_session() as session, session.begin():
        row = session.get(ExerciseSession, review.id)
        programs.activate(row, tomorrow)
        assert "call my sister" in programs.prompt(row)
        turn = programs.advance(session, review.id, "8", now=tomorrow)
    assert "You predicted 6 and rated it 8" in turn.replies[-1]


def test_activation_review_takes_no_for_an_answer(clinic: str) -> None:
    pid = patient(clinic)
    with new_session() as session, session.begin():
        row = programs.start(session, pid, "activation_review", data={"activity": "baking"})
        turn = programs.advance(session, row.id, "no", now=NOW)
    assert turn.done and "Reply PLAN" in turn.replies[-1]


def test_safety_check_yes_pauses_and_notes_it_for_the_care_team(clinic: str) -> None:
    pid = patient(clinic)
    session_id, texts = run(pid, "breathing", ["yes, my leg feels weird"])
    assert "describe what's new" in texts[-1]
    assert status(session_id)[0] == "paused"
    with new_session() as session:
        esc = session.execute(select(Escalation)).scalars().one()
        assert esc.tier == "routine" and esc.patient_id == pid


def test_ok_at_the_safety_check_goes_on(clinic: str) -> None:
    pid = patient(clinic)
    session_id, texts = run(pid, "mindfulness", ["ok"])
    assert status(session_id)[0] == "active" and "Sit comfortably" in texts[-1]


def test_starting_another_exercise_pauses_the_first(clinic: str) -> None:
    pid = patient(clinic)
    first, _ = run(pid, "sleep", ["no"])
    second, _ = run(pid, "breathing", [])
    assert status(first)[0] == "paused" and status(second)[0] == "active"


def _finish_checkin(pid: str, answers: dict[str, str]) -> str | None:
    with new_session() as session, session.begin():
        checkin = session.execute(select(CheckIn).where(CheckIn.patient_id == pid)
                                  .order_by(CheckIn.due_at)).scalars().first()
        checkin.items = list(answers)
        checkin.status = "in_progress"
        for item, text in answers.items():
            checkins.submit(session, checkin.id, item, text)
        checkins.finish(session, checkin.id)
        return programs.offer_after_checkin(session, checkin, now=NOW)


def test_phq2_positive_offers_activation_and_notes_the_care_team(clinic: str) -> None:
    pid = patient(clinic)
    offer = _finish_checkin(pid, {"pain_now": "4", "phq_interest": "2", "phq_down": "several days"})
    assert offer and "plan an activity you value" in offer and "care team know" in offer
    with new_session() as session:
        esc = session.execute(select(Escalation)).scalars().one()
        assert (esc.tier, esc.kind) == ("routine", "mood_screen") and "score 3" in esc.reasons[0]
    with new_session() as session, session.begin():
        row = programs.accept_offer(session, pid, now=NOW + timedelta(minutes=5))
        assert row is not None and row.exercise == "activation" and row.status == "active"


def test_high_interference_offers_pacing_and_catastrophizing_the_thought_record(clinic: str) -> None:
    pid = patient(clinic)
    offer = _finish_checkin(pid, {"pain_now": "5", "peg_enjoyment": "8", "peg_activity": "6"})
    assert offer and "activity pacing" in offer
    pid2 = patient(clinic, phone="+14155550113")
    offer = _finish_checkin(pid2, {"pain_now": "8, it will never get better"})
    assert offer and "thought record" in offer
    pid3 = patient(clinic, phone="+14155550114")
    assert _finish_checkin(pid3, {"pain_now": "3", "phq_interest": "0", "phq_down": "1"}) is None


def test_an_offer_can_be_declined_and_expires(clinic: str) -> None:
    pid = patient(clinic)
    _finish_checkin(pid, {"pain_now": "9"})
    with new_session() as session, session.begin():
        assert programs.accept_offer(session, pid, now=NOW + timedelta(hours=25)) is None
        assert programs.decline_offer(session, pid, now=NOW) is True
        assert programs.decline_offer(session, pid, now=NOW) is False


def _pacing_day(pid: str, reply: str, when: datetime) -> list[str]:
    started: list[int] = []
    programs.due_sessions(now=when, starter=lambda p, s: started.append(s))
    assert len(started) == 1, f"no pacing prompt due at {when}"
    with new_session() as session, session.begin():
        row = session.get(ExerciseSession, started[0])
        programs.activate(row, when)
        texts = [programs.prompt(row)]
        texts += programs.advance(session, row.id, reply, now=when).replies
    return texts


def test_pacing_over_days_baseline_start_step_up_and_flare(clinic: str) -> None:
    pid = patient(clinic)
    _, texts = run(pid, "pacing_setup", ["no", "ok", "1", "12"])
    assert "I'll ask again tomorrow evening (2 more days)" in texts[-1]
    evening = datetime(2026, 11, 26, 0, 5, tzinfo=timezone.utc)  # 18:05 Chicago
    texts = _pacing_day(pid, "10", evening + timedelta(days=1))
    assert "minutes of walking could you do" in texts[0]
    texts = _pacing_day(pid, "about 14 min", evening + timedelta(days=2))
    assert "On average you managed about 12 minutes. Start with 9.5 minutes of walking a day" \
        in texts[-1] and "baseline" not in texts[-1]
    for n in range(3, 9):  # six good days: not a week yet
        texts = _pacing_day(pid, "done", evening + timedelta(days=n))
        assert "today's plan was 9.5 minutes of walking a day" in texts[0]
        assert "Same again" in texts[-1]
    texts = _pacing_day(pid, "done", evening + timedelta(days=9))  # a week at the level
    assert "a steady week" in texts[-1] and "11.5 minutes of walking a day" in texts[-1]
    texts = _pacing_day(pid, "done", evening + timedelta(days=10))
    assert "Same again tomorrow: 11.5 minutes" in texts[-1]  # the next step is a week away
    texts = _pacing_day(pid, "too much today", evening + timedelta(days=11))
    assert "Don't stop altogether" in texts[-1] and "9.5 minutes" in texts[-1]
    with new_session() as session:
        plan = session.execute(select(PacingPlan)).scalars().one()
        assert plan.baseline == 12 and plan.quota == pytest.approx(9.6)
        assert [log.outcome for log in plan.logs] == [
            "baseline_recorded", "baseline_recorded", "plan_started", *["kept"] * 6, "stepped_up",
            "kept", "flare"]


def test_four_weeks_of_daily_done_stay_within_the_weekly_bound(clinic: str) -> None:
    """The issue's numbers: four weeks of DONE took 8 minutes to 57 (571% of the
    baseline). Now a step of 15% of the baseline a week: four steps at most."""
    pid = patient(clinic)
    run(pid, "pacing_setup", ["no", "ok", "1", "10"])
    evening = datetime(2026, 11, 26, 0, 5, tzinfo=timezone.utc)
    for n in (1, 2):
        _pacing_day(pid, "10", evening + timedelta(days=n))
    for n in range(3, 3 + 28):
        _pacing_day(pid, "done", evening + timedelta(days=n))
    with new_session() as session:
        plan = session.execute(select(PacingPlan)).scalars().one()
        assert plan.baseline == 10 and plan.quota == pytest.approx(14)
        assert plan.quota <= plan.baseline * (1 + 0.2 * 4)
        assert [log.outcome for log in plan.logs].count("stepped_up") == 4


def test_sitting_is_paced_as_a_limit_per_stretch_not_a_daily_total(clinic: str) -> None:
    pid = patient(clinic)
    _, texts = run(pid, "pacing_setup", ["no", "ok", "3", "30"])
    assert "minutes of sitting at a time could you do" in texts[-2]
    evening = datetime(2026, 11, 26, 0, 5, tzinfo=timezone.utc)
    texts = _pacing_day(pid, "30", evening + timedelta(days=1))
    assert "minutes of sitting at a time could you do" in texts[0]
    texts = _pacing_day(pid, "30", evening + timedelta(days=2))
    started = texts[-1]
    assert "Start with sitting up to 24 minutes at a time (then stand up and move about for 5 " \
        "minutes)" in started
    assert "a day" not in started and "rest between" not in started
    texts = _pacing_day(pid, "done", evening + timedelta(days=3))
    assert "today's plan was sitting up to 24 minutes at a time" in texts[0]
    with new_session() as session:
        view = programs.progress(session, pid)
    assert view["pacing"]["per"] == "at a time"
    pid2 = patient(clinic, phone="+14155550113")
    _, texts = run(pid2, "pacing_setup", ["no", "ok", "2", "20"])
    assert "minutes of standing at a time" in texts[-2]
    with new_session() as session:
        plan = session.execute(
            select(PacingPlan).where(PacingPlan.patient_id == pid2)).scalars().one()
        assert programs.blocks_text(plan) == "then sit down for 5 minutes"


def test_walking_stays_a_daily_total_in_bouts(clinic: str) -> None:
    pid = patient(clinic)
    run(pid, "pacing_setup", ["no", "ok", "1", "40"])
    with new_session() as session, session.begin():
        plan = session.execute(select(PacingPlan)).scalars().one()
        plan.quota, plan.status = 32.0, "active"
        assert programs.plan_text(plan) == "32 minutes of walking a day"
        assert programs.blocks_text(plan) == "3x 10.5 minutes with a 5-minute rest between"


def test_pacing_respects_procedure_restrictions(clinic: str) -> None:
    pid = patient(clinic, procedure="scs_implant")
    _, texts = run(pid, "pacing_setup", ["no", "ok", "gardening"])
    assert "restrictions after your procedure come first" in texts[-2]
    with new_session() as session:
        assert session.execute(select(PacingPlan)).scalars().one().activity == "walking"
    pid2 = patient(clinic, procedure="prp_injection", phone="+14155550113",
                   procedure_at="2026-11-23T09:30:00-06:00")
    run(pid2, "pacing_setup", ["no", "ok", "1", "30"])
    with new_session() as session:
        plan = session.execute(select(PacingPlan).where(PacingPlan.patient_id == pid2)).scalars().one()
        assert plan.cap == 15  # the rest week caps every activity


def test_stop_pacing_ends_the_plan_and_its_prompts(clinic: str) -> None:
    pid = patient(clinic)
    run(pid, "pacing_setup", ["no", "ok", "1", "12"])
    evening = datetime(2026, 11, 27, 0, 5, tzinfo=timezone.utc)
    texts = _pacing_day(pid, "stop pacing", evening)
    assert "stopped your pacing plan" in texts[-1]
    with new_session() as session:
        assert session.execute(select(PacingPlan)).scalars().one().status == "stopped"
    assert programs.due_sessions(now=evening + timedelta(days=1), starter=lambda p, s: None) == []


def test_scheduled_prompts_respect_quiet_hours_cap_and_stop(clinic: str) -> None:
    pid = patient(clinic)
    with new_session() as session, session.begin():
        row = programs.schedule(session, pid, "activation_review",
                                datetime(2026, 11, 26, 4, 0, tzinfo=timezone.utc), {"activity": "x"})
        row_id = row.id
    night = datetime(2026, 11, 26, 4, 30, tzinfo=timezone.utc)  # 22:30 Chicago
    assert programs.due_sessions(now=night, starter=lambda p, s: None) == []
    with new_session() as session, session.begin():
        session.get(Patient, pid).sms_opted_out = True
    morning = datetime(2026, 11, 26, 14, 30, tzinfo=timezone.utc)  # 08:30
    assert programs.due_sessions(now=morning, starter=lambda p, s: None) == []
    with new_session() as session, session.begin():
        session.get(Patient, pid).sms_opted_out = False
    late = datetime(2026, 11, 26, 16, 30, tzinfo=timezone.utc)  # 12.5 h after it fell due
    assert programs.due_sessions(now=late, starter=lambda p, s: None) == []
    with new_session() as session:
        assert session.get(ExerciseSession, row_id).status == "missed"


def test_weekly_summary_once_a_week(clinic: str) -> None:
    pid = patient(clinic)
    run(pid, "breathing", ["no", "ok", "7", "ok", "done", "3"])
    run(pid, "sleep", ["no", "ok", "ok", "ok", "ok", "1"])
    assert programs.send_weekly_summaries(now=NOW + timedelta(days=3)) == []
    week = NOW + timedelta(days=7, minutes=1)
    assert programs.send_weekly_summaries(now=week) == [pid]
    assert programs.send_weekly_summaries(now=week + timedelta(hours=1)) == []
    with new_session() as session:
        body = session.execute(select(Message.body).where(Message.patient_id == pid)
                               .order_by(Message.id.desc())).scalars().first()
        assert session.get(ProgramSummary, pid) is not None
    assert body.startswith("Your week: 2 exercises done (belly breathing, sleep habits)")
    assert "goal: a fixed wake time" in body and fits(body)


def test_progress_for_the_dashboard(clinic: str) -> None:
    pid = patient(clinic)
    run(pid, "breathing", ["no", "ok", "7", "ok", "done", "3"])
    run(pid, "mindfulness", ["no", "later"])
    with new_session() as session:
        view = programs.progress(session, pid)
    assert view["completions"] == {"Belly breathing": 1}
    assert [s["status"] for s in view["sessions"]] == ["paused", "completed"]
    assert view["pacing"] is None


def test_red_flag_text_is_still_triaged_before_the_engine_sees_it() -> None:
    """The engine never downgrades: a crisis message mid-exercise is the triage
    engine's (bot/rules/red_flags.yml), here we only check it is flagged."""
    from painpath.triage import triage

    assert triage("i want to kill myself").tier == "crisis"
    assert Answer is not None


def test_export_and_delete_include_self_management_data(clinic: str) -> None:
    from painpath.models import PacingLog
    from painpath.privacy import delete_patient, export_patient

    pid = patient(clinic)
    run(pid, "pacing_setup", ["no", "ok", "1", "12"])
    run(pid, "sleep", ["no", "ok", "ok", "ok", "ok", "1"])
    exported = export_patient(pid)
    tables = exported["tables"] if "tables" in exported else exported
    for name in ("exercise_session", "pacing_plan", "pacing_log", "goal"):
        assert tables[name], name
    delete_patient(pid, tracker_url=None)
    with new_session() as session:
        for model in (ExerciseSession, PacingPlan, PacingLog, Goal):
            assert session.execute(select(model)).scalars().all() == [], model


def test_one_daily_cap_for_checkins_and_program_prompts(clinic: str) -> None:
    from painpath.scheduling import contacts_today as all_contacts

    pid = patient(clinic)
    evening = datetime(2026, 11, 26, 0, 5, tzinfo=timezone.utc)  # 18:05 Chicago, Nov 25
    with new_session() as session, session.begin():
        session.get(Patient, pid).clinic.daily_contact_cap = 1
        programs.schedule(session, pid, "activation_review", evening - timedelta(minutes=5),
                          {"activity": "x"})
        first = session.execute(select(CheckIn).where(CheckIn.patient_id == pid)
                                .order_by(CheckIn.due_at)).scalars().first()
        first.started_at, first.status = evening - timedelta(hours=2), "completed"
    assert programs.due_sessions(now=evening, starter=lambda p, s: None) == []  # cap reached
    with new_session() as session, session.begin():
        session.get(Patient, pid).clinic.daily_contact_cap = 2
    assert len(programs.due_sessions(now=evening, starter=lambda p, s: None)) == 1
    with new_session() as session:
        assert all_contacts(session, session.get(Patient, pid), evening) == 2
