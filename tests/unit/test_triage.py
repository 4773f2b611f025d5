"""Red-flag triage engine (painpath.triage) — the project's safety layer.

Cases here are written for the tests (not copied from the dev set); the dev set itself is
run at the end with the same bar as shared/tools/triage_score.py.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from painpath.triage import BYSTANDER_REASON, TIERS, TriageEngine, TriageResult, tier_rank

# These cases pin the lexicon's reviewable rules (painpath/content/redflags.yaml); the
# learned layer on top of it and the screens are tested in test_triage_layers.py.
LEXICON = TriageEngine(learned=False)
triage = LEXICON.triage


def tier(text: str, procedure: str | None = None) -> str:
    return triage(text, procedure).tier


def _check(cases):
    bad = [(exp, tier(text, proc), text, proc) for exp, text, proc in cases
           if tier(text, proc) != exp]
    assert not bad, "\n".join(f"expected {e}, got {g}: {t!r} [{p}]" for e, g, t, p in bad)


# ───────────────────────── API ─────────────────────────

def test_api_shape():
    r = triage("temp 101.5 and shivering")
    assert isinstance(r, TriageResult)
    assert r.tier == "urgent" and r.reasons and all(isinstance(x, str) for x in r.reasons)
    assert triage("thanks, all good").reasons == []
    assert TIERS == ("none", "routine", "urgent", "crisis", "emergency")
    assert [tier_rank(t) for t in TIERS] == [0, 1, 2, 3, 4]
    assert max(["routine", "emergency", "urgent"], key=tier_rank) == "emergency"
    with pytest.raises(dataclasses_error()):
        r.tier = "none"  # frozen


def dataclasses_error():
    import dataclasses
    return dataclasses.FrozenInstanceError


def test_unknown_procedure_raises():
    with pytest.raises(ValueError):
        triage("leg is numb", "knee_replacement")
    with pytest.raises(ValueError):
        tier_rank("severe")


def test_empty_and_none_procedure():
    assert triage("").tier == "none"
    assert triage("   ", None).tier == "none"


def test_reasons_highest_tier_first():
    r = triage("temp 101 and i cant feel my left leg", "epidural_steroid_injection")
    assert r.tier == "emergency"
    assert "numbness" in r.reasons[0]
    assert any("fever" in x for x in r.reasons[1:])


def test_engine_instance_and_speed(tmp_path):
    t = time.perf_counter()
    eng = TriageEngine(learned=False)
    build = time.perf_counter() - t
    assert build < 5.0  # typically ~1 s; generous for loaded CI machines
    assert eng.triage("cant breathe").tier == "emergency"
    t = time.perf_counter()
    for _ in range(50):
        eng.triage("day 4, site a bit sore, temp 99.1, walked to the mailbox", "facet_injection")
    assert (time.perf_counter() - t) / 50 < 0.05


def test_engine_custom_lexicon(tmp_path):
    lex = tmp_path / "lex.yaml"
    lex.write_text(
        "rules:\n  universal:\n    - id: purple\n      tier: urgent\n      reason: purple toes\n"
        "      patterns: ['purple ~2 toes']\n", encoding="utf-8")
    eng = TriageEngine(lex)
    assert eng.triage("my toes look purple").tier == "none"
    assert eng.triage("purple swollen toes").tier == "urgent"


def test_thread_safety():
    out, errs = [], []

    def work():
        try:
            for _ in range(20):
                out.append(triage("my leg went numb and weak", "epidural_steroid_injection").tier)
        except Exception as exc:  # pragma: no cover
            errs.append(exc)

    ts = [threading.Thread(target=work) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errs and set(out) == {"emergency"}


# ───────────────────────── emergency ─────────────────────────

def test_emergency_neuro():
    _check([
        ("emergency", "my left leg just gave out on the stairs, its gotten weak since lunch",
         "epidural_steroid_injection"),
        ("emergency", "cant feel my foot", "epidural_steroid_injection"),
        ("emergency", "numbnes creeping up both legs", None),
        ("emergency", "can barely lift my right arm since the neck injection", "facet_injection"),
        ("emergency", "my whole bottom and privates feel numb", None),
        ("emergency", "wet myself twice today without feeling it", None),
        ("emergency", "i cant pee at all since this morning and my back is worse", None),
        ("emergency", "No movement in my legs after the kyphoplasty", "vertebral_augmentation"),
    ])


def test_emergency_breathing_cardiac_allergy():
    _check([
        ("emergency", "SOB since i got home", None),
        ("emergency", "i'm struggling to breathe", None),
        ("emergency", "really tight pressure across my chest and down my arm", None),
        ("emergency", "lips and tongue swelling up fast", None),
        ("emergency", "broke out in hives all over and wheezing", None),
        ("emergency", "sharp stab in my side with each breath, short of breath after the shots",
         "trigger_point_injection"),
        ("emergency", "coughing up blood since the procedure", "vertebral_augmentation"),
    ])


def test_emergency_last_stroke_syncope_confusion_overdose():
    _check([
        ("emergency", "metallic taste and my ears are ringing", "peripheral_nerve_block"),
        ("emergency", "she had a seizure an hour after the block", "peripheral_nerve_block"),
        ("emergency", "one side of my face is drooping and my words come out wrong", None),
        ("emergency", "i fainted in the parking lot", "sympathetic_block"),
        ("emergency", "my dad is confused and keeps asking where he is", None),
        ("emergency", "he is nodding off and his lips look blue, pump refill was today",
         "intrathecal_pump"),
        ("emergency", "took a whole bottle of my pain pills an hour ago", None),
    ])


def test_emergency_combinations_fever():
    _check([
        ("emergency", "fever 102 and my neck is super stiff", "scs_trial"),
        ("emergency", "38.9 and so confused", None),
        ("emergency", "running a fever with excruciating back pain", "epidural_steroid_injection"),
        ("emergency", "39.4C, the worst headache of my life", None),
    ])


def test_caregiver_reports_escalate():
    _check([
        ("emergency", "my wife passed out and isn't responding", None),
        ("emergency", "my husband can't move his legs since the injection", None),
    ])


def test_someone_elses_emergency_is_a_note_that_says_call_911():
    """DESIGN.md: when the texter makes clear the person in danger is not the patient,
    tell them to call 911 (the reply) and leave a routine note instead of paging."""
    for text in [
        "my brother is having a seizure at work right now, not me, I'm ok",
        "Not about me: my dad is having chest pains and we called the ambulance",
        "a mi no, a mi vecina le duele el pecho ahorita, ya llamamos al 911",
        "my roommate took a whole bottle of pills, I'm the patient, I had the injection",
        "my son says he wants to end it all. He's not the patient, I am",
    ]:
        r = triage(text)
        assert (r.tier, r.reasons) == ("routine", [BYSTANDER_REASON]), text
    # a carer reporting the patient, someone else's past, and the patient's own red
    # flag beside someone else's stay what they were
    _check([
        ("emergency", "my husband is having chest pains right now since his injection", None),
        ("crisis", "my husband keeps saying he wants to end it all, I'm fine but scared", None),
        ("none", "my dad had a heart attack years ago, not me", None),
        ("emergency", "my wife has chest pain, not me, but I can't feel my legs", None),
    ])


# ───────────────────────── crisis ─────────────────────────

def test_crisis_direct_and_indirect():
    _check([
        ("crisis", "i want to end my life", None),
        ("crisis", "honestly everyone would be better off without me", None),
        ("crisis", "some nights i hope i don't wake up", None),
        ("crisis", "been thinking of taking all my pills at once", None),
        ("crisis", "i have a stash of oxy saved for when i cant take it anymore", None),
        ("crisis", "life isn't worth living with this pain", None),
        ("crisis", "i keep cutting myself to feel something", None),
        ("crisis", "if the trial fails im going to kill myself", "scs_trial"),
        ("crisis", "im gonna find that doctor and hurt him", None),
        ("crisis", "ya no quiero vivir", None),
        ("crisis", "kms", None),
    ])


def test_crisis_not_negated_by_loose_rules():
    # questions, hypotheticals, other people and distant negations do not cancel crisis
    _check([
        ("crisis", "no one cares, i want to die", None),
        ("crisis", "what if i just took all my pills?", None),
        ("crisis", "my wife doesnt know but i have been thinking about suicide", None),
        ("crisis", "site is not red. i want to kill myself", "facet_injection"),
    ])


def test_crisis_explicit_denial():
    _check([
        ("none", "i am not suicidal, just annoyed with the pharmacy", None),
        ("none", "i would never hurt myself, dont worry", None),
    ])


# ───────────────────────── urgent ─────────────────────────

def test_urgent_infection_bleeding():
    _check([
        ("urgent", "the incision is oozing yellowish pus", "scs_implant"),
        ("urgent", "redness around the needle spot keeps spreading", "prp_injection"),
        ("urgent", "injection site swollen and hot to touch", "sacroiliac_joint_injection"),
        ("urgent", "still bleeding after 30 minutes of pressure", None),
        ("urgent", "having chills and sweats tonight", None),
        ("urgent", "threw up four times and cant keep water down", None),
    ])


def test_temperature_thresholds_f_and_c():
    _check([
        ("urgent", "temp 101", None),
        ("urgent", "100.4", None),
        ("urgent", "temperature 100.4F", None),
        ("urgent", "102 degrees", None),
        ("urgent", "38.5C", None),
        ("urgent", "38.0 c", None),
        ("urgent", "fiebre de 38.2", None),
        ("routine", "temp 100.2", None),
        ("routine", "37.8 C", None),
        ("none", "temp 98.7", None),
        ("none", "36.9C this morning", None),
    ])


def test_glucose():
    _check([
        ("urgent", "blood sugar 340 after the steroid", "epidural_steroid_injection"),
        ("urgent", "glucose was 18.5 mmol this morning", "epidural_steroid_injection"),
        ("urgent", "sugars 290, 310, 335 today", "facet_injection"),
        ("routine", "sugar 240 today", "epidural_steroid_injection"),
        ("none", "sugar 110 fasting", "epidural_steroid_injection"),
    ])


def test_urgent_pain_and_other():
    _check([
        ("urgent", "pain is 10/10 since the shot and nothing helps", "facet_injection"),
        ("urgent", "excruciating burning along the scar, getting worse", "radiofrequency_ablation"),
        ("urgent", "itchy rash on my chest", None),
        ("urgent", "feeling dizzy and lightheaded", None),
    ])


# ───────────────────────── procedure-specific ─────────────────────────

def test_procedure_specific():
    _check([
        ("urgent", "headache is awful when i sit up but fine lying flat", "epidural_steroid_injection"),
        ("urgent", "my head pounds every time i stand, lying down helps", "scs_trial"),
        ("urgent", "the pump keeps beeping", "intrathecal_pump"),
        ("urgent", "missed my refill appointment last week", "intrathecal_pump"),
        ("urgent", "itching all over with no rash", "intrathecal_pump"),
        ("urgent", "dressing came off and the wire looks longer", "scs_trial"),
        ("urgent", "getting zapped by the stimulator when i turn", "scs_implant"),
        ("urgent", "still numb and weak 5 days after the block", "peripheral_nerve_block"),
        ("urgent", "cant swallow water since the stellate block", "sympathetic_block"),
        ("routine", "my hand is still numb from the block, slowly coming back", "peripheral_nerve_block"),
        ("routine", "droopy eyelid and stuffy nose on that side", "sympathetic_block"),
        ("routine", "small numb patch of skin near the scar", "radiofrequency_ablation"),
    ])
    # a pump alarm is not a universal red flag; the procedure adds it
    assert tier("the pump keeps beeping", "intrathecal_pump") == "urgent"


def test_pump_marked_drowsiness_or_drowsiness_since_a_refill_is_an_emergency():
    # CLINICAL.md §1.8: extreme drowsiness is an overdose sign; the risk is highest
    # after a refill or a dose change
    _check([
        ("emergency", "very drowsy since the refill", "intrathecal_pump"),
        ("emergency", "so sleepy since they filled the pump", "intrathecal_pump"),
        ("emergency", "she's been drowsy ever since her pump refill on monday", "intrathecal_pump"),
        ("emergency", "extremely groggy after they changed the dose", "intrathecal_pump"),
        ("emergency", "since the rate went up he is sedated most of the day", "intrathecal_pump"),
        ("urgent", "a bit drowsy today", "intrathecal_pump"),
        ("none", "not drowsy since the refill", "intrathecal_pump"),
        ("none", "very drowsy since the refill", "epidural_steroid_injection"),
    ])


# ───────────────────────── routine ─────────────────────────

def test_routine():
    _check([
        ("routine", "bit sore where they injected", "facet_injection"),
        ("routine", "face is flushed and i cant sleep", "epidural_steroid_injection"),
        ("routine", "feeling kind of down this week", None),
        ("routine", "mild headache today", None),
        ("routine", "pain flared up a bit after yard work", "radiofrequency_ablation"),
    ])


# ───────────────────────── traps ─────────────────────────

def test_negation():
    _check([
        ("none", "no fever, no redness", None),
        ("none", "no fever, redness or swelling", None),
        ("none", "denies numbness", None),
        ("none", "I don't have any weakness in my legs", "epidural_steroid_injection"),
        ("none", "haven't had chills at all", None),
        ("none", "breathing fine, no chest pain", "trigger_point_injection"),
        ("none", "never passed out", None),
    ])
    # negation scope stops at "but"
    assert tier("no fever but my leg is numb", "epidural_steroid_injection") == "emergency"
    assert tier("no chills, but temp 101.2") == "urgent"


def test_resolved():
    _check([
        ("none", "the numbness from yesterday is gone", "epidural_steroid_injection"),
        ("none", "dizziness went away after i ate", None),
        ("none", "no more tingling in my toes", None),
        ("none", "the headache has cleared up", None),
    ])


def test_hypothetical_and_questions():
    _check([
        ("none", "what do I do if I get a fever?", None),
        ("none", "what if my legs go numb, do i go to the ER?", "epidural_steroid_injection"),
        ("none", "just in case, what counts as a fever?", None),
        ("none", "how will i know if its infected?", None),
    ])


def test_other_people():
    _check([
        ("none", "my wife had chest pain last year after her injection", None),
        ("none", "my neighbor got a fever after his shot, could that happen to me?", None),
        ("none", "my brother had a seizure as a kid, does that matter?", None),
    ])
    # but the patient's own symptom in the same message still counts
    assert tier("my wife says i seem confused today") == "emergency"


def test_idioms():
    _check([
        ("routine", "this pain is killing me", None),
        ("none", "dying to get back to golf", None),
        ("none", "i'd kill for a good night's sleep", None),
        ("none", "this back will be the death of me but today is decent", None),
        ("none", "im a bit confused about my appointment time", None),
    ])


def test_long_message_buried_flag():
    msg = ("morning! slept ok, had oatmeal, my daughter came by and we watched a movie. "
           "oh and since about noon my right leg wont move properly and drags. "
           "anyway what time is my appointment thursday? thanks so much")
    assert tier(msg, "epidural_steroid_injection") == "emergency"


def test_highest_tier_wins():
    r = triage("site is red and warm, temp 101, and i want to die", "scs_trial")
    assert r.tier == "crisis"
    assert triage("chest pain and i want to die").tier == "emergency"


def test_spanish():
    _check([
        ("urgent", "tengo fiebre y escalofrios", None),
        ("emergency", "se desmayo mi esposo y no responde", None),
        ("crisis", "quiero morirme", None),
        ("none", "no tengo fiebre", None),
    ])


# ───────────────────────── dev set ─────────────────────────

DEV = Path(__file__).resolve().parents[3] / "shared/eval/dev/triage.jsonl"
_RANK = {"none": 0, "routine": 1, "urgent": 2, "crisis": 3, "emergency": 4}


@pytest.mark.skipif(not DEV.exists(), reason="dev set not present")
def test_dev_set_bar():
    rows = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    exact = sum(triage(row["text"], row.get("procedure")).tier == row["expected"] for row in rows)
    misses, false_alarms, benign = _bar(rows)
    assert not misses, misses
    assert false_alarms <= 0.05 * benign, f"{false_alarms}/{benign} false alarms"
    assert exact >= 0.9 * len(rows)


# Paraphrase sets written blind (without reading the lexicon, the engine or the dev set)
# to measure how the lexicon generalises: tests/data/triage_paraphrases.jsonl (README).
PARAPHRASES = Path(__file__).resolve().parents[1] / "data/triage_paraphrases.jsonl"


def _bar(rows):
    misses, false_alarms, benign = [], 0, 0
    for row in rows:
        e, p = row["expected"], triage(row["text"], row.get("procedure")).tier
        if e in ("emergency", "crisis") and p not in ("emergency", "crisis"):
            misses.append((row["id"], e, p, row["text"]))
        elif e == "urgent" and _RANK[p] < _RANK["urgent"]:
            misses.append((row["id"], e, p, row["text"]))
        if e in ("none", "routine"):
            benign += 1
            false_alarms += _RANK[p] >= _RANK["urgent"]
    return misses, false_alarms, benign


# Messages the lexicon does not catch. Indirect disclosures: each rule that would has
# matched ordinary messages too ("I've picked the date" of a wedding; "working out how
# to do it" of an exercise). Listed so that nothing else slips; tests/data/README.md.
KNOWN_MISSES = {"r5a_003", "r5a_049", "r5a_062", "r5a_102", "r5a_112", "r5a_134",
                "r6_091"}  # "block was monday and today is friday": no weekday arithmetic


def test_blind_paraphrase_sets_bar():
    rows = [json.loads(line) for line in PARAPHRASES.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    assert len(rows) >= 1670
    misses, false_alarms, benign = _bar(rows)
    misses = [m for m in misses if m[0] not in KNOWN_MISSES]
    assert not misses, "\n".join(map(str, misses))
    assert false_alarms <= 0.05 * benign, f"{false_alarms}/{benign} false alarms"


# ───────────────────────── regressions / engine internals ─────────────────────────

def test_other_person_in_an_earlier_sentence_does_not_own_the_symptom():
    _check([
        ("emergency", "My wife had a nice day. Crushing chest pain.", None),
        ("emergency", "My son got a new job. Numbness in both legs since lunch.", None),
        ("emergency", "My husband had a stroke last year. Face drooping on one side.", None),
        ("none", "my wife had chest pain last year, should i worry?", None),
        ("none", "My wife. She had chest pain years ago.", None),
    ])


def test_token_matcher_matches_spacy_on_dev_set():
    """The engine's pruned token matcher must return spaCy Matcher's exact output."""
    eng = TriageEngine(learned=False)
    if not DEV.exists():
        pytest.skip("dev set not present")
    rows = [json.loads(line) for path in (DEV, PARAPHRASES)
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    spacy_m = eng.spacy_matcher()
    for row in rows:
        doc = eng.nlp.make_doc(eng._norm(row["text"]))
        want = [(eng.nlp.vocab.strings[m], s, e) for m, s, e in spacy_m(doc)]
        got = eng.matcher([t.text for t in doc], [t.lower_ for t in doc], [t.like_num for t in doc])
        assert got == want, row["text"]


@pytest.mark.parametrize("text", ["loss of bladder control", "i lost bladder control last night",
                                  "no bladder control since this morning",
                                  "losing bowel control"])
def test_loss_of_bladder_or_bowel_control_is_an_emergency(text: str) -> None:
    assert triage(text).tier == "emergency"


def test_no_loss_of_bladder_control_is_not_a_red_flag() -> None:
    assert triage("no fever, no loss of bladder control").tier == "none"


def test_someone_else_when_the_texter_is_fine_or_names_their_own_appointment():
    _check([
        ("none", "my brother fainted at the match on saturday, i was fine though", None),
        ("none", "my daughter has a fever so i may need to move my appointment", None),
        ("none", "the dog was sick all over the kitchen floor", None),
        # a carer reporting the patient's symptoms still escalates
        ("emergency", "my husband fainted in the bathroom and is not answering me", None),
        ("urgent", "my son has a fever since the injection yesterday", "facet_injection"),
    ])


def test_resolution_after_but_and_resolution_still_awaited():
    _check([
        ("none", "arm tingled for a bit after the block but it was back to normal by tea time",
         None),
        ("emergency", "the numbness should have worn off by now and it is creeping into both legs",
         "medial_branch_block"),
    ])


def test_an_explained_warning_sign_then_denied():
    _check([
        ("none", "the leaflet says a fever is a warning sign, none so far", None),
        # explained but not denied: still a red flag
        ("emergency", "the doctor said leg weakness is a warning sign and my legs are weak now",
         None),
    ])


def test_crisis_paraphrases_and_their_idioms():
    _check([
        ("crisis", "my wife keeps saying she wants to die", None),
        ("crisis", "what is the point of living like this", None),
        ("crisis", "they'd all be better off if i was gone", None),
        ("crisis", "i have been stockpiling my tablets", None),
        ("crisis", "i dont feel safe with myself tonight", None),
        ("crisis", "he told me he has been thinking about hanging himself", None),
        ("crisis", "i keep picturing stepping in front of a bus", None),
        ("crisis", "i have been cutting my thighs with a razor again", None),
        ("none", "i would rather not wake up at 5 for the appointment", None),
        ("none", "i could die of embarrassment, fell asleep in the waiting room", None),
        ("none", "i want to take my life back from this pain", None),
        ("none", "the cat jumped out of the window again", None),
    ])


def test_asked_and_answered_no():
    _check([
        ("none", "Fever? No. Numb legs? No. Bladder ok? Yes", None),
        ("urgent", "fever no better after tylenol, 101.2", None),  # "no better" is not an answer
    ])


def test_device_failure_is_not_resolved_by_stopped():
    _check([("urgent", "the app says a lead is disconnected and the buzzing has stopped",
             "scs_implant")])


def test_spanish_with_and_without_accents():
    _check([
        ("emergency", "no puedo orinar desde anoche", None),
        ("emergency", "tengo la cara y la lengua hinchadas", None),
        ("crisis", "ya no quiero vivir así", None),
        ("crisis", "ya no quiero vivir asi", None),
        ("none", "me muero de hambre jaja", None),
    ])


def test_carer_reporting_something_that_just_happened():
    _check([("emergency", "my husband has just collapsed in the garden", None),
            ("none", "my husband collapsed years ago, he is fine now", None)])


def test_prolonged_block_effects_across_sentences():
    _check([
        ("urgent", "My hand is still numb. It has been 5 days since the nerve block.",
         "peripheral_nerve_block"),
        ("routine", "My hand is still numb. The block was this morning.", "peripheral_nerve_block"),
        ("urgent", "Voice still hoarse. It has been three days.", "sympathetic_block"),
    ])
