"""Put WordLlama's static word embeddings where the triage recall layer reads them.

WordLlama (MIT) ships 256-d token embeddings distilled from Llama 2 and their
tokenizer inside its wheel. Its Python package needs numpy>=2 and pydantic>=2,
which Rasa 3.6's pins forbid, so we never import it: pip downloads the wheel (no
dependencies), and the two data files are checked against their SHA-256 and
unpacked to var/wordllama/, where `painpath.learned.embeddings` loads them with the
`safetensors` and `tokenizers` packages. Idempotent: nothing happens when the files
are already there and intact.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from painpath.learned.embeddings import FILES, WHEEL, embeddings_dir  # noqa: E402


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def intact(target: Path) -> bool:
    return all((target / name).exists() and _sha256(target / name) == sha
               for name, (_, sha) in FILES.items())


def main() -> int:
    target = embeddings_dir()
    if intact(target):
        return 0
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", "-d", tmp, WHEEL], check=True)
        wheel = next(Path(tmp).glob("wordllama-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for name, (member, sha) in FILES.items():
                data = zf.read(member)
                if hashlib.sha256(data).hexdigest() != sha:
                    raise SystemExit(f"{member} in {wheel.name} does not match its SHA-256")
                (target / name).write_bytes(data)
    print(f"wrote WordLlama embeddings to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
