"""`rasa data validate` and `rasa test` on the conversation stories."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RASA = str(Path(sys.executable).parent / "rasa")
sys.path.insert(0, str(ROOT / "tools"))

from train import model_path  # noqa: E402


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RASA, *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
                               "TF_CPP_MIN_LOG_LEVEL": "3", "RASA_TELEMETRY_ENABLED": "false",
                               "PYTHONPATH": str(ROOT)})


def test_rasa_data_validate() -> None:
    result = run("data", "validate", "--config", "bot/config.yml", "--domain", "bot/domain",
                 "--data", "data/nlu", "bot/stories", "bot/rules")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "story structure conflicts" not in (result.stdout + result.stderr).lower() or \
        "No story structure conflicts found" in result.stdout + result.stderr


def test_conversation_stories_predict_every_action(tmp_path: Path) -> None:
    result = run("test", "core", "--stories", "tests/stories", "--model", str(model_path()),
                 "--endpoints", "bot/endpoints.yml", "--fail-on-prediction-errors",
                 "--out", str(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    failed = (tmp_path / "failed_test_stories.yml").read_text()
    assert "None of the test stories failed" in failed, failed
