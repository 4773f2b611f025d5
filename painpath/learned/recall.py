"""The recall layer of triage: a linear model over WordLlama embeddings and sub-word n-grams.

The YAML lexicon (painpath/triage.py) is precise and reviewable but only knows the
words someone wrote into it. This layer gives, for any message, the probability of
each tier, learned from several thousand labelled messages by many independent
writers (data/triage/, tests/data/), hard negatives included. Features:

- the message's mean WordLlama vector (meaning beyond surface words);
- its sub-word tokens and token pairs, hashed (typos and inflections share pieces);
- its words and word pairs, hashed; and the procedure.

Training (tools/train_triage_model.py) fits a multinomial logistic regression and
chooses the thresholds on rounds the model never saw (leave one round out); both
are stored in ``recall_model.npz`` beside this file. Inference is numpy only.
"""
from __future__ import annotations

import functools
import json
import re
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from painpath.learned.embeddings import DIM, Embedder, get_embedder

CLASSES = ("none", "routine", "urgent", "crisis", "emergency")
N_TOKENS = 32000          # WordLlama's vocabulary (Llama 2)
N_HASHED = 1 << 17        # token pairs, words and word pairs share this hashed space
MODEL_PATH = Path(__file__).resolve().parent / "recall_model.npz"
_WORD = re.compile(r"[a-z0-9ñ]+")


@functools.lru_cache(maxsize=1 << 16)
def _hash(feature: str) -> int:
    return N_TOKENS + (zlib.crc32(feature.encode("utf-8")) & (N_HASHED - 1))


@dataclass(frozen=True)
class Features:
    dense: np.ndarray       # (DIM,) unit mean embedding
    columns: list[int]      # sparse binary features: token ids, then N_TOKENS + hashed ids


def featurize(embedder: Embedder, text: str, procedure: str | None) -> Features:
    """Features of an already normalised (lower-case, accent-folded) message."""
    ids = embedder.token_ids(text)
    if ids:
        dense = embedder.matrix[ids].mean(axis=0)
        norm = float(np.linalg.norm(dense))
        if norm:
            dense /= norm
    else:
        dense = np.zeros(DIM, dtype=np.float32)
    columns = set(ids)
    columns.update(N_TOKENS + (a * 1000003 + b) % N_HASHED for a, b in zip(ids, ids[1:]))
    words = _WORD.findall(text)
    columns.update(_hash(f"w:{w}") for w in words)
    columns.update(_hash(f"b:{a} {b}") for a, b in zip(words, words[1:]))
    if procedure:
        columns.add(_hash(f"p:{procedure}"))
    return Features(dense, sorted(columns))


class RecallModel:
    """Per-tier probabilities for a normalised message, and the thresholds to act on."""

    def __init__(self, path: Path = MODEL_PATH, embedder: Embedder | None = None):
        with np.load(path, allow_pickle=False) as data:
            self.w_dense = data["w_dense"]      # (DIM, C)
            self.w_sparse = np.ascontiguousarray(  # (N_TOKENS + N_HASHED, C)
                np.concatenate([data["w_tokens"], data["w_hashed"]]))
            self.bias = data["bias"]            # (C,)
            self.meta = json.loads(str(data["meta"]))
        self.dense_scale = float(self.meta["dense_scale"])
        self.thresholds: dict[str, float] = self.meta["thresholds"]
        self.embedder = embedder or get_embedder()

    def probabilities(self, text: str, procedure: str | None = None) -> dict[str, float]:
        f = featurize(self.embedder, text, procedure)
        logits = self.bias + self.dense_scale * (f.dense @ self.w_dense)
        if f.columns:
            logits = logits + self.w_sparse[f.columns].sum(axis=0)
        z = np.exp(logits - logits.max())
        p = z / z.sum()
        return {c: float(p[i]) for i, c in enumerate(CLASSES)}


_MODEL: RecallModel | None = None
_LOCK = threading.Lock()


def get_model() -> RecallModel:
    global _MODEL
    if _MODEL is None:
        with _LOCK:
            if _MODEL is None:
                _MODEL = RecallModel()
    return _MODEL
