"""Property tests for the red-flag triage engine (hypothesis).

- Negating a red flag never raises its tier ("no X", "I don't have X", "denies X" ...).
- Padding a red flag with unrelated text (benign sentences or neutral words, before and
  after) never lowers its tier.
- The engine's own token matcher returns exactly what spaCy's ``Matcher`` returns for the
  same compiled patterns (same matches, same order) on arbitrary word salad.

Phrases, fillers and words are written for these tests (not copied from the dev set).
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from painpath.triage import PROCEDURES, get_engine, tier_rank, triage

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

PROCS = st.sampled_from((None,) + PROCEDURES)

# Red flags as noun phrases, so that "no …", "denies …", "I don't have …" read naturally.
NOUN_FLAGS = [
    "numbness in my legs", "numbness in both feet", "weakness in my right leg",
    "weakness in my arms", "chest pain", "crushing chest pain", "shortness of breath",
    "trouble breathing", "fever", "a fever of 102", "a temp of 101.5 with chills",
    "a stiff neck and fever", "pus at the injection site", "redness and swelling at the site",
    "bladder incontinence", "numbness in my groin", "slurred speech",
    "a seizure", "new confusion", "suicidal thoughts", "thoughts of killing myself",
    "any plan to end my life", "tingling in my hands", "a severe headache when i sit up",
]

# Red flags as first-person statements (and the noun phrases above) for padding.
STATEMENT_FLAGS = NOUN_FLAGS + [
    "my left leg is numb", "i can't feel my foot", "i cant breathe", "my chest hurts bad",
    "temp is 101.8 and i have chills", "i want to kill myself", "i wish i was dead",
    "my face is drooping and my speech is slurred", "i wet myself and didnt feel it",
    "my blood sugar is 412", "pain is 10/10 and nothing helps", "the site is red hot and oozing",
    "my legs keep giving out", "i took the whole bottle of my pills",
    "headache is awful when i stand up and goes away lying flat",
]

NEGATIONS = [
    "no ", "No ", "i don't have ", "I dont have ", "denies ", "i have no ", "never had ",
    "without any ", "i'm not having ", "negative for ", "no sign of ", "not having any ",
    "there is no ", "i haven't had any ",
]

# Benign filler: no symptoms, no negation/hypothetical/resolution cue words.
FILLER_SENTENCES = [
    "Good morning.", "Thanks for checking in.", "The weather is lovely today.",
    "I watched a movie last night.", "Lunch was a sandwich and soup.", "Just got home.",
    "The parking was easy.", "My appointment is on Thursday.", "I am writing from my phone.",
    "Sorry for the typos!", "Hope you are well.", "It is raining here.",
    "I drank some water.", "Had toast for breakfast.", "The drive was long.",
    "Ok.", "Hello!", "Thank you", "I read a book;", "The cat is asleep on the couch.",
    # other people's past, in a sentence of its own (found a bug: these used to make the
    # engine attribute the next sentence's red flag to that person)
    "My wife had a nice day.", "My son got a new job last year.", "My mom had lunch with me.",
]
WORDS = ["coffee", "garden", "tuesday", "the", "a", "and", "with", "kitchen", "radio",
         "morning", "sunny", "cookies", "train", "blue", "car", "walked", "movie", "tea",
         "ok", "so", "um", "well", "lol", "thanks", "hi", "5", "pm", ",", "-", "!"]


def _rank(text: str, procedure: str | None) -> int:
    return tier_rank(triage(text, procedure).tier)


@SETTINGS
@given(phrase=st.sampled_from(NOUN_FLAGS), neg=st.sampled_from(NEGATIONS), proc=PROCS,
       end=st.sampled_from(["", ".", " today", " since yesterday", "!"]))
def test_negating_a_red_flag_never_raises_the_tier(phrase, neg, proc, end):
    plain = phrase + end
    negated = neg + phrase + end
    assert _rank(negated, proc) <= _rank(plain, proc), (negated, plain, proc)


def test_red_flag_phrases_are_red_flags():
    """The phrases used above must be flagged on their own, or the properties are vacuous."""
    weak = [p for p in STATEMENT_FLAGS if _rank(p, None) < tier_rank("urgent")
            and _rank(p, "epidural_steroid_injection") < tier_rank("urgent")]
    assert not weak, weak


_padding = st.lists(st.one_of(st.sampled_from(FILLER_SENTENCES), st.sampled_from(WORDS)),
                    max_size=4).map(" ".join)


@SETTINGS
@given(phrase=st.sampled_from(STATEMENT_FLAGS), before=_padding, after=_padding, proc=PROCS,
       sep=st.sampled_from([". ", " ", ", ", "\n", "! "]))
def test_padding_a_red_flag_never_lowers_the_tier(phrase, before, after, proc, sep):
    padded = (before + " " if before else "") + phrase + (sep + after if after else "")
    assert _rank(padded, proc) >= _rank(phrase, proc), (padded, phrase, proc)


@SETTINGS
@given(phrase=st.sampled_from(STATEMENT_FLAGS),
       n_sentences=st.integers(min_value=1, max_value=6), proc=PROCS)
def test_long_benign_preamble_never_lowers_the_tier(phrase, n_sentences, proc):
    preamble = " ".join(FILLER_SENTENCES[i % len(FILLER_SENTENCES)] for i in range(n_sentences))
    assert _rank(preamble + " " + phrase, proc) >= _rank(phrase, proc)


# ─────────────── token matcher == spaCy Matcher ───────────────

def _lexicon_words() -> list[str]:
    eng = get_engine()
    words: set[str] = set()
    for _, specs in eng.matcher.patterns:
        for kind, val, _opt, _final in specs:
            if isinstance(val, str):
                words.add(val)
            elif isinstance(val, frozenset) and len(val) < 60:
                words.update(val)
    for cues in eng.cues.values():
        for c in cues:
            words.update(c)
    return sorted(w for w in words if w.strip())


@pytest.fixture(scope="module")
def lexicon_words():
    return _lexicon_words()


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_token_matcher_equals_spacy_matcher(lexicon_words, data):
    eng = get_engine()
    vocab = lexicon_words + WORDS + [".", "?", ";", "12", "101.5", "three", "limbs", "shocks",
                                    "zapping", "stockpiling", "flare-up"]
    words = data.draw(st.lists(st.sampled_from(vocab), min_size=1, max_size=30))
    doc = eng.nlp.make_doc(" ".join(words))
    expected = [(eng.nlp.vocab.strings[m], s, e) for m, s, e in eng.spacy_matcher()(doc)]
    got = eng.matcher([t.text for t in doc], [t.lower_ for t in doc], [t.like_num for t in doc])
    assert got == expected
