"""deskmate's platform-neutral core: settings, CLI, HTTP app, conversation service."""

__version__ = "0.1.0"
