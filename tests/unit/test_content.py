"""The clinical content: it loads, covers every procedure, fits SMS, matches the domain."""
from __future__ import annotations

import re
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


# CLINICAL.md §2 gives these stems verbatim (NRS, % relief): they keep "treated area".
VERBATIM = {"pain_now", "percent_relief"}
JARGON = ("treated area", "drainage", "bowel", "baseline", "incision", "block")


def _patient_texts() -> list[tuple[str, str]]:
    """Every patient-facing check-in, screen and exercise text, with where it is."""
    from painpath import programs
    from painpath.screens import screen_book

    out = [(q.id, t) for q in get_content().questions.values()
           for t in (q.text, q.reask, q.text_first or "")]
    out += [(f"messages.{k}", m) for k, m in get_messages().items()]
    out += [(f"screens.{s.id}", q) for s in screen_book().screens.values()
            for lang, q in s.question.items() if lang == "en"]
    p = programs.load_programs()
    out += [(f"exercises.{e.id}", t) for e in p.exercises.values()
            for t in [e.title, e.done] + [x for s in e.steps for x in (s.text, s.gentle or "",
                                                                        s.restricted or "")]]
    out += [(f"exercises.messages.{k}", m) for k, m in p.messages.items()]
    return out


def test_patient_texts_use_plain_words() -> None:
    for where, text in _patient_texts():
        if where in VERBATIM:
            continue
        low = re.sub(r"\{\w+\}", "", text.lower())  # placeholders are not words the patient reads
        assert not any(word in low for word in JARGON), (where, text)


def test_the_instrument_stems_stay_verbatim() -> None:
    questions = get_content().questions
    assert questions["pain_now"].text == (
        "On a scale of 0 (no pain) to 10 (worst pain imaginable), how much pain do you have "
        "right now in the treated area?")
    assert questions["percent_relief"].text.startswith(
        "Compared with your usual pain before the procedure, how much relief do you have right "
        "now in the treated area? Reply 0")


def test_a_yes_no_question_asks_one_thing() -> None:
    """Not two questions joined ("Are you A, or is B?", "Is it A, and is it B?"): a
    list of signs is asked as "any of these"."""
    two_questions = ("or is it", "or is your", "or do you", "and is it", ", or is ")
    for where, text in _patient_texts():
        if "YES or NO" not in text:
            continue
        question = text.split("?")[0].lower()
        assert not any(joint in question for joint in two_questions), (where, text)
        assert text.count("?") == 1, (where, text)


def test_every_safety_sign_is_still_asked() -> None:
    """Rewording kept each red flag (CLINICAL.md §1.0, §1.8)."""
    q = get_content().questions
    for item, signs in {
        "safety_neuro": ("weakness", "numbness", "groin", "pee or poop"),
        "safety_neuro_change": ("worse", "spreading", "expect", "peeing or pooping"),
        "safety_infection": ("fever", "redness", "warmth", "swelling", "fluid or pus"),
        "safety_headache_severe": ("fever", "stiff neck", "confusion", "very unwell",
                                   "worst headache"),
        "safety_pump": ("very sleepy", "hard to wake", "slow or shallow breathing"),
        "safety_pump_withdrawal": ("alarm", "itching without a rash", "tingling", "spasms"),
    }.items():
        assert all(sign in q[item].text for sign in signs), (item, q[item].text)


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
