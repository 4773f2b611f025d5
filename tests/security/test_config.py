"""Silent defaults must not break production (security item 5).

With Twilio configured but PUBLIC_BASE_URL or WEB_BASE_URL unset, every real webhook
would fail its signature (403: patient replies and red flags dropped) and status
callbacks would go to Rasa's port. Every process refuses to start instead, with a
message that names the variable, and a base URL to another machine must be https.
`make run` with no Twilio (the console gateway) keeps its loopback defaults.

The entry points are started for real, in subprocesses, as `make run`, systemd or a
container would start them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from painpath.settings import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TWILIO = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t" * 32,
          "TWILIO_FROM_NUMBER": "+14155550100"}
URL_VARS = ("PUBLIC_BASE_URL", "WEB_BASE_URL")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in (*TWILIO, *URL_VARS, "TWILIO_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PAINPATH_SECRET_KEY", "config-test")
    return monkeypatch


def twilio_on(env: pytest.MonkeyPatch) -> None:
    for key, value in TWILIO.items():
        env.setenv(key, value)


@pytest.mark.parametrize("missing", URL_VARS)
def test_twilio_without_a_base_url_is_refused_naming_it(
        env: pytest.MonkeyPatch, missing: str) -> None:
    twilio_on(env)
    for var in URL_VARS:
        if var != missing:
            env.setenv(var, "https://painpath.example-clinic.org")
    with pytest.raises(ConfigError, match=missing):
        load_settings()


@pytest.mark.parametrize("var", URL_VARS)
@pytest.mark.parametrize("value", ["http://painpath.example-clinic.org",
                                   "http://10.0.0.5:8000", "painpath.example-clinic.org",
                                   "ftp://painpath.example-clinic.org"])
def test_a_base_url_to_another_machine_must_be_https(
        env: pytest.MonkeyPatch, var: str, value: str) -> None:
    env.setenv(var, value)
    with pytest.raises(ConfigError, match=var):
        load_settings()


def test_https_or_loopback_base_urls_are_accepted(env: pytest.MonkeyPatch) -> None:
    twilio_on(env)
    env.setenv("PUBLIC_BASE_URL", "https://sms.example-clinic.org/")
    env.setenv("WEB_BASE_URL", "http://127.0.0.1:8000")
    settings = load_settings()
    assert settings.public_base_url == "https://sms.example-clinic.org"
    assert settings.web_base_url == "http://127.0.0.1:8000"
    env.setenv("PUBLIC_BASE_URL", "http://localhost:5005")
    env.setenv("WEB_BASE_URL", "http://[::1]:8000")
    assert load_settings().public_base_url == "http://localhost:5005"


def test_make_run_without_twilio_keeps_the_loopback_defaults(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()  # tools/run_stack.py sets neither URL
    assert not settings.twilio_configured
    assert settings.public_base_url == "http://127.0.0.1:5005"
    assert settings.web_base_url == "http://127.0.0.1:8000"


# ------------------------------------------------------------- real entry points


def misconfigured_env(tmp_path: Path, missing: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in (*URL_VARS, "TWILIO_API_BASE", "PAINPATH_SCHEDULER")}
    env.update(TWILIO, DATABASE_URL=f"sqlite:///{tmp_path / 'pp.db'}",
               PAINPATH_SECRET_KEY="config-test", PYTHONPATH=str(ROOT),
               TF_CPP_MIN_LOG_LEVEL="3", RASA_TELEMETRY_ENABLED="false")
    for var in URL_VARS:
        if var != missing:
            env[var] = "https://painpath.example-clinic.org"
    return env


def entry_points(tmp_path: Path) -> dict[str, list[str]]:
    from stack import free_port, latest_model  # tools/stack.py

    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text("tracker_store:\n  type: SQL\n  dialect: sqlite\n"
                         f"  db: {tmp_path / 'tracker.db'}\n")
    return {
        "web app": [str(BIN / "uvicorn"), "web.app:create_app", "--factory",
                    "--host", "127.0.0.1", "--port", str(free_port())],
        "scheduler": [str(BIN / "painpath"), "scheduler"],
        "dispatcher": [str(BIN / "painpath"), "dispatcher"],
        "rasa (twilio channel)": [str(BIN / "rasa"), "run", "-m", str(latest_model()),
                                  "--endpoints", str(endpoints),
                                  "--credentials", "bot/credentials.yml",
                                  "--port", str(free_port()), "-i", "127.0.0.1"],
        "action server": [str(BIN / "rasa"), "run", "actions", "--actions", "actions",
                          "--port", str(free_port())],
    }


@pytest.mark.stack  # real Rasa, action server and web processes: the SQLite pass only
@pytest.mark.parametrize("missing", URL_VARS)
def test_every_process_refuses_to_start_and_names_the_variable(
        tmp_path: Path, missing: str) -> None:
    env = misconfigured_env(tmp_path, missing)
    procs = {name: subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
             for name, cmd in entry_points(tmp_path).items()}
    failures = []
    try:
        for name, proc in procs.items():
            try:
                _, stderr = proc.communicate(timeout=240)
            except subprocess.TimeoutExpired:
                failures.append(f"{name}: still running with {missing} unset")
                continue
            if proc.returncode == 0 or missing not in stderr:
                failures.append(f"{name}: exit {proc.returncode}, stderr tail "
                                f"{stderr[-600:]!r}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
    assert not failures, "\n".join(failures)
