"""Settings as people type them: lists, bounds, secrets, and errors that name the setting (D8)."""

from __future__ import annotations

import pytest

from bot.config import MIN_INVITE_CODE_LENGTH, load_settings
from bot.errors import ConfigError


@pytest.mark.parametrize("typed, expected", [
    ("111,222", [111, 222]),
    ("111, 222", [111, 222]),
    ("[111, 222]", [111, 222]),
    ("111", [111]),
    ("", []),
    ("  ", []),
    ("[]", []),
])
def test_staff_ids_accept_comma_lists_and_json(monkeypatch, typed, expected):
    monkeypatch.setenv("KAP12_STAFF_USER_IDS", typed)
    assert load_settings().staff_user_ids == expected


@pytest.mark.parametrize("typed", ["[abc]", "[111, 222", "111,abc", "1.5", '{"a": 1}', "99999999999999999999999"])
def test_bad_staff_ids_name_the_setting_without_a_traceback(monkeypatch, typed):
    monkeypatch.setenv("KAP12_STAFF_USER_IDS", typed)
    with pytest.raises(ConfigError, match="KAP12_STAFF_USER_IDS"):
        load_settings()


@pytest.mark.parametrize("name, value", [
    ("CANDIDATES", "999999999999999999999"), ("CANDIDATES", "0"), ("RRF_K", "10000000"), ("THREADS", "-1"),
    ("THREADS", "100000"), ("WEIGHT_LEXICAL", "1e308"), ("WEIGHT_DENSE", "-1"), ("WEIGHT_QUESTIONS", "nan"),
    ("RATE_LIMIT_PER_MINUTE", "0"), ("RATE_LIMIT_PER_MINUTE", "10000000"), ("STATE_RETENTION_DAYS", "0"),
    ("STATE_RETENTION_DAYS", "100000"), ("WEBHOOK_PORT", "70000"), ("WEB_PORT", "0"), ("MAX_CITATIONS", "50"),
    ("EMBED_BATCH_SIZE", "1000000"), ("ANSWER_THRESHOLD", "2"), ("EMBEDDER", "gpt"), ("LOG_MESSAGE_TEXT", "maybe"),
    ("MUNICIPALITY", "x" * 200), ("COUNTY", "Nord\x1bland"), ("WEB_HOST", "a host with spaces"),
    ("WEBHOOK_LISTEN", "0.0.0.0; rm -rf /"), ("TELEGRAM_API_URL", "ftp://x"), ("WEBHOOK_URL", "http://x"),
])
def test_every_bad_number_or_value_names_its_setting(monkeypatch, name, value):
    monkeypatch.setenv(f"KAP12_{name}", value)
    with pytest.raises(ConfigError, match=f"KAP12_{name}"):
        load_settings()


def test_web_origins_accept_comma_lists_and_json(monkeypatch):
    monkeypatch.setenv("KAP12_WEB_ALLOWED_ORIGINS", "https://skole.example.no, https://kommune.example.no/")
    assert load_settings().web_allowed_origins == ["https://skole.example.no", "https://kommune.example.no"]
    monkeypatch.setenv("KAP12_WEB_ALLOWED_ORIGINS", '["https://a.example"]')
    assert load_settings().web_allowed_origins == ["https://a.example"]
    monkeypatch.setenv("KAP12_WEB_ALLOWED_ORIGINS", "")
    assert load_settings().web_allowed_origins == []
    monkeypatch.setenv("KAP12_WEB_ALLOWED_ORIGINS", "https://a.example 'unsafe-inline'")
    with pytest.raises(ConfigError, match="KAP12_WEB_ALLOWED_ORIGINS"):
        load_settings()


@pytest.mark.parametrize("secret", ["has space", "ÆØÅ-secret", "x" * 257, "semi;colon", "slash/"])
def test_webhook_secret_must_use_telegrams_characters(monkeypatch, secret):
    monkeypatch.setenv("KAP12_WEBHOOK_SECRET", secret)
    with pytest.raises(ConfigError, match="KAP12_WEBHOOK_SECRET") as caught:
        load_settings()
    assert secret not in str(caught.value)  # a secret is never echoed


def test_a_good_webhook_secret_and_an_empty_one(monkeypatch):
    monkeypatch.setenv("KAP12_WEBHOOK_SECRET", "Abc_123-xyz")
    assert load_settings().webhook_secret.get_secret_value() == "Abc_123-xyz"
    monkeypatch.setenv("KAP12_WEBHOOK_SECRET", "")
    assert load_settings().webhook_secret is None


def test_invite_code_must_be_long_enough_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("KAP12_STAFF_INVITE_CODE", "kort-123")
    with pytest.raises(ConfigError, match="KAP12_STAFF_INVITE_CODE") as caught:
        load_settings()
    assert "kort-123" not in str(caught.value) and str(MIN_INVITE_CODE_LENGTH) in str(caught.value)
    monkeypatch.setenv("KAP12_STAFF_INVITE_CODE", "Skole-2026-kode")
    assert load_settings().staff_invite_code.get_secret_value() == "Skole-2026-kode"
    monkeypatch.setenv("KAP12_STAFF_INVITE_CODE", "   ")
    assert load_settings().staff_invite_code is None


def test_several_bad_settings_are_all_named(monkeypatch):
    monkeypatch.setenv("KAP12_CANDIDATES", "0")
    monkeypatch.setenv("KAP12_WEBHOOK_PORT", "x")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "KAP12_CANDIDATES" in str(caught.value) and "KAP12_WEBHOOK_PORT" in str(caught.value)
