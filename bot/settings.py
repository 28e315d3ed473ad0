"""Service settings: environment variables or a `.env` file, every one optional (SPEC §2).

A setting that is present but invalid stops start-up with one line naming the variable;
`load_settings()` turns pydantic's report into that line.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
import zoneinfo
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import ConfigError
from storage.database import DatabaseConfig, Pooler
from storage.meta import EmbeddingSpace

# pgvector's HNSW index accepts at most 2,000 dimensions for the `vector` type.
MAX_EMBEDDING_DIMENSION = 2000

TEAMS_PREFIX = "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__"


class EmbeddingProvider(StrEnum):
    WORDLLAMA = "wordllama"
    MINILM = "minilm"
    MPNET = "mpnet"
    HASH = "hash"
    VOYAGE = "voyage"
    OPENAI = "openai"
    LOCAL = "local"


# wordllama ships one model in its wheel, 256 dimensions trained Matryoshka-style: its first
# 128 or 64 dimensions are embeddings too (smaller, a little less precise). The model's larger
# sizes exist only as downloads, which deskmate never makes.
WORDLLAMA_MODEL = "l2_supercat"
WORDLLAMA_DIMENSIONS = (64, 128, 256)
# `minilm`: all-MiniLM-L6-v2 with int8 weights, whose wheel holds the model (bot.static_embeddings).
MINILM_MODEL = "all-MiniLM-L6-v2-int8"
MINILM_DIMENSION = 384
# `mpnet` (opt-in): all-mpnet-base-v2 in float32, from five data-only wheels (bot.mpnet).
MPNET_MODEL = "all-mpnet-base-v2"
MPNET_DIMENSION = 768
# `hash` has no model; the name versions its features, should they ever change.
HASH_MODEL = "features-v1"

# The model each provider uses when EMBEDDING_MODEL is unset (the database records it).
DEFAULT_EMBEDDING_MODELS = {
    EmbeddingProvider.WORDLLAMA: WORDLLAMA_MODEL,
    EmbeddingProvider.MINILM: MINILM_MODEL,
    EmbeddingProvider.MPNET: MPNET_MODEL,
    EmbeddingProvider.HASH: HASH_MODEL,
    EmbeddingProvider.VOYAGE: "voyage-3.5",
    EmbeddingProvider.OPENAI: "text-embedding-3-small",
    EmbeddingProvider.LOCAL: "sentence-transformers/all-MiniLM-L6-v2",
}
# The vector size each provider makes when EMBEDDING_DIMENSION is unset.
DEFAULT_DIMENSIONS = {
    EmbeddingProvider.WORDLLAMA: 256,
    EmbeddingProvider.MINILM: MINILM_DIMENSION,
    EmbeddingProvider.MPNET: MPNET_DIMENSION,
}
# Providers that have exactly one model.
_ONLY_MODEL = {
    EmbeddingProvider.WORDLLAMA: WORDLLAMA_MODEL,
    EmbeddingProvider.MINILM: MINILM_MODEL,
    EmbeddingProvider.MPNET: MPNET_MODEL,
    EmbeddingProvider.HASH: HASH_MODEL,
}


def _teams(name: str) -> AliasChoices:
    return AliasChoices(TEAMS_PREFIX + name)


CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Everything deskmate reads from its environment."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Database
    database_url: SecretStr | None = None
    deskmate_data_dir: Path = Path(".deskmate")
    db_pool_min_size: int = Field(default=1, ge=0, le=100)
    db_pool_max_size: int = Field(default=10, ge=1, le=500)
    # `pgbouncer`: DATABASE_URL reaches PostgreSQL through PgBouncer in transaction mode.
    database_pooler: Pooler = Pooler.NONE
    # The web chat's LISTEN session (live updates across replicas) must reach PostgreSQL
    # directly: a transaction pooler cannot hold it. Unset: DATABASE_URL.
    database_listen_url: SecretStr | None = None
    # Answers worked on at once; more wait their turn (their events are already stored), so a
    # flood slows answers down and never the acks platforms wait for.
    answer_concurrency: int = Field(default=6, ge=1, le=200)
    # How long an accepted platform event stays with the replica answering it without word from
    # it (renewed while it works) before any replica's sweeper answers it instead.
    event_lease_seconds: float = Field(default=120.0, ge=1, le=86400)

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = Field(default=None, validate_default=True)
    slack_app_token: SecretStr | None = None
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    # Claude
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-4-6"
    # Monthly LLM budgets (calendar months, UTC), in US dollars and/or tokens: of each
    # organisation, and of each person; `deskmate budget set` overrides them. Unset: no limit.
    # At the limit answers quote the documents instead (bot/budgets.py).
    llm_monthly_budget_usd: Decimal | None = Field(
        default=None, gt=0, max_digits=14, decimal_places=2
    )
    llm_monthly_budget_tokens: int | None = Field(default=None, gt=0)
    llm_user_monthly_budget_usd: Decimal | None = Field(
        default=None, gt=0, max_digits=14, decimal_places=2
    )
    llm_user_monthly_budget_tokens: int | None = Field(default=None, gt=0)

    # Teams, under the Agents SDK's own names
    teams_client_id: str | None = Field(default=None, validation_alias=_teams("CLIENTID"))
    teams_client_secret: SecretStr | None = Field(
        default=None, validation_alias=_teams("CLIENTSECRET")
    )
    teams_tenant_id: str | None = Field(default=None, validation_alias=_teams("TENANTID"))
    teams_anonymous_allowed: bool = Field(
        default=False, validation_alias=_teams("ANONYMOUS_ALLOWED")
    )

    # Retrieval
    embedding_provider: EmbeddingProvider = EmbeddingProvider.MINILM
    # Unset (0): the size the provider makes (DEFAULT_DIMENSIONS).
    embedding_dimension: int = Field(
        default=0, ge=8, le=MAX_EMBEDDING_DIMENSION, validate_default=True
    )
    embedding_model: str | None = None
    embedding_base_url: str | None = None
    voyage_api_key: SecretStr | None = None
    openai_api_key: SecretStr | None = None

    # Passages less similar than this to the question are not offered by the vector search
    # (full-text matches still are): it keeps unrelated text out of answers.
    # Unset: the threshold calibrated for the embedding provider (bot/relevance.py).
    retrieval_min_similarity: float | None = Field(default=None, ge=-1.0, le=1.0)

    # Directory and time
    public_departments: CommaList = Field(default_factory=lambda: ["general"])
    default_timezone: str = "UTC"

    # Service
    scheduler_enabled: bool = True
    # Scheduler (docs/scheduler.md): how often each replica looks for due schedules; how long
    # a claimed run stays claimed before another replica may retry it (longer than one send
    # takes, pacing included); attempts before a run is `failed`; runs delivered at once per
    # replica; the retry backoff's first step and cap; when past sessions become episodes (UTC).
    scheduler_tick_seconds: float = Field(default=5.0, gt=0, le=3600)
    scheduler_lease_seconds: float = Field(default=120.0, ge=1, le=86400)
    scheduler_max_attempts: int = Field(default=5, ge=1, le=100)
    scheduler_concurrency: int = Field(default=8, ge=1, le=500)
    scheduler_retry_base_seconds: float = Field(default=5.0, ge=0, le=3600)
    scheduler_retry_max_seconds: float = Field(default=900.0, ge=0, le=86400)
    scheduler_episodes_cron: str = "15 3 * * *"
    # Seconds between two posts into one channel, across every replica (the platforms' pace:
    # Slack about 1/s per channel, Teams 7/s per conversation; the web chat has none).
    pacing_slack_seconds: float = Field(default=1.0, ge=0, le=60)
    pacing_teams_seconds: float = Field(default=0.15, ge=0, le=60)
    pacing_web_seconds: float = Field(default=0.0, ge=0, le=60)
    # Retention (docs/scheduler.md): days kept of finished scheduled runs, alert evaluations,
    # processed platform events, job runs, and of measurements (query_log, llm_call_metrics,
    # rag_metrics); 0 keeps them forever. Run once a day by one replica, at this cron (UTC).
    retention_runs_days: int = Field(default=90, ge=0, le=36500)
    retention_evaluations_days: int = Field(default=90, ge=0, le=36500)
    retention_events_days: int = Field(default=90, ge=0, le=36500)
    retention_job_runs_days: int = Field(default=90, ge=0, le=36500)
    retention_measurements_days: int = Field(default=400, ge=0, le=36500)
    retention_cron: str = "45 3 * * *"
    retention_batch_size: int = Field(default=5000, ge=1, le=100000)
    webchat_token: SecretStr | None = None
    # Sign-in for the web surface off loopback (OpenID Connect with Slack and Microsoft Entra
    # ID, handlers/webchat/signin.py). WEB_PUBLIC_URL is where browsers reach deskmate: the
    # providers send people back to it, so it must be the address they typed.
    web_public_url: str | None = None
    signin_slack_client_id: str | None = None
    signin_slack_client_secret: SecretStr | None = Field(default=None, validate_default=True)
    signin_slack_issuer: str = "https://slack.com"
    signin_entra_client_id: str | None = None
    signin_entra_client_secret: SecretStr | None = Field(default=None, validate_default=True)
    signin_entra_tenant_id: str | None = None
    # Unset: https://login.microsoftonline.com/<SIGNIN_ENTRA_TENANT_ID>/v2.0.
    signin_entra_issuer: str | None = Field(default=None, validate_default=True)
    web_session_hours: float = Field(default=12.0, gt=0, le=720)
    log_level: str = "INFO"
    # `json`: one JSON object per line with the request id, for a log collector (bot/logs.py).
    log_format: str = "text"
    # Traces to this OTLP/HTTP collector (`pip install 'deskmate[otel]'`); unset, tracing is off.
    otel_exporter_otlp_endpoint: str | None = None

    @field_validator("database_url", "database_listen_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        url = value.get_secret_value()
        if not url.startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a postgresql:// URL")
        if problem := postgres_address_problem(url):
            raise ValueError(problem)
        return value

    @field_validator("slack_signing_secret")
    @classmethod
    def _signing_secret_for_slack(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        # Slack signs every request with it: without it, not one could be accepted.
        if value is None and info.data.get("slack_bot_token") is not None:
            raise ValueError("must be set when SLACK_BOT_TOKEN is (Slack signs requests with it)")
        return value

    @field_validator("slack_api_url", "anthropic_base_url", "embedding_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # slack_sdk joins method names onto the base URL, so it must end with a slash.
        return value if value.endswith("/") else value + "/"

    @field_validator("embedding_dimension", mode="before")
    @classmethod
    def _dimension_of_the_provider(cls, value: object, info: ValidationInfo) -> object:
        if value in (None, "", 0, "0"):
            provider = info.data.get("embedding_provider")
            if isinstance(provider, EmbeddingProvider):
                return DEFAULT_DIMENSIONS.get(provider, 256)
            return 256
        return value

    @field_validator("embedding_dimension")
    @classmethod
    def _dimension_the_model_makes(cls, value: int, info: ValidationInfo) -> int:
        # Fields are validated in order: the provider (when valid) is already in info.data.
        provider = info.data.get("embedding_provider")
        if provider is EmbeddingProvider.WORDLLAMA and value not in WORDLLAMA_DIMENSIONS:
            sizes = ", ".join(map(str, WORDLLAMA_DIMENSIONS))
            raise ValueError(f"EMBEDDING_PROVIDER=wordllama makes {sizes} dimensions, not {value}")
        if provider is EmbeddingProvider.MINILM and value != MINILM_DIMENSION:
            raise ValueError(
                f"EMBEDDING_PROVIDER=minilm makes {MINILM_DIMENSION} dimensions, not {value}"
            )
        if provider is EmbeddingProvider.MPNET and value != MPNET_DIMENSION:
            raise ValueError(
                f"EMBEDDING_PROVIDER=mpnet makes {MPNET_DIMENSION} dimensions, not {value}"
            )
        return value

    @field_validator("embedding_model")
    @classmethod
    def _model_the_provider_has(cls, value: str | None, info: ValidationInfo) -> str | None:
        provider = info.data.get("embedding_provider")
        only = _ONLY_MODEL.get(provider) if isinstance(provider, EmbeddingProvider) else None
        if value and only is not None and value != only:
            raise ValueError(f"EMBEDDING_PROVIDER={provider} has one model, {only}")
        return value

    @field_validator("public_departments", mode="before")
    @classmethod
    def _split_departments(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if not is_timezone(value):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)")
        return value

    @field_validator("scheduler_episodes_cron", "retention_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from bot.cron import CronError, parse_cron

        try:
            parse_cron(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("web_public_url", "signin_slack_issuer", "signin_entra_issuer")
    @classmethod
    def _https_unless_loopback(cls, value: str | None) -> str | None:
        # Session cookies and authorization codes travel to these addresses: plain HTTP only
        # where it never leaves the machine.
        if value is None:
            return value
        parts = urllib.parse.urlsplit(value)
        if parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname)):
            return value.rstrip("/")
        raise ValueError("must be an https:// URL (http:// only on localhost)")

    @field_validator("signin_slack_client_id", "signin_entra_client_id")
    @classmethod
    def _public_url_for_signin(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and "web_public_url" in info.data and info.data["web_public_url"] is None:
            raise ValueError("needs WEB_PUBLIC_URL (where the provider sends people back to)")
        return value

    @field_validator("signin_slack_client_secret", "signin_entra_client_secret")
    @classmethod
    def _secret_for_signin(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        client_id = info.field_name.replace("_secret", "_id") if info.field_name else ""
        if value is None and info.data.get(client_id):
            raise ValueError(f"must be set when {client_id.upper()} is")
        return value

    @field_validator("signin_entra_issuer")
    @classmethod
    def _entra_issuer(cls, value: str | None, info: ValidationInfo) -> str | None:
        tenant = info.data.get("signin_entra_tenant_id")
        if value is None and tenant:
            return f"https://login.microsoftonline.com/{urllib.parse.quote(tenant)}/v2.0"
        if value is None and info.data.get("signin_entra_client_id"):
            raise ValueError("set SIGNIN_ENTRA_TENANT_ID (or the issuer itself)")
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value.lower() not in {"text", "json"}:
            raise ValueError("must be text or json")
        return value.lower()

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @property
    def data_dir(self) -> Path:
        return self.deskmate_data_dir.expanduser().resolve()

    @property
    def database(self) -> DatabaseConfig:
        """What storage needs from these settings to reach the database."""
        return DatabaseConfig(
            url=self.database_url.get_secret_value() if self.database_url else None,
            data_dir=self.data_dir,
            embedding_space=self.embedding_space,
            # Before the embedder was recorded, the default was `hash`: a database from then
            # holds hash vectors unless its operator chose another provider, which is then
            # taken to be the one still configured (wordllama and minilm did not exist yet).
            unrecorded_embedder=(
                (EmbeddingProvider.HASH.value, HASH_MODEL)
                if self.embedding_provider in _ONLY_MODEL
                and self.embedding_provider is not EmbeddingProvider.HASH
                else None
            ),
            pool_min_size=self.db_pool_min_size,
            pool_max_size=self.db_pool_max_size,
            pooler=self.database_pooler,
        )

    @property
    def embedding_model_name(self) -> str:
        """The model the embedder uses: EMBEDDING_MODEL, else the provider's default."""
        return self.embedding_model or DEFAULT_EMBEDDING_MODELS[self.embedding_provider]

    @property
    def embedding_space(self) -> EmbeddingSpace:
        """Provider, model and size of the vectors these settings make."""
        return EmbeddingSpace(
            self.embedding_provider.value, self.embedding_model_name, self.embedding_dimension
        )

    @property
    def llm_enabled(self) -> bool:
        return self.anthropic_api_key is not None

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None or self.slack_client_id is not None

    @property
    def teams_enabled(self) -> bool:
        return self.teams_client_id is not None or self.teams_anonymous_allowed

    @property
    def signin_enabled(self) -> bool:
        """A sign-in provider is configured (the web surface then asks off loopback)."""
        return bool(self.signin_slack_client_id or self.signin_entra_client_id)


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_timezone(name: str) -> bool:
    """True when `name` is an IANA time zone this machine knows."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def postgres_address_problem(url: str) -> str | None:
    """What is wrong with the hosts and ports of a postgresql:// URL (None when nothing is),
    checked as the driver will read them: several `host:port` may be given, comma-separated,
    an IPv6 address in brackets. The message never repeats the URL (it may hold a password)."""
    netloc = url.partition("://")[2].partition("/")[0].partition("?")[0]
    hosts = netloc.rpartition("@")[2]
    for host in hosts.split(","):
        if host.startswith("["):
            address, bracket, rest = host[1:].partition("]")
            if not bracket:
                return f"the IPv6 address [{address} has no closing ]"
            port = rest.removeprefix(":") if rest.startswith(":") else None
            if rest and port is None:
                return f"unexpected {rest!r} after the IPv6 address [{address}]"
        else:
            port = host.rpartition(":")[2] if ":" in host else None
        if port and not (port.isdigit() and 0 < int(port) <= 65535):
            return f"the port {port!r} is not a number between 1 and 65535"
    try:
        urllib.parse.urlsplit(url)  # what the driver parses the URL with
    except ValueError as exc:
        return str(exc)
    return None


def _variable_name(loc: tuple[int | str, ...]) -> str:
    field = str(loc[0]) if loc else "?"
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        return str(info.validation_alias.choices[0])
    return field.upper()


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read the settings, or raise ConfigError whose message is the one line to show.
    `overrides` are field values; pydantic validates them like the environment's."""
    if env_file is not None and not os.path.exists(env_file):
        env_file = None
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"invalid setting {_variable_name(error['loc'])}: {message}") from None
