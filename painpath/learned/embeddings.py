"""WordLlama static token embeddings (256-d), read with `safetensors` and `tokenizers`.

`tools/fetch_embeddings.py` unpacks the two files from the WordLlama wheel into
`var/wordllama/` (or ``PAINPATH_EMBEDDINGS_DIR``). A sentence vector is the mean of
its token vectors, scaled to unit length, as WordLlama itself computes it.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

WHEEL = "wordllama==0.4.0.post1"
# file name -> (member of the wheel, SHA-256)
FILES = {
    "l2_supercat_256.safetensors": (
        "wordllama/weights/l2_supercat_256.safetensors",
        "64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5"),
    "l2_supercat_tokenizer_config.json": (
        "wordllama/tokenizers/l2_supercat_tokenizer_config.json",
        "93248f2a9ec36c7b35f700a033d5f36228aae48db61aee31007fa49062cdeb68"),
}
DIM = 256
_ROOT = Path(__file__).resolve().parents[2]


def embeddings_dir() -> Path:
    return Path(os.environ.get("PAINPATH_EMBEDDINGS_DIR") or _ROOT / "var" / "wordllama")


class MissingEmbeddings(RuntimeError):
    pass


class Embedder:
    """Text -> unit-length mean of its WordLlama token vectors."""

    def __init__(self, directory: Path | None = None):
        directory = directory or embeddings_dir()
        weights = directory / "l2_supercat_256.safetensors"
        config = directory / "l2_supercat_tokenizer_config.json"
        if not weights.exists() or not config.exists():
            raise MissingEmbeddings(
                f"WordLlama embeddings not found in {directory}: run `make install` "
                "(tools/fetch_embeddings.py)")
        self.matrix = np.ascontiguousarray(
            load_file(str(weights))["embedding.weight"].astype(np.float32))
        self.tokenizer = Tokenizer.from_file(str(config))
        self._special = {i for i in range(3)}  # <unk> <s> </s>

    def token_ids(self, text: str) -> list[int]:
        return [i for i in self.tokenizer.encode(text, add_special_tokens=False).ids
                if i not in self._special]

    def embed(self, text: str) -> np.ndarray:
        ids = self.token_ids(text)
        if not ids:
            return np.zeros(DIM, dtype=np.float32)
        vec = self.matrix[ids].mean(axis=0)
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec


_EMBEDDER: Embedder | None = None
_LOCK = threading.Lock()


def get_embedder() -> Embedder:
    global _EMBEDDER
    if _EMBEDDER is None:
        with _LOCK:
            if _EMBEDDER is None:
                _EMBEDDER = Embedder()
    return _EMBEDDER
