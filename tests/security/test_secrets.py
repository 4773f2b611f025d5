"""Secrets (security issue, items 6 and 8).

- Rasa's HTTP API takes a short-lived JWT in the Authorization header, never a
  token in the URL; no secret is on any process's command line (`ps`).
- `var/secret_key` is readable by its owner only, and each purpose has its own
  key derived from it (`Settings.key_for`).
- The web app's signature on its requests to Rasa's web-chat channel covers a
  timestamp and a nonce: a replayed or stale request is refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import stat
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import redis
from itsdangerous import URLSafeTimedSerializer

from bot.painpath_rasa.serve import rasa_argv
from painpath import webhook_auth
from painpath.nonces import MemoryNonces, RedisNonces
from painpath.settings import Settings, load_settings, read_secret_file
from painpath.weblink import InvalidChatLink, sign_link_key, verify_chat_token

PURPOSES = ("session", "chat-link", "rasa-jwt", "action-server", "web-rasa")


def settings_with(secret: str) -> Settings:
    return dataclasses.replace(load_settings(), secret_key=secret)


# --------------------------------------------------------------------------- #
# One key per purpose; the key file is private
# --------------------------------------------------------------------------- #


def test_each_purpose_gets_its_own_key(database_url: str) -> None:
    settings = settings_with("one-deployment-secret")
    keys = {p: settings.key_for(p) for p in PURPOSES}
    assert len(set(keys.values())) == len(PURPOSES)
    assert all(isinstance(k, bytes) and len(k) == 32 for k in keys.values())
    assert settings.key_for("session") == settings_with("one-deployment-secret").key_for("session")
    assert settings.key_for("session") != settings_with("another-secret").key_for("session")
    assert b"one-deployment-secret" not in b"".join(keys.values())
    with pytest.raises(ValueError):
        settings.key_for("")


def test_a_chat_link_signed_with_the_raw_secret_is_refused(database_url: str) -> None:
    """A value signed with the master key for another purpose must not pass as a link."""
    settings = load_settings()
    forged = URLSafeTimedSerializer(settings.secret_key, salt="chat-link").dumps("patient-1")
    with pytest.raises(InvalidChatLink):
        verify_chat_token(forged, settings)
    assert verify_chat_token(sign_link_key("patient-1", settings), settings) == "patient-1"


def test_a_new_secret_key_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret_key"
    old = os.umask(0o022)
    try:
        secret = read_secret_file(path)
    finally:
        os.umask(old)
    assert len(secret) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_secret_file(path) == secret


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    """`make run` starts Rasa, the action server and the web app at once."""
    path = tmp_path / "var" / "secret_key"
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(read_secret_file(path)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and len(set(seen)) == 1 and seen[0]
    assert sorted(os.listdir(path.parent)) == ["secret_key"]  # no drafts left behind


def test_an_existing_world_readable_key_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    path.write_text("kept-as-it-is\n")
    path.chmod(0o644)
    assert read_secret_file(path) == "kept-as-it-is"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rasa_is_started_with_the_jwt_secret_added_inside_the_process(
        database_url: str) -> None:
    settings = settings_with("one-deployment-secret")
    argv = rasa_argv(["run", "--enable-api", "-m", "m.tar.gz"], settings)
    assert argv[:5] == ["rasa", "run", "--enable-api", "-m", "m.tar.gz"]
    assert argv[argv.index("--jwt-secret") + 1] == settings.rasa_jwt_secret
    assert argv[argv.index("--jwt-method") + 1] == "HS256"
    assert rasa_argv(["run", "actions"], settings) == ["rasa", "run", "actions"]
    for given in (["run", "--auth-token", "t"], ["run", "--jwt-secret=s"],
                  ["run", "--jwt-private-key", "k"]):
        with pytest.raises(SystemExit):
            rasa_argv(given, settings)


# --------------------------------------------------------------------------- #
# Web app -> Rasa: timestamp and nonce in the signature
# --------------------------------------------------------------------------- #

KEY = b"k" * 32
BODY = b'{"sender": "p1", "message": "my pain is 0"}'


def test_a_signed_request_passes_once_and_its_replay_is_refused() -> None:
    nonces = MemoryNonces()
    headers = webhook_auth.signed_headers(BODY, KEY)
    assert webhook_auth.verify(BODY, headers, KEY, nonces) is None
    assert webhook_auth.verify(BODY, headers, KEY, nonces) == "replayed"


def test_stale_tampered_or_unsigned_requests_are_refused() -> None:
    nonces = MemoryNonces()
    stale = webhook_auth.signed_headers(BODY, KEY, now=time.time() - 301)
    assert webhook_auth.verify(BODY, stale, KEY, nonces) == "stale"
    future = webhook_auth.signed_headers(BODY, KEY, now=time.time() + 301)
    assert webhook_auth.verify(BODY, future, KEY, nonces) == "stale"
    good = webhook_auth.signed_headers(BODY, KEY)
    assert webhook_auth.verify(BODY.replace(b"0", b"9"), good, KEY, nonces) == "bad signature"
    assert webhook_auth.verify(BODY, good, b"x" * 32, nonces) == "bad signature"
    moved = {**good, webhook_auth.TIMESTAMP_HEADER: str(int(time.time()) - 1)}
    assert webhook_auth.verify(BODY, moved, KEY, nonces) == "bad signature"
    for missing in (webhook_auth.HEADER, webhook_auth.TIMESTAMP_HEADER,
                    webhook_auth.NONCE_HEADER):
        partial = {k: v for k, v in good.items() if k != missing}
        assert webhook_auth.verify(BODY, partial, KEY, nonces) == "unsigned"
    # none of the refusals used up the nonce
    assert webhook_auth.verify(BODY, good, KEY, nonces) is None


def test_the_memory_nonce_store_is_bounded_and_forgets_expired_nonces() -> None:
    nonces = MemoryNonces(max_entries=3)
    assert all(nonces.first_use(f"n{i}", ttl=60, now=1000.0) for i in range(3))
    assert not nonces.first_use("n2", ttl=60, now=1001.0)
    assert nonces.first_use("n3", ttl=60, now=1002.0)  # full: the oldest goes
    assert len(nonces) == 3
    assert nonces.first_use("n2", ttl=60, now=1061.0)  # expired: usable again (too stale anyway)


def test_the_redis_nonce_store_refuses_a_nonce_seen_by_another_server() -> None:
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"pp-test-{uuid.uuid4().hex}:"
    one, two = RedisNonces(client, prefix), RedisNonces(redis.Redis(port=6379), prefix)
    assert one.first_use("abc", ttl=60)
    assert not two.first_use("abc", ttl=60)
    assert 0 < client.ttl(prefix + "abc") <= 60
    client.delete(prefix + "abc")


# --------------------------------------------------------------------------- #
# The running stack
# --------------------------------------------------------------------------- #


def stack_settings(stack: Any) -> Settings:
    return settings_with(stack.env["PAINPATH_SECRET_KEY"])


def bearer(claims: dict[str, Any], key: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + jwt.encode(claims, key, algorithm="HS256")}


@pytest.mark.stack
def test_rasa_api_wants_a_jwt_in_the_authorization_header(stack) -> None:
    secret = stack_settings(stack).rasa_jwt_secret
    url = f"{stack.stack.rasa_url}/conversations/someone/tracker"
    admin = {"user": {"username": "painpath", "role": "admin"}, "exp": int(time.time()) + 60}
    old_token = stack_settings(stack).key_for("rasa-http-api").hex()
    assert httpx.get(url, timeout=30).status_code == 401
    assert httpx.get(url, params={"token": old_token}, timeout=30).status_code == 401
    assert httpx.get(url, headers=bearer(admin, "not-the-secret-" * 4), timeout=30).status_code == 401
    expired = {**admin, "exp": int(time.time()) - 600}
    assert httpx.get(url, headers=bearer(expired, secret), timeout=30).status_code == 401
    other = {"user": {"username": "someone-else", "role": "user"}, "exp": admin["exp"]}
    assert httpx.get(url, headers=bearer(other, secret), timeout=30).status_code == 403
    assert httpx.get(url, headers=bearer(admin, secret), timeout=30).status_code == 200
    assert httpx.get(url, headers=stack.stack.api_headers(), timeout=30).status_code == 200


@pytest.mark.stack
def test_no_secret_on_any_command_line(stack) -> None:
    settings = stack_settings(stack)
    secrets = {"master": settings.secret_key, "jwt": settings.rasa_jwt_secret,
               "actions": settings.action_server_token,
               "web-rasa": settings.key_for("web-rasa").hex()}
    for name, pid in stack.stack.pids().items():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        for what, value in secrets.items():
            assert value not in cmdline, (name, what)
        assert "--auth-token" not in cmdline and "--jwt-secret" not in cmdline, name


def web_chat_post(stack: Any, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{stack.stack.rasa_url}/webhooks/web/webhook", content=body,
                      headers={"Content-Type": "application/json", **headers}, timeout=60)


@pytest.mark.stack
def test_a_replayed_web_chat_request_is_refused(stack) -> None:
    patient_id = stack.cli("enroll", "--clinic", "e2e", "--phone", "+14155550309",
                           "--procedure", "prp_injection", "--procedure-at",
                           "2026-11-20T09:00:00Z", "--channel", "web").stdout.strip()
    key = stack_settings(stack).key_for("web-rasa")
    body = json.dumps({"sender": patient_id, "message": "help"}).encode()
    headers = webhook_auth.signed_headers(body, key)
    first = web_chat_post(stack, body, headers)
    assert first.status_code == 200 and first.json(), first.text
    assert web_chat_post(stack, body, headers).status_code == 403
    stale = webhook_auth.signed_headers(body, key, now=time.time() - 400)
    assert web_chat_post(stack, body, stale).status_code == 403
    old = hmac.new(stack.env["PAINPATH_SECRET_KEY"].encode(), body, hashlib.sha256).hexdigest()
    assert web_chat_post(stack, body, {webhook_auth.HEADER: old}).status_code == 403
    tracker = httpx.get(f"{stack.stack.rasa_url}/conversations/{patient_id}/tracker",
                        headers=stack.stack.api_headers(), timeout=30).json()
    said = [e for e in tracker["events"] if e.get("event") == "user"]
    assert [e.get("text") for e in said] == ["help"]  # the replays never reached the bot
