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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

TIERS = ("none", "routine", "urgent", "crisis", "emergency")  # ascending severity
_RANK = {t: i for i, t in enumerate(TIERS)}
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
_CONTRACTIONS_RE = [(re.compile(a), b) for a, b in _CONTRACTIONS]
_CONTRACTION_HINT = re.compile(r"n'?t\b|'|\b(?:i'?m|i'?ve|he'?s|she'?s|it'?s|itd|that'?s|theres|whats|cannot|what ill|i ill)\b")
_WORD_RE = re.compile(r"[a-z0-9áéíóúñü'/-]+")


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

    def __init__(self, lexicon_path: str | Path | None = None, validate: bool = False):
        import spacy
        from spacy.matcher import Matcher, PhraseMatcher

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
        self.self_words = set(_phrase_list(ctx.get("self_words")))
        self.other_words = set(_phrase_list(ctx.get("other_words")))

        comp = _PatternCompiler(self.vocab)
        self.matcher = Matcher(self.nlp.vocab, validate=validate)
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
        self.nlp("warm up")  # touch the tokenizer once

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
        )
        pats = []
        for p in r.get("patterns") or []:
            pats.extend(comp.compile(str(p)))
        if pats:
            self.matcher.add(rid, pats)
        phr = [self.nlp.make_doc(self._norm(p)) for p in _phrase_list(r.get("phrases"))]
        if phr:
            self.phrases.add(rid, phr)

    # -- normalisation --
    def _norm(self, text: str) -> str:
        t = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
        t = re.sub(r"\bSOB\b", " short of breath ", t)
        t = t.lower()
        t = re.sub(r"(\d)\s*(?:º|°|deg\.?)\s*([fc])\b", r"\1 °\2", t)
        t = re.sub(r"(\d)([fc])\b", r"\1 °\2", t)
        t = re.sub(r"(?<=[a-z])[.,]{2,}", ". ", t)
        if _CONTRACTION_HINT.search(t):
            for rx, rep in _CONTRACTIONS_RE:
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
    def triage(self, text: str, procedure: str | None = None) -> TriageResult:
        if procedure is not None and procedure not in PROCEDURES:
            raise ValueError(f"unknown procedure {procedure!r}")
        if not text or not text.strip():
            return TriageResult("none", [])
        norm = self._norm(text)
        doc = self.nlp.make_doc(norm)
        with self._lock:
            raw = [(self.nlp.vocab.strings[m], s, e) for m, s, e in self.matcher(doc)]
            raw += [(self.nlp.vocab.strings[m], s, e) for m, s, e in self.phrases(doc)]
        return self._decide(doc, raw, procedure)

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

    @staticmethod
    def _find(toks: list[str], cues: list[tuple], lo: int, hi: int) -> list[tuple[int, int]]:
        out = []
        for i in range(lo, hi):
            for c in cues:
                n = len(c)
                if n and i + n <= hi and tuple(toks[i:i + n]) == c:
                    out.append((i, i + n))
        return out

    def _covered(self, toks, kind, lo, hi, spans):
        """spans of cue kind `kind` overlapping any of `spans`."""
        return self._find(toks, self.cues.get(kind, []), lo, hi)

    def _negated(self, toks, start, s0, strict: bool) -> bool:
        cues = self._find(toks, self.cues.get("negation_before", []), s0, start)
        if not cues:
            return False
        pseudo = self._find(toks, self.cues.get("pseudo_negation", []), s0, min(len(toks), start + 3))
        terms = set(t[0] for t in self.cues.get("negation_terminators", []) if len(t) == 1)
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
                        "like", "more", "seems", "looks"} for t in seg) or len(seg) > 3:
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
        for cs, ce in self._find(toks, self.cues.get("resolved_after", []), end, hi):
            prev = toks[cs - 1] if cs > 0 else ""
            if prev in {"not", "never", "no"} or (cs > 1 and toks[cs - 2] == "not"):
                continue
            return True
        for cs, ce in self._find(toks, self.cues.get("resolved_before", []), max(s0, start - 5), start):
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
        return bool(self._find(toks, self.cues.get("improving_after", []), end, hi))

    def _hypothetical(self, toks, start, s0) -> bool:
        cues = self._find(toks, self.cues.get("hypothetical_before", []), s0, start)
        if not cues:
            return False
        nots = self._find(toks, self.cues.get("hypothetical_not", []), s0, start)
        for cs, ce in cues:
            if any(ns <= cs < ne for ns, ne in nots):
                continue
            return True
        return False

    def _other_person(self, toks, start, end, s0, s1, has_question: bool) -> bool:
        ref = None
        for i in range(start - 1, -1, -1):
            t = toks[i]
            if t in self.self_words:
                return False
            if t in self.other_words:
                ref = i
                break
        if ref is None:
            return False
        if has_question:
            return True
        hi = min(s1 if ref >= s0 else len(toks), end + 4)
        if self._find(toks, self.cues.get("other_recent", []), ref, s1 if ref >= s0 else hi):
            return False  # a carer reporting something happening now
        return bool(self._find(toks, self.cues.get("other_past", []), ref, hi))

    # -- numbers --
    _NUM_RE = re.compile(r"^(\d{1,3}(?:\.\d{1,2})?)(?:ish)?$")
    _EXCL_UNITS = {"%", "percent", "lb", "lbs", "pounds", "kg", "mg", "mcg", "ml", "minutes",
                   "min", "hours", "hour", "years", "year", "days", "day", "weeks", "week",
                   "times", "out", "bpm", "am", "pm", "x", "seconds", "secs", "yrs", "oclock",
                   "o'clock", "miles", "steps", "feet", "ft", "inches", "inch", "dollars",
                   "units", "pills", "tablets", "mins", "hrs", "months"}

    def _numbers(self, toks: list[str], sents) -> list[_Hit]:
        hits: list[_Hit] = []
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
                m = re.match(r"^(\d{1,2})/10$", tok)
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
                        tp_dist is None or (gl_dist is not None and gl_dist < tp_dist)):
                    if nxt in self._EXCL_UNITS:
                        continue
                    if 40 <= v <= 900 and not nxt.startswith("mmol"):
                        if v >= float(self.gluc.get("urgent_mg_dl", 300)):
                            hits.append(_Hit("glucose_high", i, i + 1, numeric=True))
                        elif v >= float(self.gluc.get("routine_mg_dl", 180)):
                            hits.append(_Hit("glucose_raised", i, i + 1, numeric=True))
                    elif v < 40 and (decimal or v >= 10 or nxt.startswith("mmol")):
                        if v >= float(self.gluc.get("urgent_mmol", 16.7)):
                            hits.append(_Hit("glucose_high", i, i + 1, numeric=True))
                        elif v >= float(self.gluc.get("routine_mmol", 10.0)):
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
    def _decide(self, doc, raw, procedure: str | None) -> TriageResult:
        toks = [t.lower_ for t in doc]
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
        hits += self._numbers(toks, sents)

        kept: list[_Hit] = []
        for h in hits:
            rule = self.rules[h.rule]
            s0, s1 = sent_of.get(h.start, (0, len(toks)))
            if not rule.in_idioms and any(s < h.end and h.start < e for s, e in idioms):
                continue
            if rule.tier == "crisis":
                if self._negated(toks, h.start, s0, strict=True):
                    continue
                kept.append(h)
                continue
            if rule.needs:
                words = set(self.vocab.get(rule.needs, []))
                if not any(t in words for k, t in enumerate(toks[s0:s1]) if not (h.start <= s0 + k < h.end)):
                    continue
            if self._hypothetical(toks, h.start, s0):
                continue
            if self._negated(toks, h.start, s0, strict=False):
                continue
            if self._resolved(toks, h.start, h.end, s0, s1):
                continue
            if self._other_person(toks, h.start, h.end, s0, s1, has_question):
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
        if not found:
            return TriageResult("none", [])
        order = sorted(found.items(), key=lambda kv: -_RANK[kv[1][0]])
        top = order[0][1][0]
        return TriageResult(top, [r for r, _ in order])

    def explain(self, text: str, procedure: str | None = None) -> dict:
        """Debug helper: raw matches before filtering and the result."""
        doc = self.nlp.make_doc(self._norm(text))
        with self._lock:
            raw = [(self.nlp.vocab.strings[m], doc[s:e].text) for m, s, e in self.matcher(doc)]
            raw += [(self.nlp.vocab.strings[m], doc[s:e].text) for m, s, e in self.phrases(doc)]
        return {"normalised": doc.text, "matches": raw, "result": self.triage(text, procedure)}


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


def triage(text: str, procedure: str | None = None) -> TriageResult:
    """Triage one patient message. ``procedure`` is a procedure id or None (universal flags)."""
    return get_engine().triage(text, procedure)


__all__ = ["TIERS", "TriageResult", "TriageEngine", "triage", "tier_rank", "get_engine", "PROCEDURES"]
