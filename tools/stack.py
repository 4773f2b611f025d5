"""Start and stop PainPath's processes: Rasa, the action server, the web app.

Used by `make run` (tools/run_stack.py), the end-to-end tests and the benchmarks,
so all three run the same commands.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from painpath.rasa_client import api_headers
from painpath.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# What bot/endpoints.yml sends the action server; Rasa fills in the variable
# (bot/painpath_rasa/serve.py sets it), so the token is in no file.
ACTION_AUTH = "  headers:\n    Authorization: Bearer ${ACTION_SERVER_TOKEN}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def latest_model() -> Path:
    given = os.environ.get("PAINPATH_RASA_MODEL")  # serve this model instead (benches, tests)
    if given:
        return Path(given).resolve()
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
    # Production-shaped runs (tests/integration/test_scale_out.py, bench/load.py): Rasa's
    # tracker store on PostgreSQL (a SQLAlchemy URL), its lock store on Redis
    # ("redis://host:port/db"), and more Rasa + action-server pairs: `replicas` holds
    # (rasa_port, actions_port) of replica 2, 3, … (processes "rasa2", "actions2", …);
    # each Rasa server calls its own action server. With `production_endpoints` every
    # Rasa server reads bot/endpoints.production.yml, filled in from its environment.
    tracker_store_url: str | None = None
    lock_store_url: str | None = None
    lock_store_type: str = "bot.painpath_rasa.lock_store.AtomicRedisLockStore"
    tracker_store_type: str = "bot.painpath_rasa.tracker_store.ResilientSQLTrackerStore"
    lock_key_prefix: str = field(default_factory=lambda: "pp" + secrets.token_hex(6))
    replicas: list[tuple[int, int]] = field(default_factory=list)
    production_endpoints: bool = False
    cmds: dict[str, list[str]] = field(default_factory=dict)
    proc_env: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def rasa_urls(self) -> list[str]:
        """Every Rasa server of the stack, replica 1 first."""
        return [self.rasa_url] + [f"http://127.0.0.1:{r}" for r, _ in self.replicas]

    def _pairs(self) -> list[tuple[str, str, int, int]]:
        """(rasa name, actions name, rasa port, actions port) of every replica."""
        pairs = [("rasa", "actions", self.rasa_port, self.actions_port)]
        for i, (rasa_port, actions_port) in enumerate(self.replicas, start=2):
            pairs.append((f"rasa{i}", f"actions{i}", rasa_port, actions_port))
        return pairs

    def production_env(self, actions_port: int) -> dict[str, str]:
        """The variables bot/endpoints.production.yml reads, for one Rasa server."""
        from urllib.parse import urlsplit

        if not (self.tracker_store_url and self.lock_store_url):
            raise ValueError("production endpoints need tracker_store_url and lock_store_url")
        db, redis = urlsplit(self.tracker_store_url), urlsplit(self.lock_store_url)
        return {"ACTION_ENDPOINT_URL": f"http://127.0.0.1:{actions_port}/webhook",
                "TRACKER_DB_HOST": db.hostname or "127.0.0.1",
                "TRACKER_DB_PORT": str(db.port or 5432),
                "TRACKER_DB_NAME": db.path.lstrip("/"),
                "TRACKER_DB_USER": db.username or "",
                "TRACKER_DB_PASSWORD": db.password or "",
                "REDIS_HOST": redis.hostname or "127.0.0.1",
                "REDIS_PORT": str(redis.port or 6379),
                "REDIS_PASSWORD": redis.password or "",
                "REDIS_LOCK_DB": redis.path.lstrip("/") or "0",
                "REDIS_LOCK_PREFIX": self.lock_key_prefix}

    def _scaled_endpoints(self, actions_port: int, name: str) -> Path:
        """endpoints.yml for one Rasa server: PostgreSQL tracker store, Redis lock store."""
        if self.production_endpoints:
            return ROOT / "bot" / "endpoints.production.yml"
        from urllib.parse import urlsplit

        text = f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n' + ACTION_AUTH
        if self.tracker_store_url:
            db = urlsplit(self.tracker_store_url)
            text += (f"tracker_store:\n  type: {self.tracker_store_type}\n  dialect: postgresql\n"
                     f"  url: {db.hostname or '127.0.0.1'}\n  port: {db.port or 5432}\n"
                     f"  db: {db.path.lstrip('/')}\n  username: {db.username or 'postgres'}\n"
                     + (f"  password: {db.password}\n" if db.password else ""))
        else:
            text += (f"tracker_store:\n  type: SQL\n  dialect: sqlite\n"
                     f"  db: {self.tracker_db or str(self.log_dir / 'rasa_tracker.db')}\n")
        if self.lock_store_url:
            redis = urlsplit(self.lock_store_url)
            text += (f"lock_store:\n  type: {self.lock_store_type}\n"
                     f"  url: {redis.hostname or '127.0.0.1'}\n  port: {redis.port or 6379}\n"
                     f"  db: {redis.path.lstrip('/') or '0'}\n"
                     f"  key_prefix: {self.lock_key_prefix}\n"
                     + (f"  password: {redis.password}\n" if redis.password else ""))
        path = self.log_dir / name
        path.write_text(text)
        return path

    def _endpoints(self) -> Path:
        if self.tracker_store_url or self.lock_store_url or self.production_endpoints:
            return self._scaled_endpoints(self.actions_port, "endpoints.yml")
        tracker = self.tracker_db or str(self.log_dir / "rasa_tracker.db")
        # WAL is a property of the SQLite file: Rasa's tracker store then writes
        # without blocking readers (bench/escalation.py found it a bottleneck)
        import sqlite3

        with sqlite3.connect(tracker) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        path = self.log_dir / "endpoints.yml"
        path.write_text(
            f'action_endpoint:\n  url: "http://127.0.0.1:{self.actions_port}/webhook"\n'
            + ACTION_AUTH +
            f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {tracker}\n")
        return path

    def _spawn(self, name: str, cmd: list[str], extra_env: dict[str, str] | None = None) -> None:
        self.cmds[name] = cmd
        if extra_env is not None:
            self.proc_env[name] = extra_env
        log = open(self.log_dir / f"{name}.log", "ab")
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT),
               "RASA_URL": self.rasa_url, "WEB_BASE_URL": self.env.get("WEB_BASE_URL", self.web_url),
               "TF_CPP_MIN_LOG_LEVEL": "3", "RASA_TELEMETRY_ENABLED": "false",
               # where a patient deletion finds Rasa's tracker store (painpath.privacy)
               "RASA_ENDPOINTS": str(self.log_dir / "endpoints.yml"),
               # Rasa and rasa-sdk log every message's text at DEBUG: INFO unless this
               # stack is told otherwise (a LOG_LEVEL in the shell is not enough)
               "LOG_LEVEL": self.env.get("LOG_LEVEL", "INFO"),
               **self.proc_env.get(name, {})}
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def settings(self) -> Settings:
        """The settings this stack's processes build: its own secret key and
        ACTION_SERVER_TOKEN where given, not this process's."""
        names = ("PAINPATH_SECRET_KEY", "ACTION_SERVER_TOKEN")
        saved = {k: os.environ.get(k) for k in names}
        try:
            for key in names:
                if self.env.get(key):
                    os.environ[key] = self.env[key]
            return load_settings()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def action_server_token(self) -> str:
        """The bearer token this stack's action servers demand."""
        return self.settings().action_server_token

    def api_headers(self) -> dict[str, str]:
        """An Authorization header (an admin JWT, valid for a minute) for this stack's
        Rasa HTTP API: the API takes no token in the URL."""
        return api_headers(settings=self.settings())

    @staticmethod
    def actions_cmd(port: int) -> list[str]:
        """The action server: rasa-sdk behind a token, on loopback (actions/server.py)."""
        return [str(BIN / "python"), "-m", "actions.server", "--actions", "actions",
                "--port", str(port)]

    @staticmethod
    def rasa_cmd(model: Path, endpoints: Path, port: int) -> list[str]:
        """A Rasa server; bot/painpath_rasa/serve.py adds the JWT secret inside the
        process, so no secret is on this command line."""
        return [str(BIN / "python"), "-m", "bot.painpath_rasa.serve", "run", "--enable-api",
                "-m", str(model), "--endpoints", str(endpoints),
                "--credentials", "bot/credentials.yml", "--port", str(port), "-i", "127.0.0.1"]

    def start(self, timeout: float = 180.0) -> "Stack":
        model = latest_model()
        self.settings()  # creates var/secret_key (if used) before three processes race for it
        # Rasa's HTTP API (trigger_intent, trackers) wants a JWT and the action server
        # its token; both come from the secret key every process shares (no setup).
        self._spawn("actions", self.actions_cmd(self.actions_port))
        if self.production_endpoints:
            self.proc_env["rasa"] = self.production_env(self.actions_port)
        self._spawn("rasa", self.rasa_cmd(model, self._endpoints(), self.rasa_port))
        for rasa_name, actions_name, rasa_port, actions_port in self._pairs()[1:]:
            self._spawn(actions_name, self.actions_cmd(actions_port))
            endpoints = self._scaled_endpoints(actions_port, f"endpoints-{rasa_name}.yml")
            self._spawn(rasa_name, self.rasa_cmd(model, endpoints, rasa_port),
                        self.production_env(actions_port) if self.production_endpoints else None)
        web_cmd = [str(BIN / "uvicorn"), "web.app:create_app", "--factory",
                   "--host", "127.0.0.1", "--port", str(self.web_port), "--no-access-log"]
        self._spawn("web", web_cmd)
        if self.scheduler:
            self._spawn("scheduler", [str(BIN / "painpath"), "scheduler"])
        self.wait_ready(timeout)
        return self

    def health_urls(self) -> dict[str, str]:
        """Process name → the URL that answers 200 once it serves (the scheduler has none)."""
        checks = {"web": f"{self.web_url}/healthz"}
        for rasa_name, actions_name, rasa_port, actions_port in self._pairs():
            checks[actions_name] = f"http://127.0.0.1:{actions_port}/health"
            checks[rasa_name] = f"http://127.0.0.1:{rasa_port}/status"  # with api_headers()
        return checks

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to process `name` (and its group) and wait for it to exit."""
        proc = self.procs[name]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def respawn(self, name: str, timeout: float = 180.0) -> None:
        """Start process `name` again with the same command and environment."""
        if self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is still running")
        self._spawn(name, self.cmds[name])
        if name in self.health_urls():
            self.wait_ready(timeout, names=[name])

    def wait_ready(self, timeout: float, names: list[str] | None = None) -> None:
        checks = {k: v for k, v in self.health_urls().items() if names is None or k in names}
        deadline = time.monotonic() + timeout
        pending = dict(checks)
        while pending:
            for name in list(pending):
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}); log:\n{self.tail(name)}")
                headers = self.api_headers() if name.startswith("rasa") else {}
                try:
                    ok = httpx.get(pending[name], headers=headers, timeout=2).status_code == 200
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
