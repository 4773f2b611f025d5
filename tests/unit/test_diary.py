"""The diagnostic-block pain diary (painpath/diary.py): planning, consent, the
scheduler's cap and quiet-hours rules for it, and the relief summary."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import func, select

from painpath import checkins, diary
from painpath.content import get_content, parse_offset
from painpath.db import new_session
from painpath.enrollment import EnrollmentRequest, enroll, get_clinic
from painpath.models import CheckIn, Consent, Enrollment, Escalation
from painpath.protocols import check_spec, effective_spec, save
from painpath.scheduling import in_quiet_hours, start_due_checkins
from painpath.sms_text import is_gsm, segments, to_gsm

CHICAGO = ZoneInfo("America/Chicago")
UTC = timezone.utc
DAY0 = ["15m", "30m", "45m", "1h", "2h", "3h", "4h", "5h", "6h", "7h", "8h"]


def mbb(clinic: str, consent: bool, night: bool = False, at: str = "2026-03-10T09:30:00",
        baseline: float | None = 8, phone: str = "+14155550161") -> str:
    with new_session() as session, session.begin():
        return enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone=phone, procedure="medial_branch_block", procedure_at=at,
            timezone="America/Chicago", baseline_pain=baseline, diary_consent=consent,
            diary_night_consent=night)).id


def rows(patient_id: str) -> list[CheckIn]:
    with new_session() as session:
        return list(session.execute(select(CheckIn).where(CheckIn.patient_id == patient_id)
                                    .order_by(CheckIn.due_at)).scalars())


def escalations() -> int:
    with new_session() as session:
        return session.execute(select(func.count()).select_from(Escalation)).scalar_one()


# --------------------------------------------------------------------------- pure planning


def _plan(pid: str, with_diary: bool, ask_baseline: bool) -> list[diary.Planned]:
    content = get_content()
    start = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
    return diary.merge_plan(content.plan(pid, False), diary.default_diary(pid) if with_diary
                            else (), ask_baseline, lambda off: start + off, None)


def test_diary_prompts_are_folded_into_the_regular_checkins() -> None:
    plan = _plan("medial_branch_block", True, ask_baseline=True)
    by_key = {p.key: p.items for p in plan}
    day0 = [p.key for p in plan if p.day < 1]
    assert day0 == ["diary-15m", "diary-30m", "diary-45m", "diary-1h", "diary-2h", "diary-3h",
                    "4h", "diary-5h", "diary-6h", "diary-7h", "8h"]
    daily = [p.key for p in plan if p.day >= 1]
    assert daily == ["1d", "2d", "3d", "diary-4d", "diary-5d", "diary-6d", "7d", "diary-8d",
                     "diary-9d", "diary-10d", "diary-11d", "diary-12d", "diary-13d", "14d"]
    # the baseline goes with the very first contact, before the rating
    assert by_key["diary-15m"] == ("pain_baseline", "diary_pain")
    assert by_key["diary-30m"] == ("diary_pain",)
    # within a regular check-in: red-flag screen first, then the diary rating, then the rest
    assert by_key["4h"] == ("safety_neuro", "diary_pain", "pain_now", "percent_relief",
                            "phq_interest", "phq_down", "gad_nervous", "gad_worry")  # PHQ-4
    assert "pain_baseline" not in by_key["4h"]
    assert sum("diary_pain" in items for items in by_key.values()) == 25


@pytest.mark.parametrize("pid", sorted(get_content().procedures))
@pytest.mark.parametrize("ask_baseline", [True, False])
def test_without_a_diary_the_plan_is_the_regular_one(pid: str, ask_baseline: bool) -> None:
    regular = [(cp.key, tuple(items)) for cp, items in get_content().plan(pid, ask_baseline)]
    assert [(p.key, p.items) for p in _plan(pid, False, ask_baseline)] == regular


def test_same_day_prompts_in_quiet_hours_are_left_out_without_the_night_opt_in() -> None:
    content = get_content()
    start = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)  # 15:00 CDT

    def quiet(when: datetime) -> bool:
        return in_quiet_hours(when, "America/Chicago")

    plan = diary.merge_plan(content.plan("medial_branch_block", False),
                            diary.default_diary("medial_branch_block"), False,
                            lambda off: start + off, quiet)
    keys = [p.key for p in plan]
    # 21:00 and 22:00 local are outside 08:00-21:00: no diary-only prompt then; the 8h
    # check-in (safety questions) stays and the scheduler defers it as usual
    assert "diary-6h" not in keys and "diary-7h" not in keys
    assert "diary-5h" in keys and "8h" in keys and "diary-4d" in keys


def test_diary_schedule_validation() -> None:
    assert [p.key for p in diary.parse_diary(["15m", "1h"], "x")] == ["15m", "1h"]
    assert diary.parse_diary([], "x") == ()
    for bad, fragment in ((["1h", "15m"], "time order"), (["15m", "15m"], "twice"),
                          (["soon"], "bad offset"), (["45d"], "within 30 days"),
                          ("15m", "must be a list")):
        with pytest.raises(diary.DiaryError, match=fragment):
            diary.parse_diary(bad, "medial_branch_block")


def test_protocol_check_names_every_bad_field() -> None:
    problems = check_spec("medial_branch_block", {
        "checkins": ["1h", "tomorrow"],
        "safety": [{"item": "safety_neuro"}, {"item": "pain_now"},
                   {"item": "safety_infection", "from_day": 5, "until_day": 2}],
        "diary": ["30m", "15m"], "colour": "blue"})
    assert set(problems) == {"checkins", "safety.2", "safety.3", "diary", "spec"}
    assert "bad offset 'tomorrow'" in problems["checkins"]
    assert "not a yes/no safety question" in problems["safety.2"]
    assert "from_day is after until_day" in problems["safety.3"]
    assert "time order" in problems["diary"]
    assert check_spec("medial_branch_block", {"checkins": ["1h"], "diary": []}) == {}


# --------------------------------------------------------------------------- summary


def test_summary_reports_peak_relief_and_how_long_it_lasted() -> None:
    t0 = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
    pain = {0.25: 2, 0.5: 1, 0.75: 1, 1: 1, 2: 1, 3: 2, 4: 3, 5: 5, 6: 7, 24: 8}
    s = diary.summarize([(t0 + timedelta(hours=h), p) for h, p in pain.items()], 8, t0)
    assert s.peak_relief == 87.5 and s.peak_hours == 0.5
    run80, run50 = s.runs[80], s.runs[50]
    assert (run80.start_hours, run80.end_hours, run80.below_at_hours) == (0.5, 2, 3)
    assert run80.hours == 1.5 and run80.readings == 4
    assert (run50.start_hours, run50.end_hours, run50.below_at_hours) == (0.25, 4, 5)
    assert diary.hours_label(run50.hours) == "3 h 45 min"
    # worse than before is negative relief, not clipped
    assert diary.summarize([(t0, 10)], 8, t0).peak_relief == -25.0
    # no baseline (or 0): ratings are kept, relief is not invented
    none = diary.summarize([(t0, 3)], None, t0)
    assert none.peak_relief is None and none.runs == {50: None, 80: None}
    assert len(none.readings) == 1


def test_the_bot_reports_numbers_and_never_a_verdict() -> None:
    texts = [diary.text("intro", clinic="Test Pain Clinic"), diary.text("done"),
             diary.text("done_no_answer"), get_content().questions["diary_pain"].text,
             get_content().questions["diary_pain"].reask]
    for t in texts:
        assert not any(w in t.lower() for w in ("qualif", "positive", "negative", "ablation",
                                                  "rfa", "success", "worked", "block")), t
        assert is_gsm(to_gsm(t)) and segments(to_gsm(t)) == 1, t


# --------------------------------------------------------------------------- enrolment


def test_no_consent_no_diary(clinic: str) -> None:
    patient_id = mbb(clinic, consent=False)
    assert [c.key for c in rows(patient_id)] == ["4h", "8h", "1d", "2d", "3d", "7d", "14d"]
    assert not any("diary_pain" in c.items for c in rows(patient_id))
    with new_session() as session:
        assert diary.consents(session, patient_id) == {"diary": False, "diary_night": False}


def test_consent_is_recorded_and_the_diary_planned(clinic: str) -> None:
    patient_id = mbb(clinic, consent=True)
    keys = [c.key for c in rows(patient_id)]
    assert keys[:4] == ["diary-15m", "diary-30m", "diary-45m", "diary-1h"] and len(keys) == 25
    with new_session() as session:
        kinds = session.execute(select(Consent.kind, Consent.event, Consent.source)
                                .where(Consent.patient_id == patient_id)
                                .order_by(Consent.id)).all()
    assert kinds == [("sms", "opt_in", "enrollment"), ("diary", "opt_in", "enrollment")]


def test_a_procedure_without_a_diary_ignores_the_consent(clinic: str) -> None:
    with new_session() as session, session.begin():
        patient_id = enroll(session, EnrollmentRequest(
            clinic_slug=clinic, phone="+14155550162", procedure="epidural_steroid_injection",
            procedure_at="2026-03-10T09:30:00", diary_consent=True)).id
    assert not any(c.key.startswith("diary-") for c in rows(patient_id))


def test_withdrawing_consent_drops_pending_prompts(clinic: str) -> None:
    patient_id = mbb(clinic, consent=True, night=True)
    with new_session() as session, session.begin():
        diary.withdraw(session, patient_id, source="dashboard")
    assert [c.key for c in rows(patient_id)] == ["4h", "8h", "1d", "2d", "3d", "7d", "14d"]
    assert not any("diary_pain" in c.items for c in rows(patient_id))
    with new_session() as session:
        assert diary.consents(session, patient_id) == {"diary": False, "diary_night": False}


def test_a_clinic_protocol_can_change_or_turn_off_the_diary(clinic: str) -> None:
    patient_id = mbb(clinic, consent=True)
    with new_session() as session, session.begin():
        spec = effective_spec(session, get_clinic(session, clinic).id, "medial_branch_block")
        spec["diary"] = ["30m", "1h", "2h", "1d"]
        assert save(session, clinic, "medial_branch_block", spec)["rescheduled_enrollments"] == 1
    assert [c.key for c in rows(patient_id)] == ["diary-30m", "diary-1h", "diary-2h", "4h", "8h",
                                                 "1d", "2d", "3d", "7d", "14d"]
    with new_session() as session, session.begin():
        save(session, clinic, "medial_branch_block", {**spec, "diary": []})
    assert not any("diary_pain" in c.items for c in rows(patient_id))


# --------------------------------------------------------------------------- time travel

PAIN = {"15m": 2, "30m": 1, "45m": 1, "1h": 1, "2h": 1, "3h": 2, "4h": 3, "5h": 5, "6h": 7,
        "7h": 7, "8h": 7}


def _answer_everything(pid: str, log: list[tuple[str, datetime]], answer: bool = True) -> None:
    """The real check-in path: begin, one answer per item (safety: no), finish."""
    now = datetime.now(UTC)
    with new_session() as session, session.begin():
        checkin = session.execute(select(CheckIn).where(
            CheckIn.patient_id == pid, CheckIn.status == "starting")).scalar_one()
        log.append((checkin.key, now))
        _, items = checkins.begin(session, checkin)
        if not answer:
            return
        for item in items:
            kind = get_content().questions[item].kind
            value = {"yesno": "no", "percent": "50", "pgic": "3", "phq": "0"}.get(
                kind, str(PAIN.get(checkin.key.replace("diary-", ""), 8)))
            assert checkins.submit(session, checkin.id, item, value).status == "accepted"
        checkins.finish(session, checkin.id)


def _travel(start: datetime, end: datetime, step_until: datetime,
            starter: Callable[[str], None]) -> None:
    clock = start
    with time_machine.travel(clock, tick=False) as traveller:
        while clock < end:
            start_due_checkins(starter=starter, concurrency=1)
            clock += timedelta(minutes=5 if clock < step_until else 30)
            traveller.move_to(clock)


def test_14_days_of_diary_with_consent_beyond_the_daily_cap(clinic: str) -> None:
    # 09:30 CDT on Tue 10 Mar 2026 (DST began on Sun 8 Mar); the clinic's cap is 2 a day
    patient_id = mbb(clinic, consent=True)
    t0 = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
    log: list[tuple[str, datetime]] = []
    _travel(t0, t0 + timedelta(days=15), t0 + timedelta(hours=9),
            lambda pid: _answer_everything(pid, log))
    started = dict(log)
    assert len(log) == len(started) == 25, "every prompt once, none twice"
    for key in DAY0:  # on time (within one 5-minute sweep), none held back by the cap
        name = key if key in ("4h", "8h") else f"diary-{key}"
        assert started[name] - (t0 + parse_offset(key)) < timedelta(minutes=5), name
    day0 = [k for k, when in log if when.astimezone(CHICAGO).date() == t0.date()]
    assert len(day0) == 11  # far beyond the cap of 2: the patient consented
    for key, when in log:  # all in the send window of the patient's day
        assert 8 <= when.astimezone(CHICAGO).hour < 21, (key, when)
    assert escalations() == 0
    assert {c.status for c in rows(patient_id)} == {"completed"}
    with new_session() as session:
        enrollment = session.execute(select(Enrollment)).scalar_one()
        s = diary.enrollment_summary(session, enrollment)
    assert s is not None and len(s.readings) == 25
    assert s.peak_relief == 87.5 and 0.5 <= s.peak_hours < 0.6
    assert s.runs[80].start_hours < 0.6 and 2 <= s.runs[80].end_hours < 2.1
    assert 3 <= s.runs[80].below_at_hours < 3.1
    assert 4 <= s.runs[50].end_hours < 4.1 and 5 <= s.runs[50].below_at_hours < 5.1


def test_without_consent_the_cap_holds_and_no_prompt_is_sent(clinic: str) -> None:
    mbb(clinic, consent=False)
    t0 = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
    log: list[tuple[str, datetime]] = []
    _travel(t0, t0 + timedelta(days=2), t0 + timedelta(hours=9),
            lambda pid: _answer_everything(pid, log))
    per_day: dict[object, int] = {}
    for _, when in log:
        day = when.astimezone(CHICAGO).date()
        per_day[day] = per_day.get(day, 0) + 1
    assert max(per_day.values()) <= 2
    assert not any(k.startswith("diary-") for k, _ in log)
    # the default schedule fits the default cap: the evening safety check goes out
    assert [k for k, _ in log] == ["4h", "8h", "1d"] and escalations() == 0


def test_an_unanswered_prompt_gives_way_to_the_next_without_a_nurse_task(clinic: str) -> None:
    patient_id = mbb(clinic, consent=True)
    t0 = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
    log: list[tuple[str, datetime]] = []
    _travel(t0, t0 + timedelta(minutes=50), t0 + timedelta(hours=1),
            lambda pid: _answer_everything(pid, log, answer=False))
    assert [k for k, _ in log] == ["diary-15m", "diary-30m", "diary-45m"]
    status = {c.key: c.status for c in rows(patient_id)}
    assert status["diary-15m"] == status["diary-30m"] == "missed"
    assert status["diary-45m"] == "in_progress"
    assert escalations() == 0  # a missed rating is not a safety matter


def test_prompts_at_night_only_with_the_explicit_opt_in(clinic: str) -> None:
    at = "2026-03-10T15:00:00"  # 6h = 21:00, 7h = 22:00 local
    t0 = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    night = mbb(clinic, consent=True, night=True, at=at)
    day_only = mbb(clinic, consent=True, night=False, at=at, phone="+14155550163")
    assert "diary-7h" in [c.key for c in rows(night)]
    assert "diary-7h" not in [c.key for c in rows(day_only)]
    log: list[tuple[str, datetime]] = []

    def starter(pid: str) -> None:
        _answer_everything(pid, log)
        log[-1] = (f"{pid}:{log[-1][0]}", log[-1][1])

    _travel(t0 + timedelta(hours=5, minutes=55), t0 + timedelta(hours=7, minutes=10),
            t0 + timedelta(hours=8), starter)
    started = dict(log)
    assert started[f"{night}:diary-6h"] == t0 + timedelta(hours=6)
    assert started[f"{night}:diary-7h"] == t0 + timedelta(hours=7)
    # the other patient's last same-day prompt (5h, 20:00) goes before 21:00; nothing after
    assert [k for k in started if k.startswith(day_only)] == [f"{day_only}:diary-5h"]
    assert all(when.astimezone(CHICAGO).hour < 21 for k, when in started.items()
               if k.startswith(day_only))


def test_the_cli_records_the_diary_consent(clinic: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from painpath.cli import main

    assert main(["enroll", "--clinic", clinic, "--phone", "+14155550164", "--procedure",
                 "medial_branch_block", "--procedure-at", "2026-03-10T09:30:00",
                 "--diary-consent", "--json"]) == 0
    patient_id = capsys.readouterr().out.split('"id": "')[1].split('"')[0]
    assert [c.key for c in rows(patient_id)][:2] == ["diary-15m", "diary-30m"]
    with new_session() as session:
        assert diary.consents(session, patient_id) == {"diary": True, "diary_night": False}


async def test_a_diary_prompt_through_the_actions(clinic: str) -> None:
    """What the patient sees: a one-line intro, the one question, a short thanks."""
    from rasa_sdk.events import SlotSet
    from rasa_sdk.executor import CollectingDispatcher

    from actions.checkin import ActionFinishCheckin, ActionStartCheckin, ValidateCheckinForm
    from tests.unit.test_actions import DOMAIN, tracker

    patient_id = mbb(clinic, consent=True)
    first = rows(patient_id)[0]
    assert first.key == "diary-15m"
    dispatcher = CollectingDispatcher()
    events = await ActionStartCheckin().run(dispatcher, tracker(
        patient_id, entities=[{"entity": "checkin_id", "value": str(first.id)}]), DOMAIN)
    assert SlotSet("checkin_items", ["diary_pain"]) in events
    assert [m["text"] for m in dispatcher.messages] == ["Test Pain Clinic pain diary."]
    slots = {"checkin_id": first.id, "checkin_items": ["diary_pain"], "diary_pain": "about a 3"}
    events = await ValidateCheckinForm().run(
        CollectingDispatcher(), tracker(patient_id, slots, text="about a 3",
                                        requested="diary_pain"), DOMAIN)
    assert SlotSet("diary_pain", 3) in events
    dispatcher = CollectingDispatcher()
    await ActionFinishCheckin().run(dispatcher, tracker(patient_id, slots), DOMAIN)
    assert [m["text"] for m in dispatcher.messages] == ["Thank you, noted for your care team."]
    with new_session() as session:
        enrollment = session.execute(select(Enrollment)).scalar_one()
        summary = diary.enrollment_summary(session, enrollment)
    assert [r.pain for r in summary.readings] == [3] and summary.peak_relief == 62.5
