"""Login throttling without lockouts, shared through Redis (item 9), and HSTS (item 10).

The throttle: failed sign-ins from one client for one username make *that client*
wait, longer after each failure (2 s, 4 s, 8 s … capped), before its next attempt
is even checked; a nurse signing in with the right password from another client is
never blocked. With Redis configured every web process shares the counts. Tested in
memory and against the real Redis on 127.0.0.1:6379 (a unique key prefix per test).
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from painpath.settings import Settings, load_settings
from tests.unit.test_dashboard import PASSWORD, add_clinician, csrf_of
from web.app import create_app
from web.throttle import LoginThrottle, MemoryCounts, RedisCounts, throttle_for

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("PAINPATH_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
ATTACKER = "203.0.113.7"
NURSE_PC = "198.51.100.20"


def redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not redis_up(), reason=f"no Redis at {REDIS_URL}")


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"pptest:{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def store(request: pytest.FixtureRequest, clock: Clock) -> Any:
    if request.param == "memory":
        return MemoryCounts(clock=clock)
    return RedisCounts(redis.Redis.from_url(REDIS_URL), request.getfixturevalue("redis_prefix"))


def throttle_of(app: Any) -> LoginThrottle:
    """The login route's throttle (a closure cell of the route function)."""
    for route in app.router.routes:
        if getattr(route, "path", "") == "/login" and "POST" in getattr(route, "methods", ()):
            for cell in route.endpoint.__closure__ or ():
                if isinstance(cell.cell_contents, LoginThrottle):
                    return cell.cell_contents
    raise AssertionError("no login throttle found")


def try_login(app: Any, ip: str, username: str, password: str) -> httpx.Response:
    with TestClient(app, base_url="http://testserver", client=(ip, 40000)) as client:
        page = client.get("/login")
        return client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": csrf_of(page.text), "next": "/queue"},
                           follow_redirects=False)


@pytest.fixture
def app(database_url: str, clinic: str, store: Any, clock: Clock) -> Any:
    add_clinician("test", "nora")
    app = create_app(load_settings())
    throttle = throttle_of(app)
    throttle.store, throttle.clock = store, clock
    throttle.fallback.clock = clock
    return app


# ------------------------------------------------------------------ the throttle


def test_a_guessed_nurse_still_signs_in_from_her_own_computer(app: Any) -> None:
    throttle = throttle_of(app)
    for i in range(throttle.limit + 5):
        code = try_login(app, ATTACKER, "nora", f"guess-{i}").status_code
        assert code in (401, 429)
    assert try_login(app, ATTACKER, "nora", PASSWORD).status_code == 429  # the guesser waits
    assert try_login(app, NURSE_PC, "nora", PASSWORD).status_code == 303  # nora does not


def test_the_wait_grows_with_each_failure_and_ends(app: Any, clock: Clock) -> None:
    throttle = throttle_of(app)
    for _ in range(throttle.limit):
        assert try_login(app, ATTACKER, "nora", "wrong").status_code == 401
    waits = []
    for _ in range(4):
        refused = try_login(app, ATTACKER, "nora", "wrong")
        assert refused.status_code == 429
        assert "Please wait" in refused.text
        waits.append(int(refused.headers["retry-after"]))
        clock.now += waits[-1]  # waiting is what ends a wait
        assert try_login(app, ATTACKER, "nora", "wrong").status_code == 401  # checked again
    assert waits == [2, 4, 8, 16]
    clock.now += throttle.delay_after(throttle.limit + 4, throttle.limit)
    assert try_login(app, ATTACKER, "nora", PASSWORD).status_code == 303


def test_the_wait_is_capped(clock: Clock) -> None:
    throttle = LoginThrottle(limit=3, cap=300, clock=clock, store=MemoryCounts(clock=clock))
    for _ in range(60):
        throttle.failed("nora", ATTACKER)
    assert throttle.wait_seconds("nora", ATTACKER) == 300


def test_refused_attempts_are_not_checked_and_not_counted(
        app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import web.dashboard as dashboard

    throttle = throttle_of(app)
    hashed: list[int] = []
    real = dashboard.verify_password
    monkeypatch.setattr(dashboard, "verify_password", lambda h, p: hashed.append(1) or real(h, p))
    for _ in range(throttle.limit):
        try_login(app, ATTACKER, "nora", "wrong")
    first = throttle.wait_seconds("nora", ATTACKER)
    for _ in range(5):
        assert try_login(app, ATTACKER, "nora", "wrong").status_code == 429
    assert len(hashed) == throttle.limit  # no password hashed while waiting
    assert throttle.wait_seconds("nora", ATTACKER) == first  # and the wait did not grow


def test_spraying_many_usernames_from_one_client_is_slowed(app: Any) -> None:
    throttle = throttle_of(app)
    for i in range(throttle.ip_limit):
        assert try_login(app, ATTACKER, f"user{i}", "Winter2025!").status_code == 401
    assert try_login(app, ATTACKER, "someone-else", "x").status_code == 429
    assert try_login(app, NURSE_PC, "nora", PASSWORD).status_code == 303


def test_a_success_clears_only_that_clients_count(app: Any) -> None:
    throttle = throttle_of(app)
    for _ in range(throttle.limit - 1):
        try_login(app, ATTACKER, "nora", "wrong")
        try_login(app, NURSE_PC, "nora", "typo")
    assert try_login(app, NURSE_PC, "nora", PASSWORD).status_code == 303
    assert try_login(app, NURSE_PC, "nora", "typo").status_code == 401  # counting afresh
    assert try_login(app, ATTACKER, "nora", "wrong").status_code == 401
    assert try_login(app, ATTACKER, "nora", "wrong").status_code == 429  # still counted


@needs_redis
def test_web_processes_share_the_counts_through_redis(
        database_url: str, clinic: str, redis_prefix: str, clock: Clock) -> None:
    """Two apps (two web processes) on one Redis: failures in one make the other wait,
    and a fresh process (a restart) still remembers them."""
    add_clinician("test", "nora")
    apps = [create_app(load_settings()) for _ in range(3)]
    for app in apps:
        throttle = throttle_of(app)
        throttle.store = RedisCounts(redis.Redis.from_url(REDIS_URL), redis_prefix)
        throttle.clock = clock
    first, second, restarted = apps
    for _ in range(throttle_of(first).limit):
        assert try_login(first, ATTACKER, "nora", "wrong").status_code == 401
    assert try_login(second, ATTACKER, "nora", PASSWORD).status_code == 429
    assert try_login(restarted, ATTACKER, "nora", PASSWORD).status_code == 429
    assert try_login(second, NURSE_PC, "nora", PASSWORD).status_code == 303


def test_redis_is_used_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", "6379")
    settings = load_settings()
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert isinstance(throttle_for(settings.redis_url).store, RedisCounts)
    monkeypatch.delenv("REDIS_HOST")
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    assert load_settings().redis_url == REDIS_URL
    monkeypatch.delenv("REDIS_URL")
    assert isinstance(throttle_for(load_settings().redis_url).store, MemoryCounts)


def test_a_redis_outage_does_not_stop_sign_ins(app: Any) -> None:
    throttle = throttle_of(app)
    throttle.store = RedisCounts(redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.5,
                                             socket_connect_timeout=0.5), "pptest:down:")
    assert try_login(app, NURSE_PC, "nora", PASSWORD).status_code == 303
    for _ in range(throttle.limit):
        assert try_login(app, ATTACKER, "nora", "wrong").status_code == 401
    assert try_login(app, ATTACKER, "nora", "wrong").status_code == 429  # counted in memory


# ---------------------------------------------------------------------------- HSTS

HSTS = "strict-transport-security"


@pytest.fixture
def http_settings(database_url: str, clinic: str) -> Settings:
    return dataclasses.replace(load_settings(), web_base_url="http://127.0.0.1:8000")


def test_hsts_on_every_response_when_the_web_base_url_is_https(http_settings: Settings) -> None:
    settings = dataclasses.replace(http_settings, web_base_url="https://care.example.org")
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        for path in ("/healthz", "/login", "/queue", "/chat/not-a-token", "/static/chat.css"):
            resp = client.get(path, follow_redirects=False)
            assert resp.headers.get(HSTS) == "max-age=31536000; includeSubDomains", path


def test_hsts_when_the_request_came_over_https(http_settings: Settings) -> None:
    app = create_app(http_settings)
    with TestClient(app, base_url="https://testserver") as client:
        assert HSTS in client.get("/login").headers
    with TestClient(app, base_url="http://testserver") as client:
        assert HSTS not in client.get("/login").headers  # plain http on loopback: dev


@pytest.mark.stack  # a real web process: the SQLite pass only
def test_hsts_behind_a_tls_proxy_in_the_real_server(tmp_path: Path, database_url: str) -> None:
    """uvicorn as the web app runs: a request the proxy marks X-Forwarded-Proto: https
    gets the header, a plain one does not."""
    from stack import free_port  # tools/stack.py

    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "PAINPATH_SECRET_KEY": "hsts",
           "WEB_BASE_URL": f"http://127.0.0.1:{port}", "PYTHONPATH": str(ROOT)}
    for var in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER",
                "PUBLIC_BASE_URL", "PAINPATH_SCHEDULER"):
        env.pop(var, None)
    log = open(tmp_path / "web.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "uvicorn"), "web.app:create_app",
                             "--factory", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2) as client:
            while True:  # until the server answers (or has exited)
                assert proc.poll() is None, (tmp_path / "web.log").read_text()
                try:
                    plain = client.get(url)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "web app did not start"
                    time.sleep(0.1)
            proxied = client.get(url, headers={"X-Forwarded-Proto": "https"})
        assert HSTS not in plain.headers
        assert proxied.headers.get(HSTS) == "max-age=31536000; includeSubDomains"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
