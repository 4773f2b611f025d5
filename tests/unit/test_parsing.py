"""Unit tests for painpath.parsing: free-text answers to check-in questions."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from painpath.parsing import (
    KINDS,
    parse_answer,
    parse_pain,
    parse_percent,
    parse_pgic,
    parse_yes_no,
)

DEV_NUMBERS = Path(__file__).resolve().parents[3] / "shared/eval/dev/numbers.jsonl"
# Written blind, without reading the parser or the dev set (tests/data/README.md).
PARAPHRASES = Path(__file__).resolve().parents[1] / "data/numbers_paraphrases.jsonl"


def _same(got: object, expected: object) -> bool:
    """Exact match: equal value and same type (7 is not 7.0; None only matches None)."""
    if expected is None or got is None:
        return got is expected
    return got == expected and type(got) is type(expected)


# --------------------------------------------------------------------------- #
# Cases quoted in the issue
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize(
    ("question", "text", "expected"),
    [
        ("pain_0_10", "seven", 7),
        ("pain_0_10", "7/10", 7),
        ("pain_0_10", "a 6 maybe 7", 7),
        ("pain_0_10", "was 8 now 3", 3),
        ("percent_relief", "about 80%", 80),
        ("percent_relief", "half", 50),
        ("percent_relief", "no relief", 0),
    ],
)
def test_issue_examples(question: str, text: str, expected: int) -> None:
    assert _same(parse_answer(question, text), expected)


# --------------------------------------------------------------------------- #
# parse_pain
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # plain numbers, words, Spanish
        ("0", 0), ("4", 4), ("10", 10), ("five", 5), ("a ten", 10), ("I'd say nine", 9),
        ("siete", 7), ("cero", 0), ("ocho", 8), ("It's a one", 1),
        # decimals and halves: float only when not integral
        ("5.5", 5.5), ("6.0", 6), ("five and a half", 5.5), ("5 1/2", 5.5), ("7.5/10", 7.5),
        # fractions and scale descriptions: the 10 is not an answer
        ("its a 2/10 rn", 2), ("8 out of 10", 8), ("seven out of ten", 7), ("10/10", 10),
        ("on a scale of 1 to 10 I'd say 6", 6), ("6 on a 0-10 scale", 6), ("out of 10, a 6", 6),
        ("an 8 on your scale", 8),
        # ranges and hedges take the higher value
        ("7 to 8", 8), ("3, possibly 4", 4), ("4, could be 5", 5), ("4 or 5", 5),
        ("between a 2 and a 3", 3), ("two to three", 3), ("in the 1 to 2 range", 2),
        ("seis o siete", 7), ("like a 7ish", 7), ("not a 10 but like 8", 8),
        # changes take the current value
        ("was 9 this morning, 5 now", 5), ("now 3, was 8", 3), ("3 now, earlier 8", 3),
        ("yesterday 7 today 4", 4), ("8 yesterday but 3 today", 3), ("went from 8 to 3", 3),
        ("8 down to 3", 3), ("8 -> 3", 3), ("was 8-9, now 3-4", 4), ("still 7, was 8", 7),
        ("8 but it was 10 last night", 8),
        # a value only described as past is still an answer (baseline question)
        ("it was a 6 before the procedure", 6),
        # times, doses, durations, levels and percentages are not answers
        ("had a norco at 2pm, currently a 3", 3), ("took 2 tylenol, pain is 6", 6),
        ("I took one norco and I'm at 4", 4), ("took 2 at 3 and now its 5", 5),
        ("3 after my 10 mg oxy", 3), ("day 3 post op, pain 4", 4),
        ("2 hours after the shot it's 4", 4), ("L4-5 is sore, about a 5", 5),
        ("about 50% better, pain 3", 3), ("walked 2 miles, pain 3", 3),
        # zero phrases
        ("pain free today", 0), ("no pain", 0), ("none", 0), ("nada", 0),
        ("doesn't hurt at all", 0), ("no pain meds helped, still a 7", 7),
    ],
)
def test_parse_pain(text: str, expected: int | float) -> None:
    assert _same(parse_pain(text), expected)


@pytest.mark.parametrize(
    "text",
    ["15", "12", "11/10", "-1", "100", "50%", "terrible", "dunno", "a little", "not sure",
     "no", "", "not pain free", "twenty five"],
)
def test_parse_pain_none(text: str) -> None:
    assert parse_pain(text) is None


# --------------------------------------------------------------------------- #
# parse_percent
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("70%", 70), ("80 percent better", 80), ("25%ish", 25), ("~75%", 75), ("90+", 90),
        ("thirty", 30), ("sixty percent", 60), ("twenty-five percent", 25), ("ninety five", 95),
        ("a hundred percent", 100), ("cincuenta por ciento", 50), ("treinta y cinco", 35),
        ("40 or so", 40), ("65% give or take", 65), ("helped a ton, like 85", 85),
        # ranges
        ("helped 90-95%", 95), ("somewhere 20 to 30 percent", 30), ("it helped 60 to 70", 70),
        # changes
        ("was 50% yesterday, today 80%", 80), ("90% first day, 50% now", 50),
        ("the block gave me 100% for 6 hours, now 40%", 40), ("went from 20% to 60%", 60),
        ("was 100% at first, now nothing", 0),
        # words for fractions
        ("halfway there i guess", 50), ("fifty fifty", 50), ("50/50", 50), ("a quarter", 25),
        ("three quarters", 75), ("7/10 better", 70),
        # everything
        ("all of it", 100), ("completely", 100), ("totally gone", 100), ("complete relief", 100),
        ("pain is gone", 100), ("pain free", 100),
        # nothing
        ("nothing, zero relief", 0), ("didnt do squat", 0), ("it didn't help", 0),
        ("didnt help at all", 0), ("zero", 0), ("none", 0), ("nada", 0), ("not at all", 0),
        ("no difference", 0), ("0%", 0),
        # noise
        ("took 2 pills, 60%", 60), ("fever of 99, 60% better", 60),
    ],
)
def test_parse_percent(text: str, expected: int | float) -> None:
    assert _same(parse_percent(text), expected)


@pytest.mark.parametrize(
    "text",
    ["200 lol", "101", "a hundred and ten", "no idea", "a little", "some", "a lot", "not much",
     "didn't help much", "not completely", "almost all of it", "less than half", "it's worse",
     "pain is 3/10", ""],
)
def test_parse_percent_none(text: str) -> None:
    assert parse_percent(text) is None


# --------------------------------------------------------------------------- #
# parse_pgic
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1), ("2", 2), ("seven", 7), ("I'd say a 3", 3), ("#3", 3), ("3 or 4", 4),
        ("2 - much improved", 2), ("4 no change", 4),
        ("very much better", 1), ("very much improved", 1), ("so much better", 1),
        ("much better", 2), ("much improved", 2), ("a lot better thanks", 2), ("way better", 2),
        ("a little better", 3), ("minimally improved", 3), ("just slightly better", 3),
        ("about the same", 4), ("no change", 4), ("same", 4), ("no better no worse", 4),
        ("a bit worse", 5), ("minimally worse", 5), ("slightly worse", 5),
        ("much worse", 6), ("way worse", 6), ("very much worse", 7),
        ("mucho mejor", 2), ("igual", 4),
    ],
)
def test_parse_pgic(text: str, expected: int) -> None:
    assert _same(parse_pgic(text), expected)


@pytest.mark.parametrize(
    "text", ["0", "8", "better", "worse", "not much better", "70% better", "dunno", ""],
)
def test_parse_pgic_none(text: str) -> None:
    assert parse_pgic(text) is None


# --------------------------------------------------------------------------- #
# parse_yes_no
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize(
    "text",
    ["yes", "YES!", "yeah", "yep", "y", "yes I do", "sí", "si", "correct", "affirmative",
     "uh huh", "yesss", "yes, a fever of 101", "yes a little"],
)
def test_parse_yes_no_true(text: str) -> None:
    assert parse_yes_no(text) is True


@pytest.mark.parametrize(
    "text",
    ["no", "No.", "nope", "n", "nah", "Nooo", "not really", "none", "no I don't", "no, all good",
     "i do not", "not at all", "nothing like that", "Not that I know of", "absolutely not",
     "No, I have no fever", "i'm fine"],
)
def test_parse_yes_no_false(text: str) -> None:
    assert parse_yes_no(text) is False


@pytest.mark.parametrize(
    "text",
    ["not sure", "I don't know", "idk", "maybe", "yes no", "", "hmm", "huh?", "ok",
     "know what i mean", "no but my leg is numb"],
)
def test_parse_yes_no_none(text: str) -> None:
    assert parse_yes_no(text) is None


# --------------------------------------------------------------------------- #
# parse_worse_or_same (the neuro follow-up: SAME or WORSE)
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize(
    ("text", "expected"),
    [("SAME", False), ("same, improving", False), ("getting better", False),
     ("Same.", False), ("no change", False), ("not worse", False),
     ("nothing new, same as yesterday", False), ("it is wearing off like they said", False),
     ("WORSE", True), ("getting worse", True), ("it's spreading up my leg", True),
     ("maybe worse", True), ("no, it is worse", True), ("I wet myself", True),
     ("not better", None), ("not the same", None), ("maybe the same", None),
     ("better in the leg but the arm is worse", None), ("yes", None), ("no", None),
     ("idk", None), ("", None)],
)
def test_parse_worse_or_same(text: str, expected: bool | None) -> None:
    assert parse_answer("worse_or_same", text) is expected


# --------------------------------------------------------------------------- #
# parse_answer and KINDS
# --------------------------------------------------------------------------- #

def test_kinds_map_to_parsers() -> None:
    assert KINDS == {"nrs": "pain_0_10", "percent": "percent_relief", "pgic": "pgic",
                     "yesno": "yes_no", "worse_or_same": "worse_or_same", "phq": "phq_0_3",
                     "glucose": "glucose_mg_dl"}
    for question in KINDS.values():
        parse_answer(question, "5")


@pytest.mark.parametrize(
    ("question", "text", "expected"),
    [("pain_0_10", "4", 4), ("percent_relief", "4", 4), ("pgic", "4", 4),
     ("yes_no", "yes", True), ("yes_no", "no", False)],
)
def test_parse_answer_dispatch(question: str, text: str, expected: object) -> None:
    assert _same(parse_answer(question, text), expected)


def test_parse_answer_unknown_question() -> None:
    with pytest.raises(ValueError, match="unknown question"):
        parse_answer("mood", "5")


# --------------------------------------------------------------------------- #
# Development set
# --------------------------------------------------------------------------- #

def test_dev_numbers_set() -> None:
    if not DEV_NUMBERS.exists():
        pytest.skip(f"{DEV_NUMBERS} not found")
    rows = [json.loads(line) for line in DEV_NUMBERS.read_text().splitlines() if line.strip()]
    misses = []
    for row in rows:
        got = parse_answer(row["question"], row["text"])
        if not _same(got, row["expected"]):
            misses.append(f"{row['id']} {row['question']} {row['text']!r}: "
                          f"expected {row['expected']!r}, got {got!r}")
    print(f"dev numbers: {len(rows) - len(misses)}/{len(rows)} exact")
    for miss in misses:
        print("  MISS", miss)
    assert len(rows) - len(misses) >= 38, "\n".join(misses)


def test_blind_numbers_paraphrases() -> None:
    rows = [json.loads(line) for line in PARAPHRASES.read_text().splitlines() if line.strip()]
    misses = [f"{row['id']} {row['text']!r}: expected {row['expected']!r}, "
              f"got {parse_answer(row['question'], row['text'])!r}"
              for row in rows if not _same(parse_answer(row["question"], row["text"]),
                                           row["expected"])]
    assert len(rows) == 120
    assert not misses, "\n".join(misses)


@pytest.mark.parametrize(("text", "expected"), [
    ("0", 0), ("3", 3), ("1 - several days", 1), ("not at all", 0), ("no", 0),
    ("several days", 1), ("more than half the days", 2), ("nearly every day", 3),
    ("pretty much every day", 3), ("5", None), ("what?", None),
])
def test_phq_answers(text: str, expected: int | None) -> None:
    assert parse_answer("phq_0_3", text) == expected


# --------------------------------------------------------------------------- #
# Found by paraphrases written without reading the parser (2026-11-25)
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize(("question", "text", "expected"), [
    # "-ish" on a spelled number
    ("pain_0_10", "sixish", 6), ("pain_0_10", "prob eight-ish tonight", 8),
    ("pain_0_10", "finished my walk, 4", 4),  # "finish" is not "fin" + "ish"
    # part of the pain gone is that part, not all of it
    ("percent_relief", "i'd say half my pain has gone", 50),
    ("percent_relief", "70 percent of the pain is gone", 70),
    ("percent_relief", "most of the pain is gone", None),
    ("percent_relief", "the pain is totally gone", 100),
    # a hedge between "now" and its number does not move "now" to the old one
    ("percent_relief", "day one it was 80% and now probably 40%", 40),
    ("pain_0_10", "was a 9 now about a 5", 5),
    ("pain_0_10", "a 3 now, i guess 6 last night", 3),
    ("pain_0_10", "4 now maybe 7 before", 4),
])
def test_blind_paraphrases(question: str, text: str, expected: int | None) -> None:
    assert _same(parse_answer(question, text), expected)
