"""The embedder EMBEDDING_PROVIDER asks for, built from the settings."""

from __future__ import annotations

from pydantic import SecretStr

from bot.embedding_providers import OpenAICompatibleEmbedder, VoyageEmbedder
from bot.embeddings import Embedder, EmbeddingError, HashEmbedder, LocalEmbedder
from bot.mpnet import MPNetEmbedder
from bot.settings import EmbeddingProvider, Settings
from bot.static_embeddings import MiniLMEmbedder, WordLlamaEmbedder


def create_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for, or EmbeddingError naming the setting that is missing.

    Its model is `settings.embedding_model_name`, the one the database records."""
    provider = settings.embedding_provider
    dimension = settings.embedding_dimension
    if provider is EmbeddingProvider.WORDLLAMA:
        return WordLlamaEmbedder(dimension)
    if provider is EmbeddingProvider.MINILM:
        return MiniLMEmbedder(dimension)
    if provider is EmbeddingProvider.MPNET:
        # Its model is unpacked from the wheels into the data directory on first use.
        return MPNetEmbedder(dimension, settings.data_dir / "models")
    if provider is EmbeddingProvider.HASH:
        return HashEmbedder(dimension)
    model, base_url = settings.embedding_model_name, settings.embedding_base_url
    if provider is EmbeddingProvider.VOYAGE:
        key = _present(settings.voyage_api_key)
        if key is None:
            raise EmbeddingError("EMBEDDING_PROVIDER=voyage needs VOYAGE_API_KEY to be set")
        return VoyageEmbedder(dimension=dimension, api_key=key, model=model, base_url=base_url)
    if provider is EmbeddingProvider.OPENAI:
        key = _present(settings.openai_api_key)
        # Without a base URL we would call api.openai.com, which is pointless without a key.
        if base_url is None and key is None:
            raise EmbeddingError(
                "EMBEDDING_PROVIDER=openai needs EMBEDDING_BASE_URL (an OpenAI-compatible "
                "server) or OPENAI_API_KEY (for api.openai.com)"
            )
        return OpenAICompatibleEmbedder(
            dimension=dimension, api_key=key, model=model, base_url=base_url
        )
    if provider is EmbeddingProvider.LOCAL:
        return LocalEmbedder(dimension=dimension, model=model)
    raise EmbeddingError(f"embedding provider {provider.value!r} is not available")


def _present(secret: SecretStr | None) -> SecretStr | None:
    # `VOYAGE_API_KEY=` in a .env file arrives as an empty secret; that is no key at all.
    return secret if secret is not None and secret.get_secret_value() else None
