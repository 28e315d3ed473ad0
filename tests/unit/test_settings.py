"""Settings: every SPEC §2 variable is read; an invalid one is named in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import EmbeddingProvider, load_settings


def test_defaults_describe_the_embedded_offline_setup() -> None:
    settings = load_settings(env_file=None)
    assert settings.database_url is None
    assert settings.deskmate_data_dir == Path(".deskmate")
    assert settings.embedding_provider is EmbeddingProvider.HASH
    assert settings.public_departments == ["general"]
    assert settings.default_timezone == "UTC"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert not settings.llm_enabled
    assert not settings.slack_enabled
    assert not settings.teams_enabled


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_DEPARTMENTS", "General, handbook")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9999/api")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID", "app-id")
    monkeypatch.setenv("EMBEDDING_PROVIDER", "voyage")
    settings = load_settings(env_file=None)
    assert settings.public_departments == ["general", "handbook"]
    assert settings.slack_api_url == "http://127.0.0.1:9999/api/"
    assert settings.llm_enabled
    assert settings.teams_client_id == "app-id"
    assert settings.teams_enabled
    assert settings.embedding_provider is EmbeddingProvider.VOYAGE


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DEFAULT_TIMEZONE=Europe/Berlin\nEMBEDDING_DIMENSION=256\n")
    settings = load_settings(env_file=env_file)
    assert settings.default_timezone == "Europe/Berlin"
    assert settings.embedding_dimension == 256


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DEFAULT_TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("EMBEDDING_PROVIDER", "magic", "EMBEDDING_PROVIDER"),
        ("EMBEDDING_DIMENSION", "4096", "less than or equal to 2000"),
        ("EMBEDDING_DIMENSION", "many", "valid integer"),
        ("DATABASE_URL", "mysql://root:hunter2@db/x", "postgresql://"),
        ("SLACK_API_URL", "slack.com/api", "http"),
        ("SCHEDULER_ENABLED", "perhaps", "boolean"),
        ("LOG_LEVEL", "LOUD", "DEBUG"),
    ],
)
def test_invalid_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    message = str(caught.value)
    assert message.startswith(f"invalid setting {variable}:")
    assert expected in message
    assert "\n" not in message
    assert "hunter2" not in message  # secrets never echoed
