"""Train the triage recall layer and choose its thresholds on rounds it never saw.

Data: every labelled round in data/triage/*.jsonl (one file per blind writer) and the
blind paraphrase rounds in tests/data/triage_paraphrases.jsonl (one round per id
prefix). The shared dev set and the held-out rounds in tests/data/rounds/ are never
trained on.

1. Leave one round out: for each round, fit on all the others and predict it.
2. Choose thresholds on those out-of-round predictions, combined with the lexicon
   exactly as `painpath.triage` combines them: fewest unguarded safety misses within
   the false-alarm and screen budgets (BUDGET).
3. Fit on every round and write painpath/learned/recall_model.npz with the
   thresholds, the out-of-round figures and a hash of the inputs.

    PYTHONPATH=. .venv/bin/python tools/train_triage_model.py [--check]

``--check`` exits 1 when the stored model was trained on other inputs (a test runs it).
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from scipy import sparse
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from painpath.learned.embeddings import get_embedder  # noqa: E402
from painpath.learned.recall import (  # noqa: E402
    CLASSES, MODEL_PATH, N_HASHED, N_TOKENS, featurize)
from painpath.triage import TriageEngine, combine_layers, tier_rank  # noqa: E402

PARAPHRASES = ROOT / "tests" / "data" / "triage_paraphrases.jsonl"
CORPUS_DIR = ROOT / "data" / "triage"
DENSE_SCALE = 4.0
C = 1.0
FEATURE_SOURCES = [ROOT / "painpath" / "learned" / "recall.py",
                   ROOT / "painpath" / "learned" / "embeddings.py"]
# the thresholds are chosen on the lexicon's verdicts combined with the model's
SOURCES = [ROOT / "tools" / "train_triage_model.py", ROOT / "painpath" / "triage.py",
           ROOT / "painpath" / "content" / "redflags.yaml"]
# the model may raise at most 1.5% of benign messages to urgent or above on top of the
# lexicon's own false alarms, and ask a screen of at most 9% (the bar is 10%)
BUDGET = {"false_alarms": 0.015, "screened_benign": 0.09}  # see choose_thresholds
LEXICON_ONLY = {"life_high": 2, "alert_high": 2, "emergency_low": 2, "crisis_low": 2,
                "alert_low": 2}
GRID_HIGH = [0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.01]
GRID_LOW = [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.01]
DEV = ROOT.parent / "shared" / "eval" / "dev" / "triage.jsonl"


def _round_of(row: dict, file: Path) -> str:
    if file != PARAPHRASES:
        return file.stem
    rid = row["id"]
    for prefix in ("r5a_", "r5b_", "r2_", "r3_", "r4_", "r6_", "es_", "nf_", "bf", "bt"):
        if rid.startswith(prefix):
            return prefix.rstrip("_")
    return "other"


def load_rows() -> list[dict]:
    rows = []
    for file in [PARAPHRASES, *sorted(CORPUS_DIR.glob("*.jsonl"))]:
        with open(file, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    if row.get("expected") in CLASSES and row.get("text"):
                        row["round"] = _round_of(row, file)
                        row["blind"] = file != PARAPHRASES  # the lexicon was never patched on it
                        rows.append(row)
    return rows


def _digest(files: list[Path], params: list) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    digest.update(json.dumps(params).encode())
    return digest.hexdigest()[:16]


def model_hash() -> str:
    """What the out-of-round predictions depend on: the data, the features, the fit."""
    return _digest([PARAPHRASES, *sorted(CORPUS_DIR.glob("*.jsonl")), *FEATURE_SOURCES],
                   [DENSE_SCALE, C])


def inputs_hash() -> str:
    """Everything the stored model and its thresholds depend on (the lexicon included)."""
    return _digest([*SOURCES, DEV], [model_hash(), BUDGET, GRID_HIGH, GRID_LOW])


def design_matrix(engine: TriageEngine, rows: list[dict]) -> sparse.csr_matrix:
    embedder = get_embedder()
    dense, indptr, indices = [], [0], []
    for row in rows:
        f = featurize(embedder, engine.normalise(row["text"]), row.get("procedure"))
        dense.append(f.dense * DENSE_SCALE)
        cols = np.asarray(f.columns, dtype=np.int64)
        indices.append(cols)
        indptr.append(indptr[-1] + len(cols))
    n = len(rows)
    onehot = sparse.csr_matrix((np.ones(indptr[-1], dtype=np.float32),
                                np.concatenate(indices) if indices else [], indptr),
                               shape=(n, N_TOKENS + N_HASHED))
    return sparse.hstack([sparse.csr_matrix(np.asarray(dense)), onehot]).tocsr()


def fit(x, y) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients (features x classes), intercepts); fitted on the columns in use."""
    used = np.unique(x.indices)
    model = LogisticRegression(C=C, max_iter=3000, multi_class="multinomial",
                               class_weight="balanced")
    model.fit(x[:, used], y)
    coef = np.zeros((x.shape[1], len(CLASSES)), dtype=np.float32)
    coef[used] = model.coef_.T
    return coef, model.intercept_.astype(np.float32)


def predict(weights: tuple[np.ndarray, np.ndarray], x) -> np.ndarray:
    """Softmax probabilities, computed as painpath.learned.recall computes them."""
    logits = np.asarray(x @ weights[0]) + weights[1]
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _held_out(x, y, idx: list[int]) -> np.ndarray:
    mask = np.ones(x.shape[0], bool)
    mask[idx] = False
    return predict(fit(x[mask], y[mask]), x[idx])


def score(rows, lex_results, probs, thresholds) -> dict:
    """The scorer's figures for the combined decision (../shared/tools/triage_score.py)."""
    unguarded = screened = fa = sb = benign = alarms = 0
    for row, lex, p in zip(rows, lex_results, probs):
        tier, _, screen = combine_layers(lex, dict(zip(CLASSES, p)), thresholds, row["text"])
        e = row["expected"]
        miss = (e in ("emergency", "crisis") and tier not in ("emergency", "crisis")) or \
            (e == "urgent" and tier_rank(tier) < tier_rank("urgent"))
        if e in ("emergency", "crisis", "urgent"):
            alarms += 1
            if miss:
                if screen:
                    screened += 1
                else:
                    unguarded += 1
        else:
            benign += 1
            fa += tier_rank(tier) >= tier_rank("urgent")
            sb += bool(screen)
    return {"red_flags": alarms, "unguarded": unguarded, "screened": screened,
            "benign": benign, "false_alarms": fa, "screened_benign": sb}


def _over(s: dict, budget: str, base: int = 0) -> float:
    return max(0.0, s[budget] - base - BUDGET[budget] * s["benign"])


def choose_thresholds(rows, lex_results, probs, dev) -> tuple[dict, dict]:
    """Stage 1 (when to raise a tier): fewest misses while adding at most
    BUDGET["false_alarms"] of false alarms to what the lexicon alone raises; stage 2
    (when to ask a screen): fewest unguarded misses with at most
    BUDGET["screened_benign"] of benign messages screened. The shared dev set, scored
    by the final model, must meet its bar: 0 safety misses, at most 5% false alarms and
    10% of benign messages screened."""
    def dev_ok(th: dict) -> bool:  # the shared dev set's bar (../shared/eval/README.md)
        s = score(*dev, th)
        return s["unguarded"] + s["screened"] == 0 and \
            s["false_alarms"] <= 0.05 * s["benign"] and s["screened_benign"] <= 0.10 * s["benign"]

    lexicon_fa = score(rows, lex_results, probs, LEXICON_ONLY)["false_alarms"]
    best = None
    for life, alert in itertools.product(GRID_HIGH, GRID_HIGH):
        th = {"life_high": life, "alert_high": alert,
              "emergency_low": 1.01, "crisis_low": 1.01, "alert_low": 1.01}
        s = score(rows, lex_results, probs, th)
        key = (_over(s, "false_alarms", lexicon_fa), s["unguarded"] + s["screened"],
               s["false_alarms"])
        if (best is None or key < best[0]) and dev_ok(th):
            best = (key, th)
    th = dict(best[1])
    best = None
    for e_lo, c_lo, u_lo in itertools.product(GRID_LOW, repeat=3):
        cand = {**th, "emergency_low": e_lo, "crisis_low": c_lo, "alert_low": u_lo}
        s = score(rows, lex_results, probs, cand)
        key = (_over(s, "screened_benign"), s["unguarded"], s["screened_benign"])
        if (best is None or key < best[0]) and dev_ok(cand):
            best = (key, cand, s)
    return best[1], best[2]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    digest = inputs_hash()
    if args.check:
        with np.load(MODEL_PATH, allow_pickle=False) as data:
            stored = json.loads(str(data["meta"]))["inputs_hash"]
        if stored != digest:
            print(f"recall model is stale ({stored} != {digest}): run {Path(__file__).name}")
            return 1
        return 0

    engine = TriageEngine(learned=False)
    rows = load_rows()
    print(f"{len(rows)} labelled messages in {len(set(r['round'] for r in rows))} rounds:",
          dict(Counter(r["expected"] for r in rows)))
    x = design_matrix(engine, rows)
    y = np.array([CLASSES.index(r["expected"]) for r in rows])
    lex = [engine.triage(r["text"], r.get("procedure")) for r in rows]
    by_round = defaultdict(list)
    for i, r in enumerate(rows):
        by_round[r["round"]].append(i)
    cache = ROOT / "var" / f"triage-oof-{model_hash()}.npy"  # the slow part, kept per model
    if cache.exists():
        oof = np.load(cache)
    else:
        oof = np.zeros((len(rows), len(CLASSES)))
        folds = sorted(by_round.values())
        for idx, probs in zip(folds, Parallel(n_jobs=2)(
                delayed(_held_out)(x, y, idx) for idx in folds)):
            oof[idx] = probs
        cache.parent.mkdir(exist_ok=True)
        np.save(cache, oof)
    weights = fit(x, y)  # the final model, on every round
    dev_rows = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    dev = (dev_rows, [engine.triage(r["text"], r.get("procedure")) for r in dev_rows],
           predict(weights, design_matrix(engine, dev_rows)))
    # thresholds are chosen on the rounds the lexicon was never patched on: on the old
    # paraphrase rounds it is perfect by construction, which would flatter it
    blind = [i for i, r in enumerate(rows) if r["blind"]]
    thresholds, overall = choose_thresholds([rows[i] for i in blind], [lex[i] for i in blind],
                                            oof[blind], dev)
    report = {"overall": overall, "rounds": {}}
    for name, idx in sorted(by_round.items()):
        sub = [rows[i] for i in idx]
        report["rounds"][name] = {
            "layered": score(sub, [lex[i] for i in idx], oof[idx], thresholds),
            "lexicon": score(sub, [lex[i] for i in idx], oof[idx], LEXICON_ONLY)}
    print("thresholds:", thresholds)
    print("leave-one-round-out, blind rounds:", overall)
    for name, r in report["rounds"].items():
        print(f"  {name:6s} layered {r['layered']}\n         lexicon {r['lexicon']}")
    coef, bias = weights  # (features, classes), (classes,)
    meta = {"inputs_hash": digest, "dense_scale": DENSE_SCALE, "C": C,
            "thresholds": thresholds, "leave_one_round_out": report,
            "classes": list(CLASSES), "rows": len(rows)}
    np.savez_compressed(
        MODEL_PATH, w_dense=coef[:256],
        w_tokens=coef[256:256 + N_TOKENS], w_hashed=coef[256 + N_TOKENS:],
        bias=bias, meta=np.array(json.dumps(meta)))
    print(f"wrote {MODEL_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
