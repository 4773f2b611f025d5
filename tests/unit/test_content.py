"""The clinical content: it loads, covers every procedure, fits SMS, matches the domain."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from painpath.content import PROCEDURE_IDS, get_content, get_messages, parse_offset
from painpath.sms_text import fits

ROOT = Path(__file__).resolve().parents[2]


def test_every_procedure_id_of_the_contract_has_content() -> None:
    assert sorted(get_content().procedures) == sorted(PROCEDURE_IDS)


@pytest.mark.parametrize("procedure", PROCEDURE_IDS)
def test_every_checkin_screens_first_and_asks_pain(procedure: str) -> None:
    content = get_content()
    for checkpoint, items in content.plan(procedure, ask_baseline=True):
        assert "pain_now" in items and "percent_relief" in items
        kinds = [content.questions[i].kind for i in items]
        # the red-flag screen comes before anything else
        assert kinds == sorted(kinds, key=lambda k: k != "yesno")
        if checkpoint.day >= 14:
            assert "pgic" in items


def test_peg_at_weekly_checkpoints_only() -> None:
    plan = dict((c.key, items) for c, items in get_content().plan("scs_trial", ask_baseline=False))
    assert [k for k, items in plan.items() if "peg_pain" in items] == ["7d", "14d", "21d"]


def test_messages_fit_two_sms_segments() -> None:
    for q in get_content().questions.values():
        assert fits(q.text) and fits(q.reask) and fits(q.text_first or ""), q.id
    assert all(fits(m) for m in get_messages().values())


def test_follow_ups_are_safety_questions_asked_only_after_a_yes() -> None:
    from web.admin_protocols import safety_choices

    content = get_content()
    follow_ups = {q.follow_up: q.id for q in content.questions.values() if q.follow_up}
    assert follow_ups == {"safety_neuro_change": "safety_neuro",
                          "safety_infection_severe": "safety_infection",
                          "safety_headache_severe": "safety_headache",
                          "safety_pump_withdrawal_severe": "safety_pump_withdrawal"}
    for item, parent in follow_ups.items():
        q = content.questions[item]
        assert q.parent == parent and q.is_safety and q.flag_tier == "emergency"
        assert content.questions[parent].flag_tier == "urgent"
    for proc in content.procedures.values():
        assert not {rule.item for rule in proc.safety} & set(follow_ups), proc.id
    assert not {item for item, _ in safety_choices()} & set(follow_ups)


def test_a_follow_up_must_be_a_safety_question(monkeypatch: pytest.MonkeyPatch) -> None:
    from painpath import content as content_mod

    real = content_mod._load_yaml

    def patched(name: str):  # type: ignore[no-untyped-def]
        data = real(name)
        if name == "questions.yaml":
            data["items"]["safety_burning"]["follow_up"] = "pain_now"
        return data

    monkeypatch.setattr(content_mod, "_load_yaml", patched)
    with pytest.raises(content_mod.ContentError, match="safety_burning: follow_up 'pain_now'"):
        content_mod.load_content()


def test_offsets() -> None:
    assert parse_offset("4h").total_seconds() == 4 * 3600
    assert parse_offset("15m").total_seconds() == 900
    with pytest.raises(ValueError):
        parse_offset("tomorrow")


def test_generated_domain_is_in_step_with_the_questions() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    from gen_checkin_domain import render

    current = (ROOT / "bot" / "domain" / "checkin_items.yml").read_text()
    assert current == render(), "run `make domain` after editing questions.yaml"


def test_every_sms_fits_two_gsm_segments_after_normalisation() -> None:
    from painpath.sms_text import is_gsm, segments, to_gsm

    texts = [q.text for q in get_content().questions.values()]
    texts += [q.text_first for q in get_content().questions.values() if q.text_first]
    texts += [q.reask for q in get_content().questions.values()]
    texts = [t.replace("{emergency_number}", "911") for t in texts]
    texts += list(get_messages().values())
    for text in texts:
        sms = to_gsm(text)
        assert is_gsm(sms), sms
        assert segments(sms) <= 2, (segments(sms), len(sms), sms)


def test_segments_counts_ucs2_and_gsm() -> None:
    from painpath.sms_text import segments, to_gsm

    assert segments("a" * 160) == 1 and segments("a" * 161) == 2
    assert segments("pain 8 → 3") == 1 and segments("→" * 71) == 2
    assert to_gsm("8 → 3, 100.4°F – ok") == "8 -> 3, 100.4 F - ok"
