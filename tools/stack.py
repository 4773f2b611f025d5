"""Start and stop PainPath's processes: Rasa, the action server, the web app.

Used by `make run` (tools/run_stack.py), the end-to-end tests and the benchmarks,
so all three run the same commands.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def latest_model() -> Path:
    sys.path.insert(0, str(ROOT / "tools"))
    from train import model_path  # type: ignore[import-not-found]

    path = model_path()
    if not path.exists():
        raise FileNotFoundError(f"no trained model {path}; run `make train`")
    return path


@dataclass
class Stack:
    """The three processes on the given ports, sharing one environment."""

    env: dict[str, str]
    rasa_port: int = 5005
    actions_port: int = 5055
    web_port: int = 8000
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="painpath-logs-")))
    tracker_db: str | None = None
    scheduler: bool = False
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)  # type: ignore[type-arg]

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _endpoints(self) -> Path:
        tracker = self.tracker_db or str(self.log_dir / "rasa_tracker.db")
        # WAL is a property of the SQLite file: Rasa's tracker store then writes
        # without blocking readers (bench/escalation.py found it a bottleneck)
        import sqlite3

        with sqlite3.connect(tracker) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        path = self.log_dir / "endpoints.yml"
        path.write_text(
            f'action_endpoint:\n  url: "http://127.0.0.1:{self.actions_port}/webhook"\n'
            f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {tracker}\n")
        return path

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT),
               "RASA_URL": self.rasa_url, "WEB_BASE_URL": self.env.get("WEB_BASE_URL", self.web_url),
               "TF_CPP_MIN_LOG_LEVEL": "3", "RASA_TELEMETRY_ENABLED": "false",
               # where a patient deletion finds Rasa's tracker store (painpath.privacy)
               "RASA_ENDPOINTS": str(self.log_dir / "endpoints.yml")}
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, timeout: float = 180.0) -> "Stack":
        model = latest_model()
        self._spawn("actions", [str(BIN / "rasa"), "run", "actions", "--actions", "actions",
                                "--port", str(self.actions_port)])
        self._spawn("rasa", [str(BIN / "rasa"), "run", "--enable-api", "-m", str(model),
                             "--endpoints", str(self._endpoints()),
                             "--credentials", "bot/credentials.yml",
                             "--port", str(self.rasa_port), "-i", "127.0.0.1"])
        web_cmd = [str(BIN / "uvicorn"), "web.app:create_app", "--factory",
                   "--host", "127.0.0.1", "--port", str(self.web_port), "--no-access-log"]
        self._spawn("web", web_cmd)
        if self.scheduler:
            self._spawn("scheduler", [str(BIN / "painpath"), "scheduler"])
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        checks = {"actions": f"http://127.0.0.1:{self.actions_port}/health",
                  "web": f"{self.web_url}/healthz", "rasa": f"{self.rasa_url}/status"}
        deadline = time.monotonic() + timeout
        pending = dict(checks)
        while pending:
            for name in list(pending):
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}); log:\n{self.tail(name)}")
                try:
                    ok = httpx.get(pending[name], timeout=2).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    pending.pop(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout:.0f}s: {sorted(pending)}")
            if pending:
                time.sleep(0.5)

    def tail(self, name: str, lines: int = 60) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
