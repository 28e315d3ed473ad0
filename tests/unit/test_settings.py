"""Settings: every SPEC §2 variable is read; an invalid one is named in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import EmbeddingProvider, load_settings
from storage.meta import EmbeddingSpace


def test_defaults_describe_the_embedded_offline_setup() -> None:
    settings = load_settings(env_file=None)
    assert settings.database_url is None
    assert settings.deskmate_data_dir == Path(".deskmate")
    assert settings.embedding_provider is EmbeddingProvider.MINILM
    assert settings.embedding_space == EmbeddingSpace("minilm", "all-MiniLM-L6-v2-int8", 384)
    assert settings.public_departments == ["general"]
    assert settings.default_timezone == "UTC"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert not settings.llm_enabled
    assert not settings.slack_enabled
    assert not settings.teams_enabled


def test_the_dimension_follows_the_provider_unless_set() -> None:
    sizes = {p: load_settings(env_file=None, embedding_provider=p).embedding_dimension
             for p in ("minilm", "wordllama", "hash")}  # fmt: skip
    assert sizes == {"minilm": 384, "wordllama": 256, "hash": 256}
    assert load_settings(env_file=None, embedding_provider="hash",
                         embedding_dimension=384).embedding_dimension == 384  # fmt: skip


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
    env_file.write_text(
        "DEFAULT_TIMEZONE=Europe/Berlin\nEMBEDDING_PROVIDER=wordllama\nEMBEDDING_DIMENSION=128\n"
    )
    settings = load_settings(env_file=env_file)
    assert settings.default_timezone == "Europe/Berlin"
    assert settings.embedding_provider is EmbeddingProvider.WORDLLAMA
    assert settings.embedding_dimension == 128


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DEFAULT_TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("EMBEDDING_PROVIDER", "magic", "EMBEDDING_PROVIDER"),
        ("EMBEDDING_DIMENSION", "4096", "less than or equal to 2000"),
        ("EMBEDDING_DIMENSION", "many", "valid integer"),
        ("EMBEDDING_DIMENSION", "384", "wordllama makes 64, 128, 256 dimensions, not 384"),
        ("EMBEDDING_MODEL", "l3_supercat", "wordllama has one model, l2_supercat"),
        ("EMBEDDING_DIMENSION", "256", "minilm makes 384 dimensions, not 256"),
        ("EMBEDDING_MODEL", "l2_supercat", "minilm has one model, all-MiniLM-L6-v2-int8"),
        ("DATABASE_URL", "mysql://root:hunter2@db/x", "postgresql://"),
        ("SLACK_API_URL", "slack.com/api", "http"),
        ("SCHEDULER_ENABLED", "perhaps", "boolean"),
        ("LOG_LEVEL", "LOUD", "DEBUG"),
    ],
)
def test_invalid_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    if expected.startswith("wordllama"):
        # wordllama's own limits, with wordllama configured (the default is minilm).
        monkeypatch.setenv("EMBEDDING_PROVIDER", "wordllama")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    message = str(caught.value)
    assert message.startswith(f"invalid setting {variable}:")
    assert expected in message
    assert "\n" not in message
    assert "hunter2" not in message  # secrets never echoed


def test_each_provider_has_its_own_dimensions_and_model() -> None:
    hashed = load_settings(env_file=None, embedding_provider="hash", embedding_dimension=384)
    assert hashed.embedding_space == EmbeddingSpace("hash", "features-v1", 384)
    small = load_settings(env_file=None, embedding_provider="wordllama", embedding_dimension=64)
    assert small.embedding_space == EmbeddingSpace("wordllama", "l2_supercat", 64)
    voyage = load_settings(
        env_file=None, embedding_provider="voyage", embedding_model="voyage-3-large"
    )
    assert voyage.embedding_space == EmbeddingSpace("voyage", "voyage-3-large", 256)


def test_databases_from_before_the_embedder_was_recorded_held_hash_vectors() -> None:
    # The old default was `hash`: with the new default configured, that is what made them...
    assert load_settings(env_file=None).database.unrecorded_embedder == ("hash", "features-v1")
    # ...while an operator who chose a provider is taken to still have the one that made them.
    voyage = load_settings(env_file=None, embedding_provider="voyage")
    assert voyage.database.unrecorded_embedder is None
