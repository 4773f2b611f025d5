"""Deterministic red-flag triage of patient messages (CLINICAL.md §0, §1, §2.4, §6).

Rules live in ``painpath/content/redflags.yaml`` (clinician-reviewed); this module only
applies them: spaCy ``Matcher``/``PhraseMatcher`` over a normalised message, plus number
reading (temperature, blood glucose, 0–10 pain), then filters each hit for negation,
resolved symptoms, hypotheticals/questions, other people's past symptoms and idioms,
applies per-procedure rules/overrides and combinations, and returns the highest tier.

    >>> triage("temp 101.2 and chills").tier
    'urgent'
"""
from __future__ import annotations

import itertools
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from painpath.learned.recall import RecallModel, get_model
from painpath.screens import IDEATION, NURSE_CALL, screen_book, unreadable

TIERS = ("none", "routine", "urgent", "crisis", "emergency")  # ascending severity
_RANK = {t: i for i, t in enumerate(TIERS)}
# the reason of a routine note for someone else's emergency: the reply tells the texter
# to call 911 for them (painpath/escalation.py)
BYSTANDER_REASON = "someone else's emergency (not the patient)"
# crisis words beside a joke or a denial: a routine note, and the direct question
DOUBTED_CRISIS_REASON = "words about suicide or harm, said as a joke or denied (asked)"
DEFAULT_LEXICON = Path(__file__).resolve().parent / "content" / "redflags.yaml"
PROCEDURES = (
    "epidural_steroid_injection", "facet_injection", "medial_branch_block",
    "radiofrequency_ablation", "sacroiliac_joint_injection", "sympathetic_block",
    "peripheral_nerve_block", "trigger_point_injection", "scs_trial", "scs_implant",
    "intrathecal_pump", "prp_injection", "vertebral_augmentation",
)
_SENT_END = {".", "!", "?", ";", "\n", "\n\n"}


@dataclass(frozen=True)
class TriageResult:
    tier: str  # "emergency" | "crisis" | "urgent" | "routine" | "none"
    reasons: list[str] = field(default_factory=list)  # highest tier's reasons first
    screen: str | None = None  # the direct safety question to ask next (screens.yaml)


def tier_rank(tier: str) -> int:
    """Position of ``tier`` in :data:`TIERS` (none=0 … emergency=4)."""
    try:
        return _RANK[tier]
    except KeyError:
        raise ValueError(f"unknown tier {tier!r}") from None


# ───────────────────────────── text normalisation ─────────────────────────────

_CONTRACTIONS = [
    (r"\bcan'?t\b|\bcannot\b", "can not"), (r"\bwon'?t\b", "will not"),
    (r"\bdon'?t\b", "do not"), (r"\bdoesn'?t\b", "does not"), (r"\bdidn'?t\b", "did not"),
    (r"\bisn'?t\b", "is not"), (r"\baren'?t\b", "are not"), (r"\bwasn'?t\b", "was not"),
    (r"\bweren'?t\b", "were not"), (r"\bhaven'?t\b", "have not"), (r"\bhasn'?t\b", "has not"),
    (r"\bhadn'?t\b", "had not"), (r"\bcouldn'?t\b", "could not"),
    (r"\bwouldn'?t\b", "would not"), (r"\bshouldn'?t\b", "should not"),
    (r"\bain'?t\b", "is not"), (r"\bi'?m\b", "i am"), (r"\bi'?ve\b", "i have"),
    (r"\bi'll\b", "i will"), (r"\bi'd\b", "i would"), (r"\bitd\b", "it would"),
    (r"\bit'd\b", "it would"), (r"\bhe'?s\b", "he is"), (r"\bshe'?s\b", "she is"),
    (r"\bit'?s\b", "it is"), (r"\bthat'?s\b", "that is"), (r"\bthere'?s\b", "there is"),
    (r"\btheres\b", "there is"), (r"\bwhat'?s\b", "what is"), (r"\bwhats\b", "what is"),
    (r"\byou'?re\b", "you are"), (r"\bthey'?re\b", "they are"), (r"\bn't\b", " not"),
    (r"\bwhat ill\b", "what i will"), (r"\bi ill\b", "i will"),
]


def _literals(pattern: str) -> tuple[str, ...]:
    """A literal piece of each alternative of a contraction regex: a string the regex
    matches always contains one of them (a cheap test before running the regex)."""
    out = []
    for alt in pattern.split("|"):
        pieces = re.split(r"'\?", alt.replace(r"\b", ""))
        out.append(max(pieces, key=len))
    return tuple(out)


_CONTRACTIONS_RE = [(re.compile(a), b, _literals(a)) for a, b in _CONTRACTIONS]
_CONTRACTION_HINT = re.compile(r"n'?t\b|'|\b(?:i'?m|i'?ve|he'?s|she'?s|it'?s|itd|that'?s|theres|whats|cannot|what ill|i ill)\b")
_WORD_RE = re.compile(r"[a-z0-9áéíóúñü'/-]+")
_SOB_RE = re.compile(r"\bSOB\b")
_DEG_RE = re.compile(r"(\d)\s*(?:º|°|deg\.?)\s*([fc])\b")
_DEG2_RE = re.compile(r"(\d)([fc])\b")
_DOTS_RE = re.compile(r"(?<=[a-z])[.,]{2,}")
_PAIN_SLASH_RE = re.compile(r"^(\d{1,2})/10$")


def _damerau1(a: str, b: str) -> bool:
    """True when a and b are exactly one edit (incl. transposition) apart."""
    if a == b:
        return False
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (len(diff) == 2 and diff[1] == diff[0] + 1
                and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    if la > lb:
        a, b = b, a
    for i in range(len(b)):
        if a == b[:i] + b[i + 1:]:
            return True
    return False


# Between "but" and a resolution cue: "but (it was) back to normal by dinner".
_RESOLVED_FILLER = {"it", "its", "it's", "they", "they're", "was", "were", "is", "are", "all",
                    "now", "everything", "that", "that's", "has", "have", "had", "been", "then",
                    "and", "'s", "totally", "completely", "pretty", "much", "mostly"}
# "gone <word>" is a change, not a resolution: "gone tight", "gone numb", "gone red"
_GONE_CHANGE = {"tight", "red", "numb", "hard", "white", "blue", "black", "purple", "pink",
                "weak", "dead", "stiff", "funny", "weird", "floppy", "hot", "cold", "shiny",
                "worse", "bad", "crazy", "off", "green", "yellow", "grey", "gray", "pale", "up",
                "limp", "swollen", "puffy", "wobbly", "all", "really", "very", "completely",
                "totally", "a", "into", "through", "to"}
_NO_ANSWERS = {"no", "nope", "none", "nah", "negative", "nil", "never", "nothing"}
# A resolution that has not happened: "was supposed to wear off", "waiting for it to go away".
_NOT_YET_RESOLVED = {"supposed", "should", "meant", "expected", "hoping", "hope", "waiting",
                     "wait", "want", "wish"}

# ───────────────────────────── pattern compiler ─────────────────────────────

_WILD = {"TEXT": {"NOT_IN": [".", "!", "?", ";", "\n"]}, "OP": "?"}
_ELEM_RE = re.compile(r"\([^)]*\)\??|\S+")


class _PatternCompiler:
    """Compiles the lexicon's small pattern language to spaCy Matcher token patterns."""

    def __init__(self, vocab: dict[str, list[str]]):
        self.vocab = vocab

    def _words(self, atom: str) -> list[str]:
        if atom.startswith("@"):
            name = atom[1:]
            if name not in self.vocab:
                raise ValueError(f"unknown word list @{name}")
            return [str(w).lower() for w in self.vocab[name]]
        return [atom]

    def _token(self, alts: list[str], optional: bool) -> dict[str, Any]:
        words, prefixes, num = [], [], False
        for alt in alts:
            for w in self._words(alt):
                if w == "#num":
                    num = True
                elif w.endswith("*"):
                    prefixes.append(re.escape(w[:-1]))
                else:
                    words.append(w)
        if num and not words and not prefixes:
            spec: dict[str, Any] = {"LIKE_NUM": True}
        elif prefixes:
            parts = [re.escape(w) + "$" for w in words] + [p for p in prefixes]
            spec = {"LOWER": {"REGEX": "^(?:" + "|".join(parts) + ")"}}
        elif len(words) == 1:
            spec = {"LOWER": words[0]}
        else:
            spec = {"LOWER": {"IN": sorted(set(words))}}
        if optional:
            spec["OP"] = "?"
        return spec

    def _atom_alts(self, atom: str) -> list[list[dict]]:
        optional = atom.endswith("?") and len(atom) > 1
        if optional:
            atom = atom[:-1]
        if re.fullmatch(r"~\d+", atom):
            return [[dict(_WILD) for _ in range(int(atom[1:]))]]
        return [[self._token(atom.split("|"), optional)]]

    def compile(self, pattern: str) -> list[list[dict]]:
        seqs: list[list[dict]] = [[]]
        for elem in _ELEM_RE.findall(pattern.lower()):
            if elem.startswith("("):
                optional = elem.endswith("?")
                body = elem[1:-2] if optional else elem[1:-1]
                singles, multis = [], []
                for alt in body.split("|"):
                    parts = alt.split()
                    (singles if len(parts) == 1 else multis).append(parts)
                options: list[list[dict]] = []
                if singles:
                    options.append([self._token([p[0] for p in singles], False)])
                for parts in multis:
                    opt: list[dict] = []
                    for p in parts:
                        opt.extend(self._atom_alts(p)[0])
                    options.append(opt)
                if optional:
                    options.append([])
            else:
                options = self._atom_alts(elem)
            seqs = [s + o for s in seqs for o in options]
        # spaCy rejects patterns made only of optional tokens / trailing wildcards are pointless
        out = []
        for s in seqs:
            while s and s[-1] is not None and s[-1].get("OP") == "?" and "TEXT" in s[-1]:
                s = s[:-1]
            while s and s[0].get("OP") == "?" and "TEXT" in s[0]:
                s = s[1:]
            if s:
                out.append(s)
        return out


# ───────────────────────────── token matcher ─────────────────────────────

_EQ, _IN, _RX, _NUM, _NOTIN_TEXT = range(5)


class _TokenMatcher:
    """Drop-in replacement for ``spacy.matcher.Matcher`` for the patterns built above.

    It runs the same state machine as spaCy's ``find_matches`` (quantifiers "1" and "?",
    LOWER ==/IN/REGEX, LIKE_NUM, TEXT NOT_IN) and returns the same ``(key, start, end)``
    list in the same order, but only starts a pattern at a token that one of its entry
    tokens (the leading optional ones and the first required one) can match. spaCy starts
    every pattern at every token, which is what made triage slow; a start that is pruned
    here would have died on that token, and states of different patterns never interact,
    so pruning cannot change the surviving matches or their order. The equivalence with
    spaCy is checked by the unit tests.
    """

    def __init__(self):
        self.patterns: list[tuple[str, tuple]] = []  # (key, specs); spec=(kind, value, opt, final)
        self._entry_words: dict[str, set[int]] = {}
        self._entry_rx: list[tuple[Any, set[int]]] = []
        self._entry_num: set[int] = set()
        self._entry_text_notin: list[tuple[frozenset, set[int]]] = []
        self._cands: dict[tuple[str, str, bool], tuple[int, ...]] = {}
        self._rx: dict[str, Any] = {}
        self._required: list[tuple[tuple[int, Any], ...]] = []

    def _spec(self, d: dict) -> tuple:
        opt = d.get("OP") == "?"
        if set(d) - {"OP"} == {"LOWER"}:
            v = d["LOWER"]
            if isinstance(v, str):
                return (_EQ, v, opt)
            if set(v) == {"IN"}:
                return (_IN, frozenset(v["IN"]), opt)
            if set(v) == {"REGEX"}:
                rx = self._rx.setdefault(v["REGEX"], re.compile(v["REGEX"]))
                return (_RX, rx, opt)
        elif set(d) - {"OP"} == {"LIKE_NUM"} and d["LIKE_NUM"] is True:
            return (_NUM, True, opt)
        elif set(d) - {"OP"} == {"TEXT"} and set(d["TEXT"]) == {"NOT_IN"}:
            return (_NOTIN_TEXT, frozenset(d["TEXT"]["NOT_IN"]), opt)
        raise ValueError(f"unsupported token pattern {d!r}")

    def add(self, key: str, patterns: list[list[dict]]) -> None:
        for pat in patterns:
            if d_op := [d.get("OP") for d in pat if d.get("OP") not in (None, "?")]:
                raise ValueError(f"unsupported operator {d_op[0]!r}")
            raw = [self._spec(d) for d in pat]
            specs = tuple((k, v, o, i == len(raw) - 1) for i, (k, v, o) in enumerate(raw))
            j = len(self.patterns)
            self.patterns.append((key, specs))
            # every required token must occur somewhere in the message for a match
            self._required.append(tuple(dict.fromkeys((k, v) for k, v, o, _ in specs if not o)))
            for kind, val, opt, _ in specs:
                if kind == _EQ:
                    self._entry_words.setdefault(val, set()).add(j)
                elif kind == _IN:
                    for w in val:
                        self._entry_words.setdefault(w, set()).add(j)
                elif kind == _RX:
                    for rx, js in self._entry_rx:
                        if rx is val:
                            js.add(j)
                            break
                    else:
                        self._entry_rx.append((val, {j}))
                elif kind == _NUM:
                    self._entry_num.add(j)
                else:
                    for vals, js in self._entry_text_notin:
                        if vals == val:
                            js.add(j)
                            break
                    else:
                        self._entry_text_notin.append((val, {j}))
                if not opt:
                    break
        self._cands.clear()

    def _candidates(self, text: str, lower: str, num: bool) -> tuple[int, ...]:
        key = (text, lower, num)
        c = self._cands.get(key)
        if c is None:
            js = set(self._entry_words.get(lower, ()))
            for rx, ids in self._entry_rx:
                if rx.search(lower):
                    js |= ids
            if num:
                js |= self._entry_num
            for vals, ids in self._entry_text_notin:
                if text not in vals:
                    js |= ids
            c = tuple(sorted(js))
            if len(self._cands) < 100000:
                self._cands[key] = c
        return c

    @staticmethod
    def _present(kind: int, val: Any, texts, lowset: set, nums) -> bool:
        if kind == _EQ:
            return val in lowset
        if kind == _IN:
            return not val.isdisjoint(lowset)
        if kind == _RX:
            return any(val.search(w) for w in lowset)
        if kind == _NUM:
            return any(nums)
        return any(t not in val for t in texts)

    def __call__(self, texts: list[str], lowers: list[str], nums: list[bool]) -> list[tuple[str, int, int]]:
        pats, required = self.patterns, self._required
        states: list[tuple[int, int, int, int]] = []  # (pattern, spec index, start, length)
        matches: list[tuple[str, int, int]] = []
        lowset = set(lowers)
        present: dict[tuple, bool] = {}
        feasible: dict[int, bool] = {}
        for i in range(len(texts)):
            lw, tx, nm = lowers[i], texts[i], nums[i]
            for j in self._candidates(tx, lw, nm):
                f = feasible.get(j)
                if f is None:
                    f = True
                    for spec in required[j]:
                        ok = present.get(spec)
                        if ok is None:
                            ok = present[spec] = self._present(spec[0], spec[1], texts, lowset, nums)
                        if not ok:
                            f = False
                            break
                    feasible[j] = f
                if f:
                    states.append((j, 0, i, 0))
            if not states:
                continue
            survivors: list[tuple[int, int, int, int]] = []
            branches: list[tuple[int, int, int, int]] = []
            for j, p, start, length in states:
                key, specs = pats[j]
                while True:
                    kind, val, opt, final = specs[p]
                    if kind == _EQ:
                        ok = lw == val
                    elif kind == _IN:
                        ok = lw in val
                    elif kind == _NOTIN_TEXT:
                        ok = tx not in val
                    elif kind == _RX:
                        ok = val.search(lw) is not None
                    else:
                        ok = nm
                    if opt:
                        if ok:
                            if final:  # MATCH_DOUBLE
                                if length:
                                    matches.append((key, start, start + length))
                                matches.append((key, start, start + length + 1))
                                break
                            branches.append((j, p + 1, start, length + 1))  # RETRY_ADVANCE
                            p += 1
                            continue
                        if final:  # MATCH_REJECT
                            if length:
                                matches.append((key, start, start + length))
                            break
                        p += 1  # RETRY
                        continue
                    if ok:
                        if final:
                            matches.append((key, start, start + length + 1))
                        else:
                            survivors.append((j, p + 1, start, length + 1))
                    break
            # identical states evolve identically and the earlier one emits every match
            # first, so dropping later duplicates cannot change the (deduplicated) output
            states = list(dict.fromkeys(survivors + branches)) if branches else survivors
        for j, p, start, length in states:  # patterns ending in optional tokens
            key, specs = pats[j]
            while specs[p][2]:
                if specs[p][3]:
                    if length:
                        matches.append((key, start, start + length))
                    break
                p += 1
        seen: set = set()
        out = []
        for m in matches:
            if m not in seen:
                seen.add(m)
                out.append(m)
        return out


# ───────────────────────────── engine ─────────────────────────────

@dataclass
class _Rule:
    id: str
    tier: str
    reason: str
    features: frozenset
    improvable: bool = False
    needs: str | None = None
    overrides: tuple = ()
    masks: tuple = ()
    in_idioms: bool = False
    resolvable: bool = True  # False: "stopped" is the symptom ("the stimulation has stopped")


@dataclass
class _Hit:
    rule: str
    start: int
    end: int
    numeric: bool = False
    tier: str | None = None
    reason: str | None = None


def _phrase_list(items: Iterable[Any]) -> list[str]:
    return [str(x).lower() for x in (items or [])]


class TriageEngine:
    """Red-flag triage engine; build once, call :meth:`triage` many times (thread-safe)."""

    def __init__(self, lexicon_path: str | Path | None = None, validate: bool = False,
                 learned: bool = True):
        import spacy
        from spacy.matcher import PhraseMatcher

        self._building = True  # no fuzzy repair of the lexicon's own words
        path = Path(lexicon_path) if lexicon_path else DEFAULT_LEXICON
        with open(path, encoding="utf-8") as fh:
            lex = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        self.lex = lex
        self.nlp = spacy.blank("en")
        self._lock = threading.Lock()  # spaCy matchers are not documented as thread-safe

        # spelling
        self.spelling = {str(k).lower(): str(v).lower() for k, v in (lex.get("spelling") or {}).items()}
        fz = lex.get("fuzzy") or {}
        self.fuzzy_targets = sorted({str(w).lower() for w in fz.get("targets", [])})
        self.vocab = {k: _phrase_list(v) for k, v in (lex.get("vocab") or {}).items()}

        ctx = lex.get("context") or {}
        self.cues = {k: [tuple(self._norm(str(c)).split()) for c in v] for k, v in ctx.items()
                     if isinstance(v, list)}
        self._cue_index: dict[str, dict[str, list[tuple[tuple, int]]]] = {}
        for kind, cues in self.cues.items():
            idx: dict[str, list[tuple[tuple, int]]] = {}
            for c in cues:
                if c:
                    idx.setdefault(c[0], []).append((c, len(c)))
            self._cue_index[kind] = idx
        self._neg_terms = set(t[0] for t in self.cues.get("negation_terminators", []) if len(t) == 1)
        self.self_words = set(_phrase_list(ctx.get("self_words")))
        self.other_words = set(_phrase_list(ctx.get("other_words")))
        self.animal_words = set(_phrase_list(ctx.get("animal_words")))
        self.other_words |= self.animal_words

        comp = _PatternCompiler(self.vocab)
        self._validate = validate
        self._token_patterns: list[tuple[str, list[list[dict]]]] = []  # (rule id, patterns)
        self.matcher = _TokenMatcher()
        self.phrases = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        self.rules: dict[str, _Rule] = {}
        self.universal: set[str] = set()
        self.proc_rules: dict[str, set[str]] = {p: set() for p in PROCEDURES}
        self.proc_retier: dict[str, dict[str, dict]] = {p: {} for p in PROCEDURES}

        rules = lex.get("rules") or {}
        for r in rules.get("universal") or []:
            self._add_rule(r, comp)
            self.universal.add(r["id"])
        for proc, spec in (rules.get("procedures") or {}).items():
            if proc not in PROCEDURES:
                raise ValueError(f"lexicon names unknown procedure {proc!r}")
            spec = spec or {}
            for r in spec.get("rules") or []:
                self._add_rule(r, comp)
                self.proc_rules[proc].add(r["id"])
            self.proc_retier[proc] = dict(spec.get("retier") or {})

        idioms = [self.nlp.make_doc(self._norm(p)) for p in _phrase_list(lex.get("idioms"))]
        self.phrases.add("__IDIOM__", idioms)
        self.combos = lex.get("combos") or []
        meas = lex.get("measurements") or {}
        self.temp = meas.get("temperature") or {}
        self.gluc = meas.get("glucose") or {}
        self.pain = meas.get("pain_score") or {}
        self.temp_words = set(_phrase_list(self.temp.get("words")))
        self.gluc_words = set(_phrase_list(self.gluc.get("words")))
        # numeric pseudo-rules
        for rid, tier, reason, feats in (
            ("temperature_fever", "urgent", self.temp.get("fever_reason", "fever"), {"fever"}),
            ("temperature_low_grade", "routine", self.temp.get("low_grade_reason", "low-grade temperature"), set()),
            ("glucose_high", "urgent", self.gluc.get("urgent_reason", "high blood sugar"), set()),
            ("glucose_raised", "routine", self.gluc.get("routine_reason", "raised blood sugar"), set()),
            ("pain_score_severe", "urgent", self.pain.get("reason", "severe pain"), {"severe_pain"}),
        ):
            self.rules[rid] = _Rule(rid, tier, reason, frozenset(feats | {rid}))
            self.universal.add(rid)
        self._building = False
        self._spacy_matcher_obj = None
        if validate:
            self.spacy_matcher()  # let spaCy validate every compiled pattern
        self.nlp.make_doc("warm up")  # touch the tokenizer once
        # the recall layer (painpath/learned/): None = the lexicon alone
        self.recall: RecallModel | None = get_model() if learned else None

    # -- building --
    def _add_rule(self, r: dict, comp: _PatternCompiler) -> None:
        rid = r["id"]
        if rid in self.rules:
            raise ValueError(f"duplicate rule id {rid!r}")
        tier = r["tier"]
        if tier not in _RANK and tier != "signal":
            raise ValueError(f"rule {rid}: bad tier {tier!r}")
        self.rules[rid] = _Rule(
            rid, tier, str(r.get("reason", rid)),
            frozenset(set(r.get("features") or []) | {rid}),
            bool(r.get("improvable")), r.get("needs"), tuple(r.get("overrides") or ()),
            tuple(r.get("masks") or ()), bool(r.get("in_idioms")),
            r.get("resolvable", True) is not False,
        )
        pats = []
        for p in r.get("patterns") or []:
            pats.extend(comp.compile(str(p)))
        if pats:
            self.matcher.add(rid, pats)
            self._token_patterns.append((rid, pats))
        phr = [self.nlp.make_doc(self._norm(p)) for p in _phrase_list(r.get("phrases"))]
        if phr:
            self.phrases.add(rid, phr)

    # -- normalisation --
    def normalise(self, text: str) -> str:
        """The message as the rules and the recall layer read it (lower case, no accents,
        contractions expanded, common misspellings repaired)."""
        return self._norm(text)

    def _norm(self, text: str) -> str:
        t = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
        if not t.isascii():  # "convulsión", "mañana": match without accents
            t = "".join(c for c in unicodedata.normalize("NFKD", t)
                        if not unicodedata.combining(c))
        t = _SOB_RE.sub(" short of breath ", t)
        t = t.lower()
        t = _DEG_RE.sub(r"\1 °\2", t)
        t = _DEG2_RE.sub(r"\1 °\2", t)
        t = _DOTS_RE.sub(". ", t)
        if _CONTRACTION_HINT.search(t):
            for rx, rep, lits in _CONTRACTIONS_RE:
                if any(lit in t for lit in lits):
                    t = rx.sub(rep, t)

        cache = self.__dict__.setdefault("_fix_cache", {})

        def fix(m: re.Match) -> str:
            w = m.group(0)
            if w in self.spelling:
                return self.spelling[w]
            if len(w) < 6 or not w.isalpha() or self._building:
                return w
            hit = cache.get(w)
            if hit is None:
                hit = w
                if w not in self._known:
                    for tgt in self.fuzzy_targets:
                        if _damerau1(w, tgt):
                            hit = tgt
                            break
                if len(cache) < 50000:
                    cache[w] = hit
            return hit

        t = _WORD_RE.sub(fix, t)
        t = t.replace("brother-in-law", "brother in law").replace("sister-in-law", "sister in law")
        return t

    @property
    def _known(self) -> set[str]:
        k = getattr(self, "_known_cache", None)
        if k is None:
            fz = self.lex.get("fuzzy") or {}
            k = set(_phrase_list(fz.get("keep"))) | set(self.fuzzy_targets)
            for words in self.vocab.values():
                k.update(words)
            k.update(self.spelling.values())
            self._known_cache = k
        return k

    # -- public --
    def triage(self, text: str, procedure: str | None = None, *,
               glucose_limit_mg_dl: float | None = None) -> TriageResult:
        """The tier, reasons and screen of one message; `glucose_limit_mg_dl` is the
        patient's own diabetes-plan limit where the patient is known (CLINICAL.md
        §1.0): a reading at or above it is URGENT, the lexicon's thresholds are
        only the default."""
        if procedure is not None and procedure not in PROCEDURES:
            raise ValueError(f"unknown procedure {procedure!r}")
        if not text or not text.strip():
            return TriageResult("none", [])
        norm = self._norm(text)
        doc = self.nlp.make_doc(norm)
        raw, toks = self._raw_matches(doc)
        result = self._decide(toks, raw, procedure, glucose_limit_mg_dl)
        if self.recall is not None:
            probs = self.recall.probabilities(norm, procedure)
            result = TriageResult(*combine_layers(result, probs, self.recall.thresholds, norm))
        if _RANK[result.tier] < _RANK["urgent"] and unreadable(text):
            # never passed over unread: a note, and a screen (the recall layer's guesses
            # about a language it cannot read are noise)
            book = screen_book()
            return TriageResult("routine", [book.unreadable_reason, *result.reasons],
                                book.unreadable_screen)
        return result

    def _raw_matches(self, doc) -> tuple[list[tuple[str, int, int]], list[str]]:
        texts, toks, nums = [], [], []
        for t in doc:
            texts.append(t.text)
            toks.append(t.lower_)
            nums.append(t.like_num)
        raw = self.matcher(texts, toks, nums)
        strings = self.nlp.vocab.strings
        with self._lock:
            phr = self.phrases(doc)
        raw += [(strings[m], s, e) for m, s, e in phr]
        return raw, toks

    def spacy_matcher(self):
        """The same token patterns in a real ``spacy.matcher.Matcher`` (built on first use;
        for validation and for checking :class:`_TokenMatcher` against spaCy)."""
        if self._spacy_matcher_obj is None:
            from spacy.matcher import Matcher
            m = Matcher(self.nlp.vocab, validate=self._validate)
            for rid, pats in self._token_patterns:
                m.add(rid, pats)
            self._spacy_matcher_obj = m
        return self._spacy_matcher_obj

    # -- analysis helpers --
    def _sentences(self, toks: list[str]) -> list[tuple[int, int]]:
        bounds, s = [], 0
        for i, t in enumerate(toks):
            if t in _SENT_END or t.strip() == "" and "\n" in t:
                bounds.append((s, i + 1))
                s = i + 1
        if s < len(toks):
            bounds.append((s, len(toks)))
        return bounds

    def _find(self, toks: list[str], kind: str, lo: int, hi: int) -> list[tuple[int, int]]:
        """Spans (i, i+n) in toks[lo:hi] of the cues of ``kind``, by position then cue order."""
        idx = self._cue_index.get(kind)
        if not idx:
            return []
        out = []
        for i in range(max(lo, 0), min(hi, len(toks))):
            cs = idx.get(toks[i])
            if cs:
                for c, n in cs:
                    if i + n <= hi and (n == 1 or tuple(toks[i:i + n]) == c):
                        out.append((i, i + n))
        return out

    def _covered(self, toks, kind, lo, hi, spans):
        """spans of cue kind `kind` overlapping any of `spans`."""
        return self._find(toks, kind, lo, hi)

    def _negated(self, toks, start, s0, strict: bool) -> bool:
        cues = self._find(toks, "negation_before", s0, start)
        if not cues:
            return False
        pseudo = self._find(toks, "pseudo_negation", s0, min(len(toks), start + 3))
        terms = self._neg_terms
        for cs, ce in sorted(cues, key=lambda c: -c[1]):
            if ce > start:
                continue
            if any(ps <= cs < pe for ps, pe in pseudo):
                continue
            between = toks[ce:start]
            if any(t in terms for t in between):
                continue
            words = [t for t in between if t not in {",", "-", "(", ")", ":"}]
            if strict:
                if len(words) > 3 or "," in between:
                    continue
                return True
            if len(words) > 5:
                continue
            if "," in between:
                # scope crosses a comma only for short lists without a new subject/verb
                seg = between[len(between) - between[::-1].index(","):]
                if any(t in self.self_words or t in self.other_words or t in {
                        "is", "am", "are", "was", "get", "got", "feel", "feels", "have", "has",
                        "like", "more", "seems", "looks", "keep", "keeps", "kept", "going",
                        "goes", "went", "started", "starting", "came", "comes", "coming",
                        "getting", "gets"} for t in seg) or len(seg) > 3:
                    continue
            return True
        return False

    def _resolved(self, toks, start, end, s0, s1) -> bool:
        stop = {"but", "however", "though", "although", "except", "yet", "pero"}
        hi = s1
        for i in range(end, s1):
            if toks[i] in stop:
                hi = i
                break
        cues = self._find(toks, "resolved_after", end, hi)
        if hi < s1:
            # "legs felt heavy for a few hours but back to normal by dinner"
            j = hi + 1
            while j < s1 and toks[j] in _RESOLVED_FILLER:
                j += 1
            cues += [c for c in self._find(toks, "resolved_after", j, s1) if c[0] == j]
        for cs, ce in cues:
            prev = toks[cs - 1] if cs > 0 else ""
            if prev in {"not", "never", "no"} or (cs > 1 and toks[cs - 2] == "not"):
                continue
            if _NOT_YET_RESOLVED & set(toks[max(s0, cs - 4):cs]):
                continue  # "was supposed to wear off", "waiting for it to go away"
            if toks[ce - 1] == "gone" and ce < len(toks) and toks[ce] in _GONE_CHANGE:
                continue  # "the skin's gone tight", "my leg has gone numb"
            return True
        for cs, ce in self._find(toks, "resolved_before", max(s0, start - 5), start):
            if not any(t in stop for t in toks[ce:start]):
                return True
        return False

    def _improving(self, toks, end, s1) -> bool:
        stop = {"but", "however", "though", "although", "except", "pero"}
        hi = s1
        for i in range(end, s1):
            if toks[i] in stop:
                hi = i
                break
        return bool(self._find(toks, "improving_after", end, hi))

    @staticmethod
    def _answered_no(toks, end) -> bool:
        """A symptom asked and answered: "Fever? No. Redness? No." """
        j = end
        while j < min(len(toks), end + 4) and toks[j] not in _SENT_END and toks[j] != ":":
            j += 1  # "numb legs? no": the question may name more than the match
        k = j
        while k < len(toks) and toks[k] in {"?", ":", "-", "=", "..."}:
            k += 1
        if k == j or k >= len(toks) or toks[k] not in _NO_ANSWERS:
            return False
        return k + 1 >= len(toks) or toks[k + 1] in _SENT_END or toks[k + 1] in {",", "-"}

    def _instruction_denied(self, toks, end, s1, has_question: bool) -> bool:
        """A warning sign someone explained, then denied ("the nurse said numbness in
        the legs is something to call about, none so far"), or asked about for the
        leaflet's sake ("is it normal to lose bladder control? not happening to me")."""
        if has_question and self._find(toks, "question_denial", 0, len(toks)):
            return True
        return bool(self._find(toks, "instruction_after", end, s1)
                    and self._find(toks, "denial_tail", 0, len(toks)))

    def _hypothetical(self, toks, start, s0) -> bool:
        cues = self._find(toks, "hypothetical_before", s0, start)
        if not cues:
            return False
        nots = self._find(toks, "hypothetical_not", s0, start)
        for cs, ce in cues:
            if any(ns <= cs < ne for ns, ne in nots):
                continue
            return True
        return False

    def _not_patient_tokens(self, toks) -> set[int]:
        """Positions inside "I'm the patient", "not me", ...: an "I" there does not own
        the symptom ("my husband (not the patient, I am) is having chest pains")."""
        return {i for cs, ce in self._find(toks, "not_patient", 0, len(toks)) for i in range(cs, ce)}

    def _other_person(self, toks, start, end, s0, s1, has_question: bool) -> bool:
        ref = None
        skip = self._not_patient_tokens(toks)
        for i in range(start - 1, -1, -1):
            t = toks[i]
            if i in skip:
                continue
            if t in self.self_words:
                return False
            if t in self.other_words:
                ref = i
                break
        if ref is None:
            return False
        if toks[ref] in self.animal_words:
            # "my cat threw up"; but "picked up the cat and felt a sudden pain" is the
            # patient's own pain
            return start - ref <= 4
        if self._find(toks, "self_contrast", 0, len(toks)) or \
                self._find(toks, "not_patient", 0, len(toks)):
            return True  # "my neighbour collapsed, I'm fine"; "... so I might miss my appointment"
        same = ref >= s0
        if has_question and same:
            return True
        hi = min(s1, end + 4)
        if self._find(toks, "other_recent", s0 if same else ref,
                      s1 if same else min(len(toks), end + 4)):
            return False  # a carer reporting something happening now
        # someone named only in an earlier sentence ("My wife had a nice day. Chest pain.")
        # does not own this symptom unless its own sentence puts it in their past
        return bool(self._find(toks, "other_past", ref if same else s0, hi))

    def _doubted(self, toks, start, s0, s1) -> bool:
        """Crisis words said as a joke in their own sentence ("he'll kill me lol") or
        beside a plain denial ("I said I want to die, I'm not suicidal"), and nothing
        saying they mean it ("not joking", "kinda", "for real"); a denial before the
        words counts only when no "but" comes between ("not suicidal, but ...")."""
        if self._find(toks, "crisis_earnest", 0, len(toks)):
            return False
        if self._find(toks, "crisis_joke", s0, min(len(toks), s1 + 3)):
            return True
        for cs, ce in self._find(toks, "crisis_denial", 0, len(toks)):
            if cs > start or not any(t in ("but", "pero", "though", "however")
                                     for t in toks[ce:start]):
                return True
        return False

    def _bystander(self, toks, start, s0) -> bool:
        """Someone who is plainly not the patient is in danger now ("my husband is having
        chest pains, he's not the patient, I am"): DESIGN.md asks to tell the texter to
        call 911 and to leave a routine note instead of paging. Needs a person named
        before the flag, an explicit not-the-patient cue, and nothing putting it in the past."""
        ref = None
        skip = self._not_patient_tokens(toks)
        for i in range(start - 1, -1, -1):
            if i in skip:
                continue
            if toks[i] in self.self_words:
                return False
            if toks[i] in self.other_words:
                ref = i
                break
        if ref is None or toks[ref] in self.animal_words:
            return False
        cues = self._find(toks, "not_patient", 0, len(toks))
        if not cues:
            return False
        past = self._find(toks, "other_past", min(ref, s0), len(toks))
        return not any(not any(cs <= ps < ce for cs, ce in cues) for ps, _ in past)

    # -- numbers --
    _NUM_RE = re.compile(r"^(\d{1,3}(?:\.\d{1,2})?)(?:ish|s)?$")  # 7ish, "in the 20s"
    _EXCL_UNITS = {"%", "percent", "lb", "lbs", "pounds", "kg", "mg", "mcg", "ml", "minutes",
                   "min", "hours", "hour", "years", "year", "days", "day", "weeks", "week",
                   "times", "out", "bpm", "am", "pm", "x", "seconds", "secs", "yrs", "oclock",
                   "o'clock", "miles", "steps", "feet", "ft", "inches", "inch", "dollars",
                   "units", "pills", "tablets", "mins", "hrs", "months"}

    def _glucose_thresholds(self, own_limit: float | None) -> tuple[float, float]:
        """(urgent, routine) mg/dL: the patient's own plan limit (the routine note
        never above it), else the lexicon's defaults."""
        urgent = float(self.gluc.get("urgent_mg_dl", 300))
        routine = float(self.gluc.get("routine_mg_dl", 180))
        if own_limit is None:
            return urgent, routine
        return float(own_limit), min(routine, float(own_limit))

    def _numbers(self, toks: list[str], sents,
                 glucose_limit_mg_dl: float | None = None) -> list[_Hit]:
        hits: list[_Hit] = []
        g_urgent, g_routine = self._glucose_thresholds(glucose_limit_mg_dl)
        if glucose_limit_mg_dl is None:
            g_urgent_mmol = float(self.gluc.get("urgent_mmol", 16.7))
            g_routine_mmol = float(self.gluc.get("routine_mmol", 10.0))
        else:  # the plan limit in mmol/L (18 mg/dL per mmol/L)
            g_urgent_mmol = round(g_urgent / 18.0, 1)
            g_routine_mmol = min(float(self.gluc.get("routine_mmol", 10.0)), g_urgent_mmol)
        sent_of = {}
        for s0, s1 in sents:
            for i in range(s0, s1):
                sent_of[i] = (s0, s1)
        for i, tok in enumerate(toks):
            vals = []
            for piece in tok.split(","):
                m = self._NUM_RE.match(piece)
                if m:
                    vals.append(m.group(1))
            if not vals:
                # pain scores "9/10"
                m = _PAIN_SLASH_RE.match(tok)
                if m and int(m.group(1)) >= int(self.pain.get("severe", 9)) and int(m.group(1)) <= 10:
                    hits.append(_Hit("pain_score_severe", i, i + 1, numeric=True))
                continue
            s0, s1 = sent_of.get(i, (0, len(toks)))
            nxt = toks[i + 1] if i + 1 < len(toks) else ""
            nxt2 = toks[i + 2] if i + 2 < len(toks) else ""
            prev = toks[max(s0, i - 8):i]
            # pain "a 10", "pain 9", "10 out of 10"
            if nxt == "out" and nxt2 == "of":
                v = float(vals[0])
                if int(self.pain.get("severe", 9)) <= v <= 10:
                    hits.append(_Hit("pain_score_severe", i, i + 1, numeric=True))
                continue
            unit = None
            if nxt in ("°f", "fahrenheit", "f") or (nxt == "°" and nxt2 == "f"):
                unit = "f"
            elif nxt in ("°c", "celsius", "centigrade", "c") or (nxt == "°" and nxt2 == "c"):
                unit = "c"
            elif nxt in ("°", "degrees", "degree", "deg", "grados"):
                unit = "deg"
            gl_dist = next((k for k, t in enumerate(reversed(prev)) if t in self.gluc_words), None)
            tp_dist = next((k for k, t in enumerate(reversed(prev[-6:])) if t in self.temp_words), None)
            if "a1c" in prev[-3:]:
                continue
            gl_unit = nxt.startswith("mg") or nxt.startswith("mmol")
            for sv in vals:
                v = float(sv)
                decimal = "." in sv
                if (gl_dist is not None or gl_unit) and unit is None and (
                        tp_dist is None or (gl_dist is not None and gl_dist < tp_dist)
                        or v > 110):  # no temperature reads 380: "sugar reading 380"
                    if nxt in self._EXCL_UNITS:
                        continue
                    if 40 <= v <= 900 and not nxt.startswith("mmol"):
                        if v >= g_urgent:
                            hits.append(_Hit("glucose_high", i, i + 1, numeric=True))
                        elif v >= g_routine:
                            hits.append(_Hit("glucose_raised", i, i + 1, numeric=True))
                    elif v < 40 and (decimal or v >= 10 or nxt.startswith("mmol")):
                        if v >= g_urgent_mmol:
                            hits.append(_Hit("glucose_high", i, i + 1, numeric=True))
                        elif v >= g_routine_mmol:
                            hits.append(_Hit("glucose_raised", i, i + 1, numeric=True))
                    continue
                if nxt in self._EXCL_UNITS or nxt == "/":
                    continue
                in_c, in_f = 34.0 <= v <= 43.5, 93.0 <= v <= 110.0
                if unit is None and tp_dist is None and not (decimal and (in_c or in_f)):
                    continue
                if unit == "c" or (unit != "f" and in_c):
                    fever = v >= float(self.temp.get("fever_c", 38.0))
                    low = v >= float(self.temp.get("low_grade_c", 37.5))
                elif unit == "f" or in_f:
                    fever = v >= float(self.temp.get("fever_f", 100.4))
                    low = v >= float(self.temp.get("low_grade_f", 99.5))
                else:
                    continue
                if fever:
                    hits.append(_Hit("temperature_fever", i, i + 1, numeric=True))
                elif low:
                    hits.append(_Hit("temperature_low_grade", i, i + 1, numeric=True))
        return hits

    # -- decision --
    def _decide(self, toks: list[str], raw, procedure: str | None,
                glucose_limit_mg_dl: float | None = None) -> TriageResult:
        sents = self._sentences(toks)
        sent_of = {}
        for s0, s1 in sents:
            for i in range(s0, s1):
                sent_of[i] = (s0, s1)
        active = set(self.universal)
        retier: dict[str, dict] = {}
        if procedure:
            active |= self.proc_rules[procedure]
            retier = self.proc_retier[procedure]
        idioms = [(s, e) for r, s, e in raw if r == "__IDIOM__"]
        has_question = "?" in toks
        hits = [_Hit(r, s, e) for r, s, e in raw if r != "__IDIOM__" and r in active]
        hits += self._numbers(toks, sents, glucose_limit_mg_dl)

        kept: list[_Hit] = []
        bystander = False  # someone else's emergency, not the patient's
        doubted: list[_Hit] = []  # crisis words beside a joke or a denial
        for h in hits:
            rule = self.rules[h.rule]
            s0, s1 = sent_of.get(h.start, (0, len(toks)))
            if not rule.in_idioms and any(s < h.end and h.start < e for s, e in idioms):
                continue
            if rule.tier == "crisis":
                if self._negated(toks, h.start, s0, strict=True):
                    continue
                if self._bystander(toks, h.start, s0):
                    bystander = True
                    continue
                if self._doubted(toks, h.start, s0, s1):
                    doubted.append(h)  # asked, not dropped (see below)
                    continue
                kept.append(h)
                continue
            if rule.needs:
                words = set(self.vocab.get(rule.needs, []))
                if not any(t in words for k, t in enumerate(toks[s0:s1]) if not (h.start <= s0 + k < h.end)):
                    continue
            if self._hypothetical(toks, h.start, s0) or self._instruction_denied(
                    toks, h.end, s1, has_question):
                continue
            if self._negated(toks, h.start, s0, strict=False):
                continue
            if rule.resolvable and self._resolved(toks, h.start, h.end, s0, s1):
                continue
            if self._answered_no(toks, h.end):
                continue
            if self._other_person(toks, h.start, h.end, s0, s1, has_question):
                bystander = bystander or (rule.tier == "emergency"
                                          and self._bystander(toks, h.start, s0))
                continue
            if rule.improvable and self._improving(toks, h.end, s1):
                h.tier, h.reason = "routine", rule.reason + " (improving)"
            kept.append(h)

        # expected-effect rules cancel listed rules in the same sentence
        drop = set()
        for h in kept:
            for o in self.rules[h.rule].overrides:
                s = sent_of.get(h.start)
                drop |= {id(k) for k in kept if k.rule == o and sent_of.get(k.start) == s}
            for o in self.rules[h.rule].masks:
                drop |= {id(k) for k in kept if k.rule == o and k.start < h.end and h.start < k.end}
        kept = [k for k in kept if id(k) not in drop]

        found: dict[str, tuple[str, str]] = {}  # reason -> tier
        features: set[str] = set()
        for h in kept:
            rule = self.rules[h.rule]
            tier, reason = h.tier or rule.tier, h.reason or rule.reason
            if h.rule in retier and h.tier is None:
                tier = retier[h.rule].get("tier", tier)
                reason = retier[h.rule].get("reason", reason)
            features |= rule.features
            if tier == "signal":
                continue
            if reason not in found or _RANK[tier] > _RANK[found[reason][0]]:
                found[reason] = (tier, h.rule)
        for c in self.combos:
            if all(f in features for f in c.get("all", [])) and (
                    not c.get("any") or any(f in features for f in c["any"])):
                reason = c.get("reason", c["id"])
                if reason not in found or _RANK[c["tier"]] > _RANK[found[reason][0]]:
                    found[reason] = (c["tier"], c["id"])
        if bystander:
            found.setdefault(BYSTANDER_REASON, ("routine", "bystander"))
        screen = None
        if doubted and not any(t in ("crisis", "emergency") for t, _ in found.values()):
            # "lol he'll kill me", "I said I want to die but I'm not suicidal": ask
            screen = IDEATION
            found.setdefault(DOUBTED_CRISIS_REASON, ("routine", "doubted"))
        if not found:
            return TriageResult("none", [])
        order = sorted(found.items(), key=lambda kv: -_RANK[kv[1][0]])
        top = order[0][1][0]
        return TriageResult(top, [r for r, _ in order], screen)

    def explain(self, text: str, procedure: str | None = None) -> dict:
        """Debug helper: raw matches before filtering and the result."""
        doc = self.nlp.make_doc(self._norm(text))
        raw = [(r, doc[s:e].text) for r, s, e in self._raw_matches(doc)[0]]
        return {"normalised": doc.text, "matches": raw, "result": self.triage(text, procedure)}


# the recall layer abstains on messages of fewer words (see combine_layers)
MIN_WORDS = 4
LEARNED_REASONS = {
    "emergency": "possible emergency (learned layer)",
    "crisis": "possible thoughts of suicide or self-harm (learned layer)",
    "urgent": "possible red flag (learned layer)",
}
def combine_layers(lexicon: TriageResult, probs: dict[str, float], thresholds: dict[str, float],
                   normalised_text: str) -> tuple[str, list[str], str | None]:
    """The lexicon's verdict, raised by the recall layer where it is confident, and the
    screen to ask where it is unsure (DESIGN.md "When unsure, ask — never drop").

    - ``life_high``, ``alert_high``: the recall layer is confident enough to raise the
      tier itself (to emergency or crisis, whichever is likelier; to urgent).
    - ``*_low``: it is unsure; the matching screen is asked, the tier stays.
    The recall layer never lowers the lexicon's tier: tried, it doubted short plain
    red flags ("slurred speech", "numbness in my groin") that its training messages
    mostly asked about or denied. Any crisis is also asked ASQ item 5 (DESIGN.md).
    """
    tier, reasons = lexicon.tier, list(lexicon.reasons)
    if len(normalised_text.split()) < MIN_WORDS:
        # "no idea really", "dunno", "3": the recall layer has seen almost no messages
        # this short and its guesses on them are noise; the lexicon decides alone
        probs = {c: 0.0 for c in probs}
    p_emergency, p_crisis = probs["emergency"], probs["crisis"]
    p_alert = p_emergency + p_crisis + probs["urgent"]
    if p_emergency + p_crisis >= thresholds["life_high"]:  # a threat to life: which one
        wanted = "crisis" if p_crisis >= p_emergency else "emergency"
    elif p_alert >= thresholds["alert_high"]:
        wanted = "urgent"
    else:
        wanted = "none"
    if _RANK[wanted] > _RANK[tier]:
        tier, reasons = wanted, [LEARNED_REASONS[wanted], *reasons]
    screen = None
    if tier == "crisis" or (tier != "emergency" and (
            p_crisis >= thresholds["crisis_low"] or lexicon.screen == IDEATION)):
        screen = IDEATION
    elif tier != "emergency" and p_emergency >= thresholds["emergency_low"]:
        screen = screen_book().pick_emergency(normalised_text)
    elif _RANK[tier] < _RANK["urgent"] and p_alert >= thresholds["alert_low"]:
        screen = NURSE_CALL
    elif tier != "emergency":
        screen = lexicon.screen
    return tier, reasons, screen


_ENGINE: TriageEngine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> TriageEngine:
    """The shared engine, built on first use."""
    global _ENGINE
    if _ENGINE is None:
        with _ENGINE_LOCK:
            if _ENGINE is None:
                _ENGINE = TriageEngine()
    return _ENGINE


def triage(text: str, procedure: str | None = None, *,
           glucose_limit_mg_dl: float | None = None) -> TriageResult:
    """Triage one patient message. ``procedure`` is a procedure id or None (universal
    flags); ``glucose_limit_mg_dl`` the patient's own diabetes-plan limit, if known."""
    return get_engine().triage(text, procedure, glucose_limit_mg_dl=glucose_limit_mg_dl)


__all__ = ["TIERS", "TriageResult", "TriageEngine", "triage", "tier_rank", "get_engine",
           "PROCEDURES", "combine_layers", "BYSTANDER_REASON"]
