"""Train the Rasa model only when its inputs changed (cache by a hash of them).

Inputs: bot/config.yml, bot/domain/, bot/stories/, bot/rules/, data/nlu/ and the
custom component code in bot/painpath_rasa/. The model is models/painpath-<hash>.tar.gz.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ["bot/config.yml", "bot/domain", "bot/stories", "bot/rules", "data/nlu",
          "bot/painpath_rasa/redflag.py", "bot/painpath_rasa/keywords.py",
          "painpath/content/exercises.yaml"]


def inputs_hash() -> str:
    digest = hashlib.sha256()
    for rel in INPUTS:
        path = ROOT / rel
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts or not f.exists():
                continue
            digest.update(str(f.relative_to(ROOT)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def model_path() -> Path:
    return ROOT / "models" / f"painpath-{inputs_hash()}.tar.gz"


def main() -> int:
    target = model_path()
    if target.exists():
        print(f"model up to date: {target.relative_to(ROOT)}")
        return 0
    rasa = Path(sys.executable).parent / "rasa"
    start = time.monotonic()
    cmd = [str(rasa), "train", "--config", "bot/config.yml", "--domain", "bot/domain",
           "--data", "data/nlu", "bot/stories", "bot/rules", "--out", "models",
           "--fixed-model-name", target.name.removesuffix(".tar.gz")]
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode != 0:
        return result.returncode
    print(f"trained {target.relative_to(ROOT)} in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
