"""Parse patients' free-text answers to the structured check-in questions.

Patients answer by SMS or chat, so "7/10", "seven", "a 6 maybe 7", "was 8 now 3",
"about 80%", "half" and "siete" all have to become numbers, while vague answers
("terrible", "dunno", "a little") and out-of-range ones ("12" for a 0-10 scale)
must give ``None`` so that the bot asks again instead of guessing.

The rules, shared by every numeric parser:

* Number words (English and Spanish, "twenty five", "a hundred") become digits.
* Times ("2pm", "14:30"), doses ("2 tylenol", "10 mg", "took 2"), durations
  ("3 days"), spinal levels ("L4-5") and scale descriptions ("/10", "out of 10",
  "on a scale of 1 to 10") are never answers.
* When the patient reports a change ("was 8 now 3", "9 this morning, 5 now",
  "went from 8 to 3") the current value wins; a value only described as past is
  used when nothing else is given (the baseline question asks about the past).
* Among the remaining candidates (a range "7 to 8", alternatives "3, possibly 4",
  "6 or 7") the highest value wins.
* A result outside the scale gives ``None``.

Plain Python (regular expressions and small word tables): no Rasa or spaCy.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Union

logger = logging.getLogger(__name__)

Number = Union[int, float]

#: questions.yaml ``kind`` -> parser name accepted by :func:`parse_answer`.
KINDS: dict[str, str] = {
    "nrs": "pain_0_10",
    "percent": "percent_relief",
    "pgic": "pgic",
    "yesno": "yes_no",
    "worse_or_same": "worse_or_same",
    "phq": "phq_0_3",
    "glucose": "glucose_mg_dl",
}

# --------------------------------------------------------------------------- #
# Normalisation and number words
# --------------------------------------------------------------------------- #

_TRANSLATE = {
    ord("\u2019"): "'", ord("\u2018"): "'", ord("\u02bc"): "'", ord("`"): "'",
    ord("\u2013"): "-", ord("\u2014"): "-", ord("\u2015"): "-", ord("\u2212"): "-",
    ord("\u2044"): "/", ord("\u2192"): "->", ord("\uff05"): "%",
}

_UNIT_WORDS: dict[str, int] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19,
    # Spanish ("once" is left out: it is far more often the English word).
    "cero": 0, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6,
    "siete": 7, "ocho": 8, "nueve": 9, "diez": 10, "doce": 12, "trece": 13,
    "catorce": 14, "quince": 15, "dieciseis": 16, "diecisiete": 17, "dieciocho": 18,
    "diecinueve": 19, "veintiuno": 21, "veintidos": 22, "veintitres": 23,
    "veinticuatro": 24, "veinticinco": 25, "veintiseis": 26, "veintisiete": 27,
    "veintiocho": 28, "veintinueve": 29,
}
_TENS_WORDS: dict[str, int] = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "ninty": 90,
    "veinte": 20, "treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60,
    "setenta": 70, "ochenta": 80, "noventa": 90,
}
_HUNDRED_WORDS = {"hundred", "cien", "ciento"}
# "the one on the left", "no one": "one" is a pronoun there, not a number.
_ONE_PRONOUN_BEFORE = {
    "the", "this", "that", "no", "any", "every", "each", "some", "which", "another",
    "other", "last", "first", "next", "only", "someone", "anyone",
}

_WORD_RE = re.compile(r"[a-z]+")
# "fiveish", "twenty-ish": the number with "ish" as a word of its own.
_ISH = re.compile(r"\b(" + "|".join(sorted(
    [w for w in (*_UNIT_WORDS, *_TENS_WORDS) if w.isascii()], key=len, reverse=True))
    + r")-?ish\b")


def _normalise(text: str) -> str:
    """Lower-case, strip accents, unify quotes and dashes, collapse whitespace.

    Args:
        text: Raw patient text.

    Returns:
        The normalised text.
    """
    t = unicodedata.normalize("NFKD", text or "")
    t = "".join(c for c in t if not unicodedata.combining(c))
    t = t.translate(_TRANSLATE).lower()
    return re.sub(r"\s+", " ", t).strip()


def _gap_joins(text: str, left: re.Match[str], right: re.Match[str]) -> bool:
    """Whether only whitespace or a hyphen separates two word matches.

    Args:
        text: The text both matches come from.
        left: The earlier word match.
        right: The later word match.

    Returns:
        True when the two words belong to one compound number ("twenty-five").
    """
    return text[left.end():right.start()].strip() in ("", "-")


def _small_number(text: str, words: list[re.Match[str]], i: int) -> tuple[int | None, int]:
    """Parse a number below 100 spelled in words, starting at ``words[i]``.

    Args:
        text: The normalised text.
        words: All word matches in ``text``.
        i: Index of the first word to try.

    Returns:
        ``(value, next_index)``, or ``(None, i)`` when no number starts there.
    """
    if i >= len(words):
        return None, i
    w = words[i].group()
    if w in _TENS_WORDS:
        value = _TENS_WORDS[w]
        if i + 1 < len(words) and _gap_joins(text, words[i], words[i + 1]):
            unit = _UNIT_WORDS.get(words[i + 1].group())
            if unit is not None and 1 <= unit <= 9:
                return value + unit, i + 2
        # Spanish "treinta y cinco".
        if (i + 2 < len(words) and words[i + 1].group() == "y"
                and _gap_joins(text, words[i], words[i + 1])
                and _gap_joins(text, words[i + 1], words[i + 2])):
            unit = _UNIT_WORDS.get(words[i + 2].group())
            if unit is not None and 1 <= unit <= 9:
                return value + unit, i + 3
        return value, i + 1
    if w in _UNIT_WORDS:
        if w == "one" and i > 0 and words[i - 1].group() in _ONE_PRONOUN_BEFORE:
            return None, i
        return _UNIT_WORDS[w], i + 1
    return None, i


def _number_at(text: str, words: list[re.Match[str]], i: int) -> tuple[int | None, int]:
    """Parse a number spelled in words (0-199), starting at ``words[i]``.

    Args:
        text: The normalised text.
        words: All word matches in ``text``.
        i: Index of the first word to try.

    Returns:
        ``(value, next_index)``, or ``(None, i)`` when no number starts there.
    """
    w = words[i].group()
    k = None
    if (w in ("a", "one") and i + 1 < len(words) and words[i + 1].group() == "hundred"
            and _gap_joins(text, words[i], words[i + 1])):
        k = i + 2
    elif w in _HUNDRED_WORDS and not (w == "ciento" and i > 0 and words[i - 1].group() == "por"):
        k = i + 1
    if k is not None:
        rest_at = k
        if (k < len(words) and words[k].group() in ("and", "y")
                and _gap_joins(text, words[k - 1], words[k])):
            rest_at = k + 1
        if rest_at < len(words) and _gap_joins(text, words[rest_at - 1], words[rest_at]):
            rest, j = _small_number(text, words, rest_at)
            if rest is not None:
                return 100 + rest, j
        return 100, k
    return _small_number(text, words, i)


def _words_to_digits(text: str) -> str:
    """Replace spelled-out numbers with digits and fold halves and decimals.

    Args:
        text: Normalised text.

    Returns:
        Text where "twenty five" is "25", "six and a half" is "6.5" and
        "five point five" is "5.5".
    """
    text = _ISH.sub(r"\1 ish", text)
    words = list(_WORD_RE.finditer(text))
    out: list[str] = []
    pos = 0
    i = 0
    while i < len(words):
        value, j = _number_at(text, words, i)
        if value is None:
            i += 1
            continue
        out.append(text[pos:words[i].start()])
        out.append(str(value))
        pos = words[j - 1].end()
        i = j
    out.append(text[pos:])
    t = "".join(out)
    t = re.sub(r"\b(\d+)\s+(?:and\s+a\s+half|y\s+media)\b", r"\1.5", t)
    t = re.sub(r"\b(\d+)\s+(?:and\s+)?1/2\b", r"\1.5", t)
    t = re.sub(r"\b(\d+)\s*(?:point|punto|coma)\s*(\d+)\b", r"\1.\2", t)
    return t


# --------------------------------------------------------------------------- #
# Phrases standing for a number ("no relief" -> 0, "half" -> 50)
# --------------------------------------------------------------------------- #

# A phrase preceded by one of these is hedged or negated ("not completely gone",
# "almost all of it"): it becomes a neutral word so no shorter rule fires on it.
_HEDGE_BEFORE = re.compile(
    r"\b(?:not|never|isn'?t|wasn'?t|aren'?t|ain'?t|doesn'?t|didn'?t|don'?t|hasn'?t|"
    r"haven'?t|won'?t|almost|nearly|mostly|partly|partially|hardly|barely|quite|less than|"
    r"under|below)\s+$"
    # "half the pain is gone", "80% of my pain has gone": only that part
    r"|\b(?:half|some|most|part|much|a lot|a bit|quarters?|thirds?|\d+\s*%?)\s+(?:of\s+)?"
    r"(?:the|my|that|this)\s+$"
)

_NEG_VERB = (
    r"(?:didn'?t|did not|doesn'?t|does not|hasn'?t|has not|haven'?t|have not|"
    r"wasn'?t|was not|isn'?t|is not|not)"
)
_NOT_MUCH = (
    r"(?!\s+(?:much|a lot|that much|as much|too much|enough|very much|as well|great|"
    r"completely|fully|100|all)\b)"
)

_PERCENT_PHRASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bno (?:real |significant |noticeable |actual )?(?:relief|help|improvement|"
                r"difference|change|benefit|effect|better)\b"), "0"),
    (re.compile(_NEG_VERB + r"\s+(?:help(?:ed|ing)?|work(?:ed|ing)?|do(?:ne)?\s+(?:anything|"
                r"squat|jack|shit|crap|diddly(?: squat)?|a thing|nothing|nothin'?|zip))\b"
                + _NOT_MUCH + r"(?:\s+at all)?"), "0"),
    (re.compile(r"\bnot (?:at all|one bit|a bit|a thing|any better|any relief|any help|better)\b"),
     "0"),
    (re.compile(r"\b(?:nothing|nada|zilch|zip|squat|none|nil|ningun[oa]?)\b(?!\s+much\b)"), "0"),
    (re.compile(r"\b(?:all|every bit|100 ?%?) of (?:it|the pain|my pain)\b"), "100"),
    (re.compile(r"\b(?:all (?:gone|better|relief|of the relief)|pain[- ]?free|no (?:more )?pain|"
                r"(?:pain|it)(?:'s| is| has)?(?: all| completely| totally)? gone)\b"), "100"),
    (re.compile(r"\b(?:complete|completely|total|totally|full|fully|entire|entirely|absolute|"
                r"absolutely|completamente)\b(?!\s+(?:useless|waste|worse|failed|no|not|didn'?t|"
                r"pointless|ineffective|same|unchanged)\b)(?:\s+(?:gone|relief|resolved|better|"
                r"relieved|healed|fine|fixed))?"), "100"),
    (re.compile(r"\b3 quarters\b"), "75"),
    (re.compile(r"\b(?:a|1) quarter\b"), "25"),
    (re.compile(r"\b2 thirds\b"), "67"),
    (re.compile(r"\b(?:a|1) third\b"), "33"),
    (re.compile(r"\b(?:half(?:[- ]?way)?|la mitad|mitad)\b"), "50"),
]

_PAIN_PHRASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bno (?:more )?pain\b(?!\s*(?:med|meds|medication|medications|medicine|pills?|"
                r"killers?|relief|management|doctor|clinic|team|specialist)\b)"), "0"),
    (re.compile(r"\b(?:pain[- ]?free|painless|sin dolor|ningun dolor)\b"), "0"),
    (re.compile(r"\bnot (?:in )?(?:any )?pain\b"), "0"),
    (re.compile(r"\b(?:doesn'?t|does not|don'?t|do not|isn'?t|is not|not|no longer)\s+"
                r"hurt(?:s|ing)?\b" + _NOT_MUCH + r"(?:\s+at all)?"), "0"),
    (re.compile(r"\b(?:pain|it)(?:'s| is| has)?(?: all| completely| totally)? gone\b"), "0"),
    (re.compile(r"\b(?:none|nothing|nada|nil|zilch)\b(?!\s+much\b)"), "0"),
]


def _substitute_phrases(text: str, rules: list[tuple[re.Pattern[str], str]]) -> str:
    """Replace number-like phrases with digits, unless hedged or negated.

    Args:
        text: Text after :func:`_words_to_digits`.
        rules: ``(pattern, replacement digits)`` pairs, applied in order.

    Returns:
        The rewritten text.
    """
    for pattern, value in rules:
        def repl(m: re.Match[str], value: str = value) -> str:
            if _HEDGE_BEFORE.search(m.string[:m.start()]):
                return " vague "
            return f" {value} "

        text = pattern.sub(repl, text)
    return text


# --------------------------------------------------------------------------- #
# Things that look like numbers but are not answers
# --------------------------------------------------------------------------- #

_MEDS = (
    r"mgs?|milligrams?|mcg|micrograms?|mls?|cc|grams?|g|pills?|tabs?|tablets?|capsules?|caps?|"
    r"doses?|shots?|injections?|puffs?|drops?|patch(?:es)?|sprays?|meds?|medications?|"
    r"painkillers?|pain killers?|pain pills?|norcos?|tylenols?|advils?|motrins?|aleves?|"
    r"ibuprofens?|acetaminophen|paracetamol|oxys?|oxycodone|oxycontin|percocets?|vicodins?|"
    r"tramadols?|ultrams?|gabapentins?|neurontins?|lyricas?|naproxens?|meloxicams?|mobics?|"
    r"celebrex|flexerils?|cyclobenzaprine|tizanidine|zanaflex|muscle relaxers?|aspirins?|"
    r"hydrocodone|dilaudids?|hydromorphone|morphine|excedrins?|robaxins?|methocarbamol|medrol|"
    r"prednisone|steroids?|baclofen|diclofenac|voltaren"
)
_UNITS = (
    r"seconds?|secs?|minutes?|mins?|hours?|hrs?|h|days?|d|weeks?|wks?|months?|mos?|years?|"
    r"yrs?|y/?o|nights?|times|x|steps?|blocks?|miles?|km|feet|foot|ft|inch(?:es)?|cm|lbs?|"
    r"pounds?|kgs?|kilos?|degrees?|deg|f|c|kids?|children|people|glasses|cups?|stairs|"
    r"flights?|levels?|st|nd|rd|th"
)
_NOISE: list[re.Pattern[str]] = [
    re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b"),                     # dates
    re.compile(r"(?<![\d.])(?:19|20)\d{2}\b"),                       # years
    re.compile(r"\$\s?\d+(?:\.\d+)?"),                               # money
    re.compile(r"\b\d{1,2}(?::\d{2})?\s*(?:a\.?m\b\.?|p\.?m\b\.?)"),  # 2pm, 10:30 a.m.
    re.compile(r"\b\d{1,2}:\d{2}\b"),                                # 14:30
    re.compile(r"\b\d{1,2}\s*o'?\s?clock\b"),
    re.compile(r"\b[ctls]\d{1,2}(?:\s*-\s*[ctls]?\d{1,2})?\b"),     # L4-5, C5-6, S1
    re.compile(r"\bx\s?\d+\b"),                                      # x2
    # 2 tylenol, 10 mg, 3 days, 2 more pills, 2 of my norcos, 2nd
    re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s*-?\s*(?:(?:more|extra|other|of (?:my|the|those|"
               r"these|them|his|her|your))\s+)?(?:" + _MEDS + r"|" + _UNITS + r")\b"),
    # took 2, day 3, fever of 101, post op day 2
    re.compile(r"\b(?:took|taken|taking|popped|swallowed|day|week|pod|room|age|aged|temp|"
               r"temperature|fever(?: of| was| is| at)?|bp|pulse|weight|weigh|weighs|o2|"
               r"oxygen|sats?|spo2)\s*(?:like |about |around |another |an? |my |only |just )?"
               r"\d+(?:\.\d+)?(?:\s*(?:-|to|or)\s*\d+(?:\.\d+)?)?\b"),
    # Descriptions of the scale itself.
    re.compile(r"\b(?:on )?(?:a |the |your |this )?(?:pain )?scale (?:of|from|between) "
               r"(?:0|1) ?(?:-|to|through|thru|and) ?(?:10|100)\b"),
    re.compile(r"\b(?:from |on )?(?:a |the )?(?:0|1) ?(?:-|to) ?(?:10|100) (?:pain )?"
               r"(?:scale|rating)\b"),
    re.compile(r"\b(?:on )?(?:a |the )?scale of (?:10|100)\b"),
    re.compile(r"\b(?:10|100)[- ]?point (?:pain )?scale\b"),
    re.compile(r"(?<!\d)(?<!\d )\bout of (?:10|100)\b"),               # "out of 10, a 6"
    re.compile(r"\b(?:where|with|if|and) (?:0|1|10|100) (?:being|is|=|means)\b"),
    re.compile(r"\b(?:0|1|10|100) (?:being|=|means) "),
]
# "had a norco at 2", "took 2 around 9": a bare time shortly after a medication.
_MED_TIME = re.compile(
    r"(\b(?:" + _MEDS + r"|took|taken|taking|popped|swallowed)\b"
    r"(?:\s+(?!(?:and|but|so|i|i'?m|it|it'?s|is|was|pain|now|currently|still)\b)[^\s,;!?]+){0,3}?"
    r"\s+(?:at|around|by)\s+)\d{1,2}\b(?!\s*(?:/|out of|outta|%|percent))"
)


def _strip_noise(text: str) -> str:
    """Blank out times, doses, durations, levels and scale descriptions.

    Args:
        text: Text after number-word and phrase substitution.

    Returns:
        Text with non-answer numbers replaced by ``" _ "``.
    """
    text = _MED_TIME.sub(r"\1 _ ", text)
    for pattern in _NOISE:
        text = pattern.sub(" _ ", text)
    return text


# --------------------------------------------------------------------------- #
# Candidate numbers, clauses and "was X now Y"
# --------------------------------------------------------------------------- #

_NUM_RE = re.compile(
    r"(?<![\w.])(?P<num>\d+(?:\.\d+)?)(?![\d])"
    r"(?P<den>\s*(?:/|out of|outta|of)\s*(?P<denv>10|100)(?![\d.]))?"
    r"(?P<pct>\s*(?:%|percent\b|per cent\b|pct\b|por ciento\b))?"
)
_NEGATED_BEFORE = re.compile(
    r"\b(?:not|isn'?t|ain'?t|never|no longer|wasn'?t)\s+(?:quite\s+|even\s+|really\s+|exactly\s+)?"
    r"(?:an?\s+)?$"
)
_IF_NOT_BEFORE = re.compile(r"\bif not\s+(?:an?\s+)?$")
_MINUS_BEFORE = re.compile(r"(?:\b(?:minus|negative)\s*|(?:^|[^\d%\s])\s*-\s*)$")
_CLAUSE_SEP = re.compile(
    r"[,;!?\n]|(?<!\d)\.|\.(?!\d)|\b(?:but|though|although|however|whereas|while)\b"
)
# Words allowed between two numbers of one range or hedge ("6 maybe 7", "90-95").
_CONNECTOR_GAP = re.compile(
    r"^(?:\s|-|/|~|%|\bto\b|\bor\b|\bthrough\b|\bthru\b|\bmaybe\b|\bpossibly\b|\bperhaps\b|"
    r"\bprobably\b|\bcould\b|\bmight\b|\bbe\b|\bif\b|\bnot\b|\beven\b|\blike\b|\ba\b|\ban\b|"
    r"\bmore\b|\bish\b|\bpercent\b|\bmax\b|\btops\b|\bprob\b|\bkinda\b|\bmostly\b)*$"
)
_CHANGE_VERB = re.compile(
    r"\b(?:went|gone|go|goes|dropped|drop|fell|fallen|came|come|got|gotten|improved|"
    r"decreased|increased|reduced|moved|changed|better|worse|down|up|rose|risen)\b"
)

_PAST, _CURRENT = "past", "current"
_NEXT, _PREV, _BI_NEXT, _BI_PREV = "next", "prev", "bi_next", "bi_prev"
# (pattern, tag, attachment): which number a time marker describes.
_MARKERS: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"\b(?:was|were|used to be|used to|had been|started(?: out)?(?: at)?|"
                r"at first|initially|originally)\b"), _PAST, _NEXT),
    (re.compile(r"\bfrom\b(?=\s*(?:an?\s+)?\d)"), _PAST, _NEXT),
    (re.compile(r"\b(?:yesterday|earlier(?: today)?|this morning|last night|last week|before|"
                r"previously|prior|at the start|ayer)\b"), _PAST, _BI_PREV),
    (re.compile(r"\bago\b"), _PAST, _PREV),
    (re.compile(r"(?:->|=>)|\b(?:down to|up to|dropped to|went to|gone to|got to|came down to|"
                r"improved to|decreased to|increased to|now at|is now|currently|still)\b"),
     _CURRENT, _NEXT),
    (re.compile(r"\b(?:right now|now|today|tonight|current|presently|at present|nowadays|"
                r"these days|this afternoon|this evening|at the moment|at this point|"
                r"at this time|after(?:wards)?|since then|ahora|hoy)\b"), _CURRENT, _BI_NEXT),
    (re.compile(r"\b(?:rn|atm|rt now)\b"), _CURRENT, _BI_PREV),
]


@dataclass
class _Cand:
    """One number found in the text."""

    value: float
    start: int
    end: int
    pct: bool = False
    den: int | None = None


@dataclass
class _Unit:
    """One or more candidates forming a single answer ("7 to 8", "6 maybe 7")."""

    cands: list[_Cand]
    tags: set[str] = field(default_factory=set)

    @property
    def start(self) -> int:
        """Start offset of the first candidate."""
        return self.cands[0].start

    @property
    def end(self) -> int:
        """End offset of the last candidate."""
        return self.cands[-1].end

    @property
    def tag(self) -> str:
        """``"current"``, ``"past"`` or ``"neutral"`` (current wins a conflict)."""
        if _CURRENT in self.tags:
            return _CURRENT
        if _PAST in self.tags:
            return _PAST
        return "neutral"


def _candidates(text: str) -> list[_Cand]:
    """Find the numbers in cleaned text, dropping negated ones ("not a 10").

    Args:
        text: Cleaned text (see :func:`_prepare`).

    Returns:
        Candidates in text order.
    """
    found: list[_Cand] = []
    for m in _NUM_RE.finditer(text):
        before = text[:m.start()]
        if _NEGATED_BEFORE.search(before) and not _IF_NOT_BEFORE.search(before):
            continue
        value = float(m.group("num"))
        if _MINUS_BEFORE.search(before):
            value = -value
        den = int(m.group("denv")) if m.group("den") else None
        found.append(_Cand(value=value, start=m.start(), end=m.end(),
                           pct=bool(m.group("pct")), den=den))
    return found


def _clauses(text: str) -> list[tuple[int, int]]:
    """Split text into clauses at punctuation and contrastive conjunctions.

    Args:
        text: Cleaned text.

    Returns:
        ``(start, end)`` offsets of each clause.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _CLAUSE_SEP.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    return spans


def _group_units(text: str, cands: list[_Cand]) -> list[_Unit]:
    """Merge candidates of one clause joined by range or hedge words.

    "from 8 to 3" with a change verb, or descending, is a change, not a range.

    Args:
        text: Cleaned text.
        cands: Candidates of a single clause, in order.

    Returns:
        The units of the clause.
    """
    units: list[_Unit] = []
    for cand in cands:
        if units:
            prev = units[-1].cands[-1]
            gap = text[prev.end:cand.start]
            if _CONNECTOR_GAP.match(gap):
                is_change = False
                if re.search(r"\bto\b", gap):
                    head = text[:prev.start]
                    if re.search(r"\bfrom\s+(?:an?\s+)?$", head):
                        clause_text = text[max(0, prev.start - 60):cand.end]
                        is_change = (prev.value > cand.value
                                     or bool(_CHANGE_VERB.search(clause_text)))
                if not is_change:
                    units[-1].cands.append(cand)
                    continue
        units.append(_Unit(cands=[cand]))
    return units


# Hedges between a time marker and its number ("now maybe 50%", "today about a 4").
_HEDGE_WORDS = re.compile(
    r"\b(?:maybe|perhaps|probably|prob|about|around|roughly|approximately|approx|like|kinda|"
    r"sorta|only|just|at|a|an|more like|close to|i'?d say|i guess|i think|i'?m at|it'?s|"
    r"its|is)\b"
)


def _distance(gap: str) -> int:
    """How far a time marker is from a number: the gap's length without hedges."""
    return len(_HEDGE_WORDS.sub("", gap).strip())


def _tagged_other(unit: _Unit, tag: str) -> bool:
    """Whether an earlier marker gave `unit` the opposite time (past vs current)."""
    return (_PAST if tag == _CURRENT else _CURRENT) in unit.tags


def _attach_markers(text: str, start: int, end: int, units: list[_Unit]) -> None:
    """Tag the units of one clause as past or current from time markers.

    Args:
        text: Cleaned text.
        start: Clause start offset.
        end: Clause end offset.
        units: The clause's units; their ``tags`` are updated.
    """
    if not units:
        return
    clause = text[start:end]
    for pattern, tag, how in _MARKERS:
        for m in pattern.finditer(clause):
            ms, me = start + m.start(), start + m.end()
            before = [u for u in units if u.end <= ms]
            after = [u for u in units if u.start >= me]
            prev_u = before[-1] if before else None
            next_u = after[0] if after else None
            target: _Unit | None
            if how == _NEXT:
                target = next_u or prev_u
            elif how == _PREV:
                target = prev_u or next_u
            elif prev_u is None or next_u is None:
                target = prev_u or next_u
            elif _tagged_other(prev_u, tag) and not _tagged_other(next_u, tag):
                target = next_u  # "was 90% now maybe 50%": the 90 is taken
            elif _tagged_other(next_u, tag) and not _tagged_other(prev_u, tag):
                target = prev_u  # "a 6 now, i guess 7 this morning"
            else:
                d_prev = _distance(text[prev_u.end:ms])
                d_next = _distance(text[me:next_u.start])
                if d_prev == d_next:
                    target = next_u if how == _BI_NEXT else prev_u
                else:
                    target = prev_u if d_prev < d_next else next_u
            if target is not None:
                target.tags.add(tag)


def _prepare(text: str, phrases: list[tuple[re.Pattern[str], str]]) -> str:
    """Normalise text, spell numbers as digits, substitute phrases, strip noise.

    Args:
        text: Raw patient text.
        phrases: Question-specific phrase rules.

    Returns:
        Cleaned text ready for :func:`_candidates`.
    """
    t = _words_to_digits(_normalise(text))
    t = _substitute_phrases(t, phrases)
    return _strip_noise(t)


def _pick(text: str, keep: Callable[[_Cand], float | None]) -> float | None:
    """Choose the answer among the numbers of cleaned text.

    Args:
        text: Cleaned text.
        keep: Maps a candidate to its value on the question's scale, or None to
            ignore it (e.g. a percentage in a pain answer).

    Returns:
        The chosen value (not yet range-checked), or None when there is none.
    """
    units: list[_Unit] = []
    all_cands = _candidates(text)
    for start, end in _clauses(text):
        cands = [c for c in all_cands if start <= c.start < end]
        clause_units = _group_units(text, cands)
        _attach_markers(text, start, end, clause_units)
        units.extend(clause_units)
    if not units:
        return None
    by_tag = {tag: [u for u in units if u.tag == tag] for tag in (_CURRENT, "neutral", _PAST)}
    group = by_tag[_CURRENT] or by_tag["neutral"] or by_tag[_PAST]
    cands = [c for u in group for c in u.cands]
    valued = [(c, keep(c)) for c in cands]
    valued = [(c, v) for c, v in valued if v is not None]
    if not valued:
        return None
    marked = [(c, v) for c, v in valued if c.pct or c.den is not None]
    if marked:
        valued = marked
    return max(v for _, v in valued)


def _as_number(value: float) -> Number:
    """Return an int for integral values ("7.0" -> 7), else the float.

    Args:
        value: A parsed value.

    Returns:
        ``int`` or ``float``.
    """
    return int(value) if float(value).is_integer() else value


def _in_range(value: float | None, low: float, high: float) -> Number | None:
    """Range-check a value and convert it with :func:`_as_number`.

    Args:
        value: The parsed value, or None.
        low: Smallest valid value.
        high: Largest valid value.

    Returns:
        The value, or None when missing or out of range.
    """
    if value is None or not low <= value <= high:
        return None
    return _as_number(value)


# --------------------------------------------------------------------------- #
# Public parsers
# --------------------------------------------------------------------------- #

def parse_pain(text: str) -> Number | None:
    """Parse a 0-10 numeric rating scale answer.

    Args:
        text: The patient's reply, e.g. "7/10", "seven", "a 6 maybe 7",
            "was 8 now 3", "pain free today", "siete".

    Returns:
        An ``int`` (or ``float`` such as 5.5) from 0 to 10, or None for vague or
        out-of-range answers ("terrible", "dunno", "12").
    """
    cleaned = _prepare(text, _PAIN_PHRASES)

    def keep(c: _Cand) -> float | None:
        if c.pct or c.den == 100:
            return None
        return c.value

    value = _in_range(_pick(cleaned, keep), 0, 10)
    logger.debug("parse_pain(%r) -> %r", text, value)
    return value


def parse_percent(text: str) -> Number | None:
    """Parse a 0-100 percent relief answer.

    Args:
        text: The patient's reply, e.g. "about 80%", "half", "no relief",
            "all of it", "90-95%", "was 50% yesterday, today 80%".

    Returns:
        An ``int`` (or ``float``) from 0 to 100, or None for vague or
        out-of-range answers ("a little", "200 lol").
    """
    cleaned = _prepare(text, _PERCENT_PHRASES)
    mentions_pain = bool(re.search(r"\bpain\b", cleaned))

    def keep(c: _Cand) -> float | None:
        if c.den == 10:
            # "7/10 better" is 70 %, but "pain 3/10" is a pain score, not relief.
            return None if mentions_pain else c.value * 10
        return c.value

    value = _in_range(_pick(cleaned, keep), 0, 100)
    logger.debug("parse_percent(%r) -> %r", text, value)
    return value


_IMPROVED = r"(?:better|improved|improving|mejor)"
_WORSE = r"(?:worse|peor)"
_VERY = (r"(?:very much|very very much|so much|so so much|hugely|tremendously|dramatically|"
         r"enormously|massively|extremely|incredibly|immensely|completely|totally|a whole lot|"
         r"way way|much much|mucho mucho|muchisimo)")
_MUCH = (r"(?:much|a lot|lots|way|far|significantly|substantially|considerably|really|"
         r"quite a bit|a good bit|a good deal|loads|tons|heaps|mucho)")
_LITTLE = (r"(?:a (?:little|bit|tad|wee bit|little bit|touch|smidge)|slightly|somewhat|"
           r"minimally|marginally|barely|little|kind of|kinda|sort of|sorta|mildly|modestly|"
           r"un poco|un poquito|poquito|poco)")
_PGIC_PHRASES: list[tuple[re.Pattern[str], int]] = [
    (re.compile(rf"\b{_VERY}\s+{_IMPROVED}\b"), 1),
    (re.compile(r"\b(?:huge|massive|dramatic|tremendous|enormous|complete|total)\s+"
                r"improvement\b"), 1),
    (re.compile(r"\b(?:fully|completely|totally) (?:recovered|healed|resolved)\b"), 1),
    (re.compile(rf"\b{_VERY}\s+{_WORSE}\b"), 7),
    (re.compile(rf"\b{_MUCH}\s+{_IMPROVED}\b"), 2),
    (re.compile(r"\b(?:big|significant|major|great|good|real|large|lot of|marked)\s+"
                r"improvement\b"), 2),
    (re.compile(rf"\b{_MUCH}\s+{_WORSE}\b"), 6),
    (re.compile(rf"\b{_LITTLE}\s+{_IMPROVED}\b"), 3),
    (re.compile(r"\b(?:slight|small|little|minor|some|minimal|modest|mild)\s+"
                r"improvement\b"), 3),
    (re.compile(rf"\b{_LITTLE}\s+{_WORSE}\b"), 5),
    (re.compile(r"\b(?:no better,? (?:and |or |but )?no worse|neither better nor worse|"
                r"no (?:real )?(?:change|difference|improvement)|"
                r"(?:about|pretty much|basically|roughly|just|all|much|more or less|exactly) "
                r"the same|the same|same(?: as before)?|unchanged|no different|"
                r"nothing(?:'s| has)? changed|not changed|igual|lo mismo|sin cambios?)\b"), 4),
]
_PGIC_HEDGE_BEFORE = re.compile(
    r"\b(?:not|never|isn'?t|wasn'?t|aren'?t|ain'?t|don'?t|doesn'?t|didn'?t|no)\s+$"
)


def _pgic_phrase(text: str) -> int | None:
    """Map a PGIC phrase ("much better", "about the same") to 1-7.

    Args:
        text: Normalised text.

    Returns:
        The category, or None when there is no phrase, it is negated, or
        phrases disagree.
    """
    found: set[int] = set()
    t = text
    for pattern, value in _PGIC_PHRASES:
        for m in pattern.finditer(t):
            if _PGIC_HEDGE_BEFORE.search(t[:m.start()]):
                return None
            found.add(value)
        t = pattern.sub(lambda m: " " + "_" * max(1, len(m.group()) - 2) + " ", t)
    if len(found) == 1:
        return found.pop()
    return None


def parse_pgic(text: str) -> int | None:
    """Parse a Patient Global Impression of Change answer (1-7).

    1 very much improved, 2 much improved, 3 minimally improved, 4 no change,
    5 minimally worse, 6 much worse, 7 very much worse.

    Args:
        text: The patient's reply: a number ("2", "a 3 or 4") or a phrase
            ("much better", "about the same", "a bit worse").

    Returns:
        The category, or None. A valid number wins over a phrase; a bare
        "better"/"worse" is too vague and gives None.
    """
    norm = _normalise(text)
    cleaned = _strip_noise(_words_to_digits(norm))

    def keep(c: _Cand) -> float | None:
        return None if c.pct or c.den is not None else c.value

    picked = _pick(cleaned, keep)
    value: int | None = None
    if picked is not None and 1 <= picked <= 7 and float(picked).is_integer():
        value = int(picked)
    else:
        value = _pgic_phrase(norm)
    logger.debug("parse_pgic(%r) -> %r", text, value)
    return value


_YN_UNSURE = re.compile(
    r"\b(?:not sure|unsure|not certain|uncertain|don'?t know|do not know|idk|dunno|no idea|"
    r"maybe|perhaps|possibly|might|kind of|kinda|sort of|sorta|can'?t tell|cannot tell|"
    r"can'?t say|hard to say|i think|i guess|not quite|what|why|which|no se|quizas|tal vez)\b"
    r"|(?<!uh )(?<!uh-)\bhuh\b"
)
_YN_NO = re.compile(
    r"\b(?:no+|nope|nah+|naw|nay|negative|never|none|nothing|not really|not at all|"
    r"not that i (?:know of|can tell|have noticed|noticed|am aware of)|"
    r"(?:absolutely|definitely|certainly|of course|sure) not|i'?m (?:fine|ok|okay|good)|"
    r"i am (?:fine|ok|okay|good)|"
    r"i don'?t|i dont|i do not|i haven'?t|i have not|i didn'?t|i did not|"
    r"all (?:good|fine|ok|okay)|nada|ningun[oa]?)\b"
)
_YN_YES = re.compile(
    r"\b(?:ye+s+|yeah+|yea+|yep+|yup+|yah|si+|sure|correct|affirmative|absolutely|definitely|"
    r"indeed|uh[- ]?huh|i do|true)\b"
)
_YN_CAVEAT = re.compile(r"\b(?:but|except|although|though|however|only|apart from|other than|"
                        r"besides)\b")


def parse_yes_no(text: str) -> bool | None:
    """Parse a YES/NO safety answer.

    Uncertain replies ("not sure", "I don't know", "maybe") and replies that
    contain both a yes and a no give None. A "no" followed by a caveat
    ("no but my leg feels numb") also gives None, so the question is asked
    again rather than a possible red flag being recorded as a clear "no".

    Args:
        text: The patient's reply.

    Returns:
        True for yes, False for no, None when unclear.
    """
    t = re.sub(r"[^\w\s'-]", " ", _normalise(text))
    t = re.sub(r"\s+", " ", t).strip()
    value: bool | None = None
    if t in ("y", "n"):
        value = t == "y"
    elif t and not _YN_UNSURE.search(t):
        no = bool(_YN_NO.search(t))
        yes = bool(_YN_YES.search(_YN_NO.sub(" ", t)))
        if yes and not no:
            value = True
        elif no and not yes and not _YN_CAVEAT.search(t):
            value = False
    logger.debug("parse_yes_no(%r) -> %r", text, value)
    return value


_WS_WORSE = re.compile(
    r"\b(?:worse|worsening|worser|spreading|spread|spreads|unexpected|new|weaker|"
    r"more numb|bladder|bowels?|pee|peeing|wee|poo|incontinen\w*|wet myself|"
    r"can'?t (?:walk|stand|feel)|cannot (?:walk|stand|feel)|peor|empeorando)\b")
_WS_SAME = re.compile(
    r"\b(?:same|better|improving|improved|easing|eased|less|fading|wearing off|going away|"
    r"settling|no change|unchanged|expected|stable|igual|mejor|mejorando)\b")
_WS_NEGATED = re.compile(
    r"\b(?:not|no|nothing|never|none|without|sin|isn'?t|aren'?t|hasn'?t|haven'?t|doesn'?t|"
    r"don'?t|didn'?t|wasn'?t|won'?t)\b(?:\s+[\w']+){0,3}\s*$")


def parse_worse_or_same(text: str) -> bool | None:
    """Parse the answer to "expected and the same or better (SAME), or unexpected,
    worse or spreading (WORSE)?": True for worse, False for the same or better.

    A negated cue counts the other way round only when that is the safe reading:
    "not worse", "nothing new" mean the same; "not better", "not the same" are
    unclear. Both kinds of cue give None (asked again), and so does a hedged
    "same" ("maybe the same"); a hedged "worse" counts as worse.

    Args:
        text: The patient's reply.

    Returns:
        True for worse, False for the same or better, None when unclear.
    """
    t = _normalise(text)  # punctuation kept: a negation does not reach past a comma
    worse = same = unclear = False
    for m in _WS_WORSE.finditer(t):
        negated = bool(_WS_NEGATED.search(t[:m.start()]))
        same, worse = same or negated, worse or not negated
    for m in _WS_SAME.finditer(t):
        negated = bool(_WS_NEGATED.search(t[:m.start()]))
        unclear, same = unclear or negated, same or not negated
    value: bool | None = None
    if worse and not same:  # "maybe worse" is read as worse: the safe reading
        value = True
    elif same and not worse and not unclear and not _YN_UNSURE.search(t):
        value = False
    logger.debug("parse_worse_or_same(%r) -> %r", text, value)
    return value


_PHQ_PHRASES = (  # PHQ response options (CLINICAL.md §2.2), most specific first
    (re.compile(r"\b(nearly|almost) (every|each) ?day|\bevery ?day\b|\ball the time\b"), 3),
    (re.compile(r"\bmore than half\b|\bmost days\b|\bhalf the days\b"), 2),
    (re.compile(r"\bseveral days\b|\bsome days\b|\ba few days\b|\bsometimes\b|\boccasionally\b"), 1),
    (re.compile(r"\bnot at all\b|\bnever\b|\bnone\b|^\s*no(pe)?\b|\bnot really\b"), 0),
)


def parse_phq(text: str) -> int | None:
    """Parse a PHQ item answer: 0 not at all, 1 several days, 2 more than half the
    days, 3 nearly every day (a digit 0-3 or the option's words)."""
    low = " ".join((text or "").lower().split())
    digits = re.findall(r"\b\d+\b", low)
    if len(digits) == 1 and 0 <= int(digits[0]) <= 3:
        return int(digits[0])
    if digits:
        return None
    for pattern, value in _PHQ_PHRASES:
        if pattern.search(low):
            return value
    return None


MG_DL_PER_MMOL = 18.0
_GLUCOSE_NUM = re.compile(r"(?<![\d.])(\d{1,3}(?:[.,]\d)?)(?![\d.])")


def parse_glucose(text: str) -> Number | None:
    """Parse a blood-sugar reading as mg/dL: one number, 20-900 mg/dL, or a mmol/L
    reading (said so, or a decimal below 40) converted, so a patient's meter units
    never matter to the limit it is judged by."""
    low = " ".join((text or "").lower().split())
    found = _GLUCOSE_NUM.findall(low)
    if len(found) != 1:
        return None
    raw = found[0].replace(",", ".")
    value = float(raw)
    if "mmol" in low or ("." in raw and value < 40):
        value = round(value * MG_DL_PER_MMOL)
    if not 20 <= value <= 900:
        return None
    return int(value) if float(value).is_integer() else value


_PARSERS: dict[str, Callable[[str], Number | bool | None]] = {
    "pain_0_10": parse_pain,
    "percent_relief": parse_percent,
    "pgic": parse_pgic,
    "yes_no": parse_yes_no,
    "worse_or_same": parse_worse_or_same,
    "phq_0_3": parse_phq,
    "glucose_mg_dl": parse_glucose,
}


def parse_answer(question: str, text: str) -> Number | bool | None:
    """Parse ``text`` as the answer to a question of type ``question``.

    Args:
        question: One of ``"pain_0_10"``, ``"percent_relief"``, ``"pgic"``,
            ``"yes_no"`` (see :data:`KINDS`).
        text: The patient's reply.

    Returns:
        The parsed value, or None when the reply is not a usable answer.

    Raises:
        ValueError: ``question`` is not a known question type.
    """
    try:
        parser = _PARSERS[question]
    except KeyError:
        raise ValueError(
            f"unknown question {question!r}; expected one of {sorted(_PARSERS)}"
        ) from None
    return parser(text or "")
