"""One frozen settings object built from the environment at start-up.

Every variable is documented in `.env.example`. Nothing else in PainPath reads
`os.environ` directly, so a newcomer finds every knob here.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE = f"sqlite:///{REPO_ROOT / 'var' / 'painpath.db'}"
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:5005"
DEFAULT_WEB_BASE_URL = "http://127.0.0.1:8000"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    rasa_url: str
    public_base_url: str
    web_base_url: str
    twilio_account_sid: str | None
    twilio_auth_token: str | None
    twilio_from_number: str | None
    twilio_api_base: str | None
    secret_key: str
    chat_link_ttl_hours: int
    emergency_number: str
    crisis_line: str
    run_scheduler: bool = False
    # Rasa's endpoints file (its tracker store is where a deleted patient's
    # conversation is removed); relative paths are read from the repository root
    rasa_endpoints: str = "bot/endpoints.yml"
    # Redis (REDIS_URL, or REDIS_HOST, …: the Rasa servers' lock store in production):
    # the web-chat channel's nonces and the login throttle's counts. None: in memory.
    redis_url: str | None = None
    # Where the action server listens (ACTION_SERVER_INTERFACE): loopback unless told.
    action_server_interface: str = "127.0.0.1"

    def key_for(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose, derived from the secret key.

        One secret serves the deployment, but each use (session cookies, chat links,
        Rasa's JWT, the action server's token, web→Rasa signatures, …) gets its own
        key: a value made for one purpose is worthless for another, and a key that
        leaks from one process does not give the master secret away. HMAC-SHA256
        with a purpose label (the "expand" step of HKDF, RFC 5869, for one block).
        """
        if not purpose:
            raise ValueError("key_for needs a purpose")
        label = b"painpath/v1/" + purpose.encode() + b"\x01"
        return hmac.new(self.secret_key.encode(), label, hashlib.sha256).digest()

    @property
    def rasa_jwt_secret(self) -> str:
        """The HS256 secret of the JWTs Rasa's HTTP API accepts (`rasa run --jwt-secret`,
        passed by bot/painpath_rasa/serve.py, never on the command line)."""
        return self.key_for("rasa-jwt").hex()

    @property
    def action_server_token(self) -> str:
        """The bearer token Rasa sends the action server (bot/endpoints.yml `headers:`):
        ACTION_SERVER_TOKEN, else derived from the secret key so every process agrees."""
        return _env("ACTION_SERVER_TOKEN") or self.key_for("action-server").hex()

    @property
    def twilio_configured(self) -> bool:
        """True when real (or fake-on-loopback) Twilio credentials are set."""
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from_number)


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def is_loopback(url: str) -> bool:
    """True when `url` names this machine (127.0.0.0/8, ::1, localhost)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _base_url(name: str, default: str, required: bool) -> str:
    """A base URL from the environment: https unless it is on loopback.

    Raises:
        ConfigError: naming `name` when it is required and unset, not an
            absolute http(s) URL, or plain http to another machine (Twilio's
            signature, session cookies and chat links all travel over it).
    """
    value = _env(name)
    if value is None:
        if required:
            raise ConfigError(
                f"{name} is not set: with Twilio configured it must be the public https "
                f"address this deployment is reached at (see .env.example)")
        return default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}={value!r} is not an absolute http(s) URL")
    if parts.scheme != "https" and not is_loopback(value):
        raise ConfigError(f"{name}={value!r} must use https (plain http only on loopback)")
    return value.rstrip("/")


def _redis_url() -> str | None:
    """REDIS_URL, else one built from REDIS_HOST / REDIS_PORT / REDIS_PASSWORD /
    REDIS_LOCK_DB (the variables the production Rasa lock store reads); None when
    neither is set."""
    url = _env("REDIS_URL")
    if url:
        return url
    host = _env("REDIS_HOST")
    if not host:
        return None
    password = _env("REDIS_PASSWORD")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{_env('REDIS_PORT', '6379')}/{_env('REDIS_LOCK_DB', '0')}"


def load_settings() -> Settings:
    """Build settings from the environment.

    Raises:
        ConfigError: when Twilio is half configured (an auth token without an
            account SID, …) — a silent fallback to the console gateway would
            drop a clinic's real messages; when Twilio is configured but
            PUBLIC_BASE_URL or WEB_BASE_URL is not (every webhook would fail its
            signature and status callbacks would go to Rasa's port); when a base
            URL to another machine is not https.
    """
    sid = _env("TWILIO_ACCOUNT_SID")
    token = _env("TWILIO_AUTH_TOKEN")
    from_number = _env("TWILIO_FROM_NUMBER")
    given = [n for n, v in (("TWILIO_ACCOUNT_SID", sid), ("TWILIO_AUTH_TOKEN", token),
                            ("TWILIO_FROM_NUMBER", from_number)) if v]
    if given and len(given) != 3:
        missing = {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"} - set(given)
        raise ConfigError(f"Twilio is partly configured: set {', '.join(sorted(missing))} too")
    twilio = bool(given)
    public_base = _base_url("PUBLIC_BASE_URL", DEFAULT_PUBLIC_BASE_URL, required=twilio)
    web_base = _base_url("WEB_BASE_URL", DEFAULT_WEB_BASE_URL, required=twilio)
    secret = _env("PAINPATH_SECRET_KEY") or read_secret_file(REPO_ROOT / "var" / "secret_key")
    return Settings(
        database_url=_env("DATABASE_URL", DEFAULT_SQLITE),
        rasa_url=_env("RASA_URL", "http://127.0.0.1:5005").rstrip("/"),
        public_base_url=public_base,
        web_base_url=web_base,
        twilio_account_sid=sid,
        twilio_auth_token=token,
        twilio_from_number=from_number,
        twilio_api_base=_env("TWILIO_API_BASE"),
        secret_key=secret,
        chat_link_ttl_hours=int(_env("CHAT_LINK_TTL_HOURS", "72")),
        emergency_number=_env("EMERGENCY_NUMBER", "911"),
        crisis_line=_env("CRISIS_LINE", "988"),
        run_scheduler=_env("PAINPATH_SCHEDULER", "0").lower() in ("1", "true", "yes"),
        rasa_endpoints=_env("RASA_ENDPOINTS", "bot/endpoints.yml"),
        redis_url=_redis_url(),
        action_server_interface=_env("ACTION_SERVER_INTERFACE", "127.0.0.1"),
    )


def read_secret_file(path: Path) -> str:
    """The secret kept in `path`, created (random) when missing; owner-only either way.

    The file is written with mode 0600 from the start (no window where it is
    world-readable) and appears whole: `make run` starts three processes at once,
    and one of them must never read a half-written key. An existing file with
    looser permissions is tightened.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_secret_file(path)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return path.read_text().strip()


def _create_secret_file(path: Path) -> None:
    """Write a random secret to `path` unless another process got there first."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
        os.link(draft, path)  # atomic, and never replaces a key already there
    except FileExistsError:
        pass
    finally:
        draft.unlink(missing_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return load_settings()
