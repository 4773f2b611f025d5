"""The layered triage: the lexicon, the learned recall layer on top, and the screens.

`combine_layers` is tested with made-up probabilities and thresholds, so these cases do
not move when the model is retrained; the trained model itself is tested on the shared
dev set, for freshness, and on the held-out rounds (tests/data/rounds/).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from painpath.learned.recall import CLASSES, get_model
from painpath.screens import GENERAL, IDEATION, NURSE_CALL, screen_book
from painpath.sms_text import segments
from painpath.triage import (LEARNED_REASONS, MIN_WORDS, TIERS, TriageResult, combine_layers,
                             get_engine, tier_rank)

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT.parent / "shared" / "eval" / "dev" / "triage.jsonl"
TH = {"life_high": 0.8, "alert_high": 0.8,
      "emergency_low": 0.3, "crisis_low": 0.3, "alert_low": 0.4}


def probs(**given: float) -> dict[str, float]:
    rest = (1.0 - sum(given.values())) / (len(CLASSES) - len(given))
    return {c: given.get(c, rest) for c in CLASSES}


def lex(tier: str = "none", *reasons: str) -> TriageResult:
    return TriageResult(tier, list(reasons))


# ───────────────────────── combine_layers ─────────────────────────

TEXT = "a message long enough for the recall layer"


def test_the_recall_layer_abstains_on_very_short_messages():
    """"no idea really": too short for what the layer learned from; the lexicon decides."""
    assert MIN_WORDS >= 2
    assert combine_layers(lex(), probs(crisis=0.9), TH, "no idea really") == ("none", [], None)
    assert combine_layers(lex("routine", "flare"), probs(urgent=0.9), TH, "bad flare") == \
        ("routine", ["flare"], None)
    assert combine_layers(lex("crisis", "thoughts of suicide"), probs(none=1.0), TH,
                          "want to die")[2] == IDEATION
    assert combine_layers(lex(), probs(crisis=0.9), TH, "no idea really, sorry")[0] == "crisis"


def test_confident_recall_raises_to_the_likelier_threat():
    tier, reasons, screen = combine_layers(lex(), probs(crisis=0.85), TH, TEXT)
    assert (tier, reasons[0], screen) == ("crisis", LEARNED_REASONS["crisis"], IDEATION)
    tier, _, screen = combine_layers(lex(), probs(emergency=0.5, crisis=0.35), TH, TEXT)
    assert (tier, screen) == ("emergency", None)


def test_confident_alert_raises_to_urgent_and_keeps_the_lexicon_reasons():
    tier, reasons, _ = combine_layers(lex("routine", "soreness"), probs(urgent=0.9), TH, TEXT)
    assert tier == "urgent" and reasons == [LEARNED_REASONS["urgent"], "soreness"]


def test_the_recall_layer_never_lowers_a_confident_lexicon_tier():
    tier, reasons, _ = combine_layers(lex("emergency", "chest pain"), probs(crisis=0.9), TH, TEXT)
    assert (tier, reasons) == ("emergency", ["chest pain"])


def test_every_crisis_gets_asq_item_5():
    assert combine_layers(lex("crisis", "thoughts of suicide"), probs(none=0.5), TH, TEXT)[2] \
        == IDEATION


@pytest.mark.parametrize("text,expected", [
    ("my legs feel odd since this morning", "neuro"),
    ("one side of my face feels odd", "stroke"),
    ("odd pressure in my chest", "chest"),
    ("la bomba hace un ruido raro", "pump"),
    ("something is off and i feel odd", GENERAL),
])
def test_unsure_of_an_emergency_asks_the_targeted_screen(text: str, expected: str):
    tier, reasons, screen = combine_layers(lex(), probs(emergency=0.4), TH, text)
    assert (tier, reasons, screen) == ("none", [], expected)


def test_unsure_of_ideation_asks_asq5_and_unsure_of_an_alert_offers_a_nurse_call():
    assert combine_layers(lex(), probs(crisis=0.35), TH, TEXT)[2] == IDEATION
    assert combine_layers(lex("routine", "flare"), probs(urgent=0.5), TH, TEXT)[2] == NURSE_CALL


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from(TIERS), st.lists(st.floats(0, 1), min_size=5, max_size=5))
def test_the_recall_layer_only_ever_raises(tier: str, raw: list[float]):
    total = sum(raw) or 1.0
    p = {c: v / total for c, v in zip(CLASSES, raw)}
    got, reasons, _ = combine_layers(lex(tier, "r") if tier != "none" else lex(), p, TH, TEXT)
    assert tier_rank(got) >= tier_rank(tier)
    assert tier == "none" or "r" in reasons


@pytest.mark.parametrize("text", ["Доктор, жена не просыпается, дышит редко",
                                  "Bố tôi không nhìn thấy gì ở mắt phải sáng nay",
                                  "أبي لا يستطيع تحريك ساقه"])
def test_a_message_in_a_language_we_cannot_read_is_a_note_and_a_screen(text: str):
    r = get_engine().triage(text)
    assert (r.tier, r.screen) == ("routine", screen_book().unreadable_screen)
    assert r.reasons[0] == screen_book().unreadable_reason


@pytest.mark.parametrize("text", ["mi esposo está débil y no camina", "ok 👍 gracias",
                                  "café crème brûlée, all good", "Señora, ¿cómo está?"])
def test_english_spanish_and_emoji_are_readable(text: str):
    assert screen_book().unreadable_reason not in get_engine().triage(text).reasons


# ───────────────────────── screens content ─────────────────────────

def test_every_screen_is_short_plain_and_carries_its_safety_net():
    book = screen_book()
    assert {IDEATION, GENERAL, NURSE_CALL} <= set(book.screens)
    assert book.timeout_minutes == 10
    for sid, screen in book.screens.items():
        assert screen.tier in ("emergency", "crisis", "urgent"), sid
        for lang in ("en", "es"):
            text = screen.text(lang)
            assert segments(text) <= 2, (sid, lang, text)
            assert "911" in text or "988" in text, (sid, lang)
            assert text.count("?") == 1, (sid, lang)  # one question at a time


# ───────────────────────── the trained model ─────────────────────────

def test_the_stored_model_was_trained_on_the_current_data():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "train_triage_model.py"),
                           "--check"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_model_gives_a_probability_per_tier():
    p = get_model().probabilities("i cant feel my legs and i wet myself", None)
    assert set(p) == set(CLASSES) and abs(sum(p.values()) - 1.0) < 1e-5
    assert p["emergency"] > p["none"]


def _score(rows: list[dict]) -> dict[str, int]:
    engine = get_engine()
    out = {"unguarded": 0, "screened": 0, "false_alarms": 0, "screened_benign": 0, "benign": 0,
           "red_flags": 0}
    for row in rows:
        r = engine.triage(row["text"], row.get("procedure"))
        e = row["expected"]
        if e in ("emergency", "crisis", "urgent"):
            out["red_flags"] += 1
            miss = (r.tier not in ("emergency", "crisis")) if e != "urgent" else \
                tier_rank(r.tier) < tier_rank("urgent")
            if miss:
                out["screened" if r.screen else "unguarded"] += 1
        else:
            out["benign"] += 1
            out["false_alarms"] += tier_rank(r.tier) >= tier_rank("urgent")
            out["screened_benign"] += r.screen is not None
    return out


@pytest.mark.skipif(not DEV.exists(), reason="shared dev set not present")
def test_dev_set_bar_with_the_layers():
    rows = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line]
    s = _score(rows)
    assert s["unguarded"] == 0 and s["screened"] == 0, s
    assert s["false_alarms"] <= 0.05 * s["benign"], s
    assert s["screened_benign"] <= 0.10 * s["benign"], s


# ───────────────────────── held-out rounds ─────────────────────────

ROUNDS = ROOT / "tests" / "data" / "rounds"
# First contact of the layered triage with each round (tests/data/README.md): scored
# before anything was changed for it and never trained on. A change may only do better.
FIRST_CONTACT = {
    # r9-r12 were held out here, then trained on (data/triage/README.md)
    "r13": {"unguarded": 3, "screened": 7, "false_alarms": 4},
    "r14": {"unguarded": 1, "screened": 6, "false_alarms": 7},
}


def test_every_held_out_round_has_its_first_contact_recorded():
    assert {p.stem for p in ROUNDS.glob("*.jsonl")} == set(FIRST_CONTACT)


@pytest.mark.parametrize("name", sorted(FIRST_CONTACT))
def test_held_out_round_is_no_worse_than_at_first_contact(name: str):
    rows = [json.loads(line) for line in (ROUNDS / f"{name}.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    s, first = _score(rows), FIRST_CONTACT[name]
    assert s["unguarded"] <= first["unguarded"], s
    assert s["unguarded"] + s["screened"] <= first["unguarded"] + first["screened"], s
    assert s["false_alarms"] <= first["false_alarms"] + 1, s
