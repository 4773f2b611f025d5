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


def _hash(feature: str) -> int:
    return zlib.crc32(feature.encode("utf-8")) & (N_HASHED - 1)


@dataclass(frozen=True)
class Features:
    dense: np.ndarray       # (DIM,) unit mean embedding
    tokens: np.ndarray      # unique token ids, < N_TOKENS
    hashed: np.ndarray      # unique hashed ids, < N_HASHED


def featurize(embedder: Embedder, text: str, procedure: str | None) -> Features:
    """Features of an already normalised (lower-case, accent-folded) message."""
    ids = embedder.token_ids(text)
    if ids:
        arr = np.asarray(ids, dtype=np.int64)
        dense = embedder.matrix[arr].mean(axis=0)
        norm = float(np.linalg.norm(dense))
        dense = dense / norm if norm else dense
    else:
        arr = np.zeros(0, dtype=np.int64)
        dense = np.zeros(DIM, dtype=np.float32)
    pairs = (arr[:-1] * 1000003 + arr[1:]) % N_HASHED if len(arr) > 1 else arr[:0]
    words = _WORD.findall(text)
    named = [f"w:{w}" for w in words] + [f"b:{a} {b}" for a, b in zip(words, words[1:])]
    if procedure:
        named.append(f"p:{procedure}")
    hashed = np.unique(np.concatenate([pairs, np.fromiter(
        (_hash(f) for f in named), dtype=np.int64, count=len(named))]))
    return Features(dense.astype(np.float32), np.unique(arr), hashed)


class RecallModel:
    """Per-tier probabilities for a normalised message, and the thresholds to act on."""

    def __init__(self, path: Path = MODEL_PATH, embedder: Embedder | None = None):
        with np.load(path, allow_pickle=False) as data:
            self.w_dense = data["w_dense"]      # (DIM, C)
            self.w_tokens = data["w_tokens"]    # (N_TOKENS, C)
            self.w_hashed = data["w_hashed"]    # (N_HASHED, C)
            self.bias = data["bias"]            # (C,)
            self.meta = json.loads(str(data["meta"]))
        self.dense_scale = float(self.meta["dense_scale"])
        self.thresholds: dict[str, float] = self.meta["thresholds"]
        self.embedder = embedder or get_embedder()

    def probabilities(self, text: str, procedure: str | None = None) -> dict[str, float]:
        f = featurize(self.embedder, text, procedure)
        logits = self.bias + self.dense_scale * (f.dense @ self.w_dense)
        if len(f.tokens):
            logits = logits + self.w_tokens[f.tokens].sum(axis=0)
        if len(f.hashed):
            logits = logits + self.w_hashed[f.hashed].sum(axis=0)
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
