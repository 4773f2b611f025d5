"""PHQ-4 placement and scoring (CLINICAL.md §2.2, §5)."""
from painpath import mood
from painpath.content import get_content

PHQ4 = ["phq_interest", "phq_down", "gad_nervous", "gad_worry"]


def _mood_keys(procedure: str) -> list[str]:
    return [cp.key for cp, items in get_content().plan(procedure, False)
            if set(PHQ4) <= set(items)]


def test_long_schedule_asks_phq4_first_and_about_four_weeks_in() -> None:
    assert _mood_keys("radiofrequency_ablation") == ["1d", "21d"]
    assert _mood_keys("scs_implant") == ["1d", "21d"]


def test_short_schedule_asks_phq4_first_and_last() -> None:
    assert _mood_keys("peripheral_nerve_block") == ["18h", "3d"]
    assert _mood_keys("medial_branch_block") == ["4h", "14d"]


def test_every_procedure_is_screened() -> None:
    for pid in get_content().procedures:
        assert _mood_keys(pid), pid


def test_phq2_and_gad2_scores() -> None:
    values = {"phq_interest": 1, "phq_down": 2, "gad_nervous": 0, "gad_worry": 2}
    assert mood.phq2_total(values) == 3 and mood.positive(3)
    assert mood.gad2_total(values) == 2 and not mood.positive(2)
    assert mood.phq2_total({"phq_interest": 3}) is None
    assert mood.asq_due(values) and not mood.asq_due({"phq_interest": 1, "phq_down": 1})
