"""The pacing arithmetic (painpath/pacing.py): examples and properties."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from painpath import pacing
from painpath.pacing import PacingState, Report


DAY0 = date(2026, 12, 1)


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def started(reports: tuple[float, ...] = (10, 12, 14), cap: float = 60) -> PacingState:
    state = PacingState(cap=cap)
    for minutes in reports:
        state, outcome = pacing.add_baseline_report(state, minutes, DAY0)
    assert outcome.kind == "plan_started"
    return state


def days_done(state: PacingState, first: int,
              last: int) -> tuple[PacingState, list[tuple[int, float]]]:
    """`state` after DONE every day from day `first` to `last`; the (day, level) of each step."""
    steps = []
    for n in range(first, last + 1):
        state, outcome = pacing.record(state, Report("done"), day(n))
        if outcome.kind == "stepped_up":
            steps.append((n, state.quota))
    return state, steps


def test_baseline_is_the_mean_of_several_days_and_the_plan_starts_at_80_percent() -> None:
    state = PacingState(cap=60)
    state, outcome = pacing.add_baseline_report(state, 10, DAY0)
    assert (state.phase, outcome.kind) == ("baseline", "baseline_recorded")
    state, _ = pacing.add_baseline_report(state, 20, DAY0)
    state, outcome = pacing.add_baseline_report(state, 0, day(2))  # a bad day counts too
    assert state.baseline == 10.0
    assert state.quota == 8.0 and outcome.after == 8.0
    assert state.started_on == state.week_start == day(2)
    with pytest.raises(ValueError):
        pacing.add_baseline_report(state, 5, day(3))


def test_the_cap_wins_at_the_start() -> None:
    state = started((50, 60, 70), cap=15)
    assert state.quota == 15


def test_four_weeks_of_good_days_step_up_once_a_week_by_a_share_of_the_baseline() -> None:
    """The issue's case: baseline 10 minutes, every day done for four weeks. Steps
    came every two good days and compounded: 8 -> 57 minutes (571%). Now one step a
    week of 15% of the baseline: 8 -> 14 minutes, under 10 x (1 + 0.2 x 4)."""
    state = started((10, 10, 10))
    assert state.quota == 8
    state, steps = days_done(state, 1, 28)
    assert steps == [(7, 9.5), (14, 11.0), (21, 12.5), (28, 14.0)]
    assert state.quota <= 10 * (1 + 0.2 * 4)


def test_no_step_before_a_full_week_and_a_setback_starts_the_week_again() -> None:
    state = started()  # baseline 12, quota 9.6
    assert state.quota == pytest.approx(9.6)
    state, steps = days_done(state, 1, 5)
    assert steps == [] and state.good_streak == 5
    state, outcome = pacing.record(state, Report("minutes", 4), day(6))  # a short day
    assert outcome.kind == "partial" and (state.good_streak, state.week_start) == (0, day(6))
    state, steps = days_done(state, 7, 12)
    assert steps == []  # six days since the setback
    state, outcome = pacing.record(state, Report("minutes", 10), day(13))
    assert outcome.kind == "stepped_up"
    assert state.quota == pytest.approx(9.6 + 1.8)  # 15% of the baseline
    assert 9.6 in state.comfortable and state.week_start == day(13)


def test_a_week_with_few_completed_days_or_many_reports_on_one_day_does_not_step() -> None:
    state = started()
    for n in (2, 7):  # only two reports in the week
        state, outcome = pacing.record(state, Report("done"), day(n))
        assert outcome.kind == "kept"
    state, steps = days_done(state, 8, 9)
    assert steps == [] and state.good_streak == 4
    state, steps = days_done(state, 10, 10)
    assert steps == [(10, pytest.approx(11.4))]
    for _ in range(10):  # ten DONE replies in one evening are still one day
        state, outcome = pacing.record(state, Report("done"), day(11))
        assert outcome.kind == "kept"


def test_a_missed_day_starts_the_week_again() -> None:
    state = started()
    state, _ = days_done(state, 1, 6)
    state, outcome = pacing.record(state, Report("missed"), day(7))
    assert outcome.kind == "missed" and state.week_start == day(7)
    state, steps = days_done(state, 8, 14)
    assert steps == [(14, pytest.approx(11.4))]


def test_the_week_is_found_again_from_the_log() -> None:
    log = [("baseline_recorded", day(0)), ("baseline_recorded", day(1)), ("plan_started", day(2)),
           ("kept", day(3)), ("partial", day(4)), ("kept", day(5)), ("overdid", day(6))]
    assert pacing.week_dates(log) == (day(2), day(4))
    assert pacing.week_dates(log[:2]) == (None, None)


def test_a_flare_steps_back_to_the_last_comfortable_level() -> None:
    state = started()
    state, steps = days_done(state, 1, 7)
    assert steps == [(7, pytest.approx(11.4))]
    state, outcome = pacing.record(state, Report("too_much"), day(8))
    assert outcome.kind == "flare" and state.week_start == day(8)
    assert state.quota == pytest.approx(9.6)
    state, outcome = pacing.record(state, Report("too_much"), day(9))  # again, at the first level
    assert state.quota == pytest.approx(7.7) and outcome.after < outcome.before


def test_overdoing_it_is_named_but_still_counts_as_done() -> None:
    state = started()
    state, outcome = pacing.record(state, Report("minutes", 30), day(1))
    assert outcome.kind == "overdid" and state.good_streak == 1


def test_a_new_lower_cap_lowers_the_level_at_once() -> None:
    state = started((40, 40, 40))
    capped = pacing.with_cap(state, 15)
    assert capped.quota == 15 and capped.cap == 15


def test_blocks_split_the_day_into_bouts_with_rests() -> None:
    assert pacing.blocks(30, 15) == [15.0, 15.0]
    assert pacing.blocks(32, 15) == [10.7, 10.7, 10.7]
    assert pacing.blocks(8, 15) == [8.0]
    assert pacing.fmt_minutes(1) == "1 minute" and pacing.fmt_minutes(9.6) == "9.5 minutes"


@pytest.mark.parametrize("text,kind,minutes", [
    ("DONE", "done", None), ("done!", "done", None), ("yes I did it", "done", None),
    ("12", "minutes", 12), ("about 12 min", "minutes", 12), ("1.5 hours", "minutes", 90),
    ("half an hour", "minutes", 30), ("TOO MUCH", "too_much", None),
    ("it flared up badly", "too_much", None), ("20 min but it was too much", "too_much", None),
    ("no, didn't get to it", "missed", None), ("couldn't do it today", "missed", None),
])
def test_reports_in_the_patients_words(text: str, kind: str, minutes: float | None) -> None:
    report = pacing.parse_report(text)
    assert report is not None and report.kind == kind
    if minutes is not None:
        assert report.minutes == minutes


def test_an_unclear_report_is_not_guessed() -> None:
    assert pacing.parse_report("what?") is None


reports = st.one_of(
    st.just(Report("done")), st.just(Report("too_much")), st.just(Report("missed")),
    st.floats(min_value=0, max_value=240, allow_nan=False).map(lambda m: Report("minutes", m)))
# (days since the last report, the report): 0 is another reply the same day
history = st.lists(st.tuples(st.integers(min_value=0, max_value=3), reports), max_size=90)


@settings(max_examples=400, deadline=None)
@given(baseline=st.lists(st.floats(min_value=0, max_value=180, allow_nan=False), min_size=3,
                         max_size=3),
       cap=st.floats(min_value=0.5, max_value=120, allow_nan=False),
       days=history,
       caps=st.lists(st.floats(min_value=0.5, max_value=120, allow_nan=False), max_size=3))
def test_plan_properties(baseline: list[float], cap: float, days: list[tuple[int, Report]],
                         caps: list[float]) -> None:
    """No plan exceeds baseline x (1 + 0.2 x weeks elapsed) (CLINICAL.md §3.3, §3.5);
    never above the cap, at most one step a week and never over 20% of the level or
    of the baseline, a flare never increases the load."""
    state = PacingState(cap=cap)
    for minutes in baseline:
        state, _ = pacing.add_baseline_report(state, minutes, DAY0)
    assert state.quota is not None and state.baseline is not None
    assert 0 < state.quota <= state.cap
    assert state.quota <= max(0.8 * state.baseline + 0.05, min(pacing.MIN_QUOTA, cap))  # ~80%
    today, last_step = DAY0, None
    for i, (gap, report) in enumerate(days):
        today += timedelta(days=gap)
        if caps and i % 20 == 19:
            state = pacing.with_cap(state, caps[(i // 20) % len(caps)])
        before = state.quota
        state, outcome = pacing.record(state, report, today)
        assert state.quota is not None
        assert 0 < state.quota <= state.cap + 1e-9
        weeks = (today - DAY0).days / 7
        assert state.quota <= max(state.baseline, pacing.MIN_QUOTA) * (1 + 0.2 * weeks) + 1e-9
        assert state.quota <= pacing.max_level(state.baseline, DAY0, today) + 1e-9
        assert state.quota - before <= pacing.MAX_STEP_OF_QUOTA * before + 1e-9
        assert state.quota - before <= 0.2 * max(state.baseline, pacing.MIN_QUOTA) + 1e-9
        if state.quota > before:
            assert last_step is None or (today - last_step).days >= 7
            last_step = today
        if report.kind in ("too_much", "missed") or outcome.kind == "partial":
            assert state.quota <= before
        if report.kind == "too_much":
            assert state.good_streak == 0
