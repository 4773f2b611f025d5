"""Signed, expiring web-chat links (painpath.weblink): the token layer. Revocation and
the opaque payload: tests/security/test_chat_links.py."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from painpath.models import Patient
from painpath.settings import Settings, load_settings
from painpath.db import new_session
from painpath.weblink import InvalidChatLink, chat_url, sign_link_key, verify_chat_token
from tests.unit.test_dashboard import add_patient


@pytest.fixture()
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PAINPATH_SECRET_KEY", "test-secret-key-weblink")
    return dataclasses.replace(
        load_settings(), web_base_url="https://chat.example.test", chat_link_ttl_hours=72
    )


def test_token_round_trips_to_the_link_key(settings: Settings) -> None:
    token = sign_link_key("a1b2c3d4e5f60718", settings)
    assert verify_chat_token(token, settings) == "a1b2c3d4e5f60718"


def test_token_is_url_safe_and_does_not_show_other_patients(settings: Settings) -> None:
    token = sign_link_key("patient-1", settings)
    assert all(c.isalnum() or c in "-_." for c in token)
    assert verify_chat_token(sign_link_key("patient-2", settings), settings) == "patient-2"


def test_chat_url_is_web_base_url_plus_a_token_of_the_patients_key(
        database_url: str, clinic: str, settings: Settings) -> None:
    settings = dataclasses.replace(settings, database_url=database_url)
    pid = add_patient(clinic, "+14155550171")
    url = chat_url(pid, settings)
    prefix = "https://chat.example.test/chat/"
    assert url.startswith(prefix)
    with new_session() as session:
        key = session.get(Patient, pid).chat_link_key
    assert key and verify_chat_token(url[len(prefix):], settings) == key
    assert chat_url(pid, settings).startswith(prefix)  # the same key while not revoked


def test_chat_url_for_no_such_patient_is_refused(database_url: str, settings: Settings) -> None:
    with pytest.raises(LookupError):
        chat_url("no-such-patient", dataclasses.replace(settings, database_url=database_url))


def test_the_link_key_is_signed_with_its_own_purpose_key(settings: Settings) -> None:
    from itsdangerous import URLSafeTimedSerializer

    token = URLSafeTimedSerializer(settings.secret_key, salt="chat-link").dumps("patient-1")
    with pytest.raises(InvalidChatLink):  # the bare secret key no longer signs links
        verify_chat_token(token, settings)


@pytest.mark.parametrize("mangle", [
    # A middle character of the signature (the last one carries unused bits).
    lambda t: t[:-5] + ("A" if t[-5] != "A" else "B") + t[-4:],
    lambda t: t[:-6],                                  # truncated
    lambda t: "x" + t,                                 # payload changed
    lambda t: "",
    lambda t: "not-a-token",
    lambda t: "%%%.???.!!!",
])
def test_tampered_token_is_invalid(settings: Settings, mangle) -> None:  # type: ignore[no-untyped-def]
    token = sign_link_key("patient-1", settings)
    with pytest.raises(InvalidChatLink) as info:
        verify_chat_token(mangle(token), settings)
    assert info.value.reason == "invalid"


def test_token_from_another_key_is_invalid(settings: Settings) -> None:
    other = dataclasses.replace(settings, secret_key="some-other-deployment")
    with pytest.raises(InvalidChatLink) as info:
        verify_chat_token(sign_link_key("patient-1", other), settings)
    assert info.value.reason == "invalid"


def test_token_signed_for_another_purpose_is_invalid(settings: Settings) -> None:
    from itsdangerous import URLSafeTimedSerializer

    token = URLSafeTimedSerializer(settings.secret_key, salt="password-reset").dumps("patient-1")
    with pytest.raises(InvalidChatLink) as info:
        verify_chat_token(token, settings)
    assert info.value.reason == "invalid"


def test_token_expires_after_the_configured_ttl(settings: Settings) -> None:
    start = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
    with time_machine.travel(start, tick=False):
        token = sign_link_key("patient-1", settings)
    with time_machine.travel(start + timedelta(hours=71, minutes=59), tick=False):
        assert verify_chat_token(token, settings) == "patient-1"
    with time_machine.travel(start + timedelta(hours=72, seconds=2), tick=False):
        with pytest.raises(InvalidChatLink) as info:
            verify_chat_token(token, settings)
    assert info.value.reason == "expired"


def test_shorter_ttl_setting_is_honoured(settings: Settings) -> None:
    short = dataclasses.replace(settings, chat_link_ttl_hours=1)
    start = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
    with time_machine.travel(start, tick=False):
        token = sign_link_key("patient-1", short)
    with time_machine.travel(start + timedelta(hours=2), tick=False):
        with pytest.raises(InvalidChatLink) as info:
            verify_chat_token(token, short)
        assert verify_chat_token(token, settings) == "patient-1"  # 72 h still fine
    assert info.value.reason == "expired"


def test_empty_key_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError):
        sign_link_key("", settings)
