"""deskmate's platform-neutral core: settings, the conversation service (session → retrieve →
answer → record), the LLM client, embeddings, prompts, and the rules behind directory,
schedules, alerts and digests. It imports only storage/; the platforms, the scheduler loop and
the process that wires them all sit above it."""

__version__ = "0.1.0"
