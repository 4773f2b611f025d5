"""One frozen settings object built from the environment at start-up.

Every variable is documented in `.env.example`. Nothing else in PainPath reads
`os.environ` directly, so a newcomer finds every knob here.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE = f"sqlite:///{REPO_ROOT / 'var' / 'painpath.db'}"


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

    @property
    def rasa_api_token(self) -> str:
        """The token Rasa's HTTP API demands (`rasa run --auth-token`): RASA_API_TOKEN,
        else derived from the secret key so every process agrees without more setup."""
        explicit = _env("RASA_API_TOKEN")
        if explicit:
            return explicit
        return hmac.new(self.secret_key.encode(), b"rasa-http-api", hashlib.sha256).hexdigest()

    @property
    def twilio_configured(self) -> bool:
        """True when real (or fake-on-loopback) Twilio credentials are set."""
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from_number)


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def load_settings() -> Settings:
    """Build settings from the environment.

    Raises:
        ConfigError: when Twilio is half configured (an auth token without an
            account SID, …) — a silent fallback to the console gateway would
            drop a clinic's real messages.
    """
    sid = _env("TWILIO_ACCOUNT_SID")
    token = _env("TWILIO_AUTH_TOKEN")
    from_number = _env("TWILIO_FROM_NUMBER")
    given = [n for n, v in (("TWILIO_ACCOUNT_SID", sid), ("TWILIO_AUTH_TOKEN", token),
                            ("TWILIO_FROM_NUMBER", from_number)) if v]
    if given and len(given) != 3:
        missing = {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"} - set(given)
        raise ConfigError(f"Twilio is partly configured: set {', '.join(sorted(missing))} too")
    secret = _env("PAINPATH_SECRET_KEY")
    if secret is None:
        secret_file = REPO_ROOT / "var" / "secret_key"
        if secret_file.exists():
            secret = secret_file.read_text().strip()
        else:
            secret_file.parent.mkdir(parents=True, exist_ok=True)
            secret = secrets.token_urlsafe(32)
            secret_file.write_text(secret)
    web_base = _env("WEB_BASE_URL", "http://127.0.0.1:8000")
    return Settings(
        database_url=_env("DATABASE_URL", DEFAULT_SQLITE),
        rasa_url=_env("RASA_URL", "http://127.0.0.1:5005").rstrip("/"),
        public_base_url=_env("PUBLIC_BASE_URL", "http://127.0.0.1:5005").rstrip("/"),
        web_base_url=web_base.rstrip("/"),
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
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return load_settings()
