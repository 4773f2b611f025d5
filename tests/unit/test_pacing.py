"""The pacing arithmetic (painpath/pacing.py): examples and properties."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from painpath import pacing
from painpath.pacing import PacingState, Report


def started(reports: tuple[float, ...] = (10, 12, 14), cap: float = 60) -> PacingState:
    state = PacingState(cap=cap)
    for minutes in reports:
        state, outcome = pacing.add_baseline_report(state, minutes)
    assert outcome.kind == "plan_started"
    return state


def test_baseline_is_the_mean_of_several_days_and_the_plan_starts_at_80_percent() -> None:
    state = PacingState(cap=60)
    state, outcome = pacing.add_baseline_report(state, 10)
    assert (state.phase, outcome.kind) == ("baseline", "baseline_recorded")
    state, _ = pacing.add_baseline_report(state, 20)
    state, outcome = pacing.add_baseline_report(state, 0)  # a bad day counts too
    assert state.baseline == 10.0
    assert state.quota == 8.0 and outcome.after == 8.0
    with pytest.raises(ValueError):
        pacing.add_baseline_report(state, 5)


def test_the_cap_wins_at_the_start() -> None:
    state = started((50, 60, 70), cap=15)
    assert state.quota == 15


def test_steps_up_only_after_consecutive_good_days() -> None:
    state = started()  # baseline 12, quota 9.6
    assert state.quota == pytest.approx(9.6)
    state, outcome = pacing.record(state, Report("done"))
    assert outcome.kind == "kept" and state.quota == pytest.approx(9.6)
    state, outcome = pacing.record(state, Report("minutes", 4))  # a short day: streak broken
    assert outcome.kind == "partial"
    state, _ = pacing.record(state, Report("done"))
    state, outcome = pacing.record(state, Report("minutes", 10))
    assert outcome.kind == "stepped_up"
    assert state.quota == pytest.approx(9.6 + 1.8)  # 15% of the baseline
    assert 9.6 in state.comfortable


def test_a_flare_steps_back_to_the_last_comfortable_level() -> None:
    state = started()
    for _ in range(2):
        state, _ = pacing.record(state, Report("done"))
    assert state.quota == pytest.approx(11.4)
    state, outcome = pacing.record(state, Report("too_much"))
    assert outcome.kind == "flare"
    assert state.quota == pytest.approx(9.6)
    state, outcome = pacing.record(state, Report("too_much"))  # again, at the first level
    assert state.quota == pytest.approx(7.7) and outcome.after < outcome.before


def test_overdoing_it_is_named_but_still_counts_as_done() -> None:
    state = started()
    state, outcome = pacing.record(state, Report("minutes", 30))
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


@settings(max_examples=300, deadline=None)
@given(baseline=st.lists(st.floats(min_value=0, max_value=180, allow_nan=False), min_size=3,
                         max_size=3),
       cap=st.floats(min_value=0.5, max_value=120, allow_nan=False),
       days=st.lists(reports, max_size=60),
       caps=st.lists(st.floats(min_value=0.5, max_value=120, allow_nan=False), max_size=3))
def test_plan_properties(baseline: list[float], cap: float, days: list[Report],
                         caps: list[float]) -> None:
    """Never above the cap, never a step over 20%, a flare never increases the load."""
    state = PacingState(cap=cap)
    for minutes in baseline:
        state, _ = pacing.add_baseline_report(state, minutes)
    assert state.quota is not None and 0 < state.quota <= state.cap
    assert state.quota <= max(0.8 * state.baseline + 0.05, min(pacing.MIN_QUOTA, cap))  # ~80%
    for i, report in enumerate(days):
        if caps and i % 20 == 19:
            state = pacing.with_cap(state, caps[(i // 20) % len(caps)])
        before = state.quota
        state, outcome = pacing.record(state, report)
        assert state.quota is not None
        assert 0 < state.quota <= state.cap + 1e-9
        assert state.quota - before <= pacing.MAX_STEP_OF_QUOTA * before + 1e-9
        if report.kind in ("too_much", "missed") or outcome.kind == "partial":
            assert state.quota <= before
        if report.kind == "too_much":
            assert state.good_streak == 0
