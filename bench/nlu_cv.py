"""Intent classification quality: `rasa test nlu` 5-fold cross-validation on
data/nlu with bot/config.yml. Prints intent F1 per intent and writes
bench/results/nlu_cv.json.

    PYTHONPATH=. .venv/bin/python bench/nlu_cv.py [--folds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="nlu-cv-"))
    rasa = str(Path(sys.executable).parent / "rasa")
    started = time.monotonic()
    subprocess.run([rasa, "test", "nlu", "--config", "bot/config.yml", "--nlu", "data/nlu",
                    "--cross-validation", "--folds", str(args.folds), "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
                        "RASA_TELEMETRY_ENABLED": "false"})
    report = json.loads((out / "intent_report.json").read_text())
    intents = {name: row for name, row in report.items()
               if isinstance(row, dict) and "f1-score" in row and name not in (
                   "macro avg", "weighted avg", "micro avg")}
    print(f"{'intent':24} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}")
    for name, row in sorted(intents.items()):
        print(f"{name:24} {row['precision']:9.3f} {row['recall']:7.3f} {row['f1-score']:6.3f} "
              f"{row['support']:8d}")
    summary = {k: report[k] for k in ("macro avg", "weighted avg") if k in report}
    for key, row in summary.items():
        print(f"{key:24} {row['precision']:9.3f} {row['recall']:7.3f} {row['f1-score']:6.3f}")
    if "accuracy" in report:
        print(f"accuracy {report['accuracy']:.3f}")
    errors_path = out / "intent_errors.json"
    errors = json.loads(errors_path.read_text()) if errors_path.exists() else []
    for e in errors[:40]:
        print(f"  miss: {e['text']!r} is {e['intent']}, predicted {e['intent_prediction']['name']}")
    result = {"folds": args.folds, "seconds": round(time.monotonic() - started, 1),
              "intents": {k: {"precision": v["precision"], "recall": v["recall"],
                              "f1": v["f1-score"], "support": v["support"]}
                          for k, v in intents.items()},
              "summary": summary, "accuracy": report.get("accuracy"),
              "errors": [{"text": e["text"], "intent": e["intent"],
                          "predicted": e["intent_prediction"]["name"]} for e in errors]}
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "nlu_cv.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
