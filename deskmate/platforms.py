"""Which platform edges a process installs, from its settings."""

from __future__ import annotations

from bot.settings import Settings
from handlers.http import Installer


def installers(settings: Settings) -> list[Installer]:
    """The platform edges these settings turn on, in the order they are installed."""
    # The web chat is always installed: it decides itself, from the bind address and
    # WEBCHAT_TOKEN, whether it is on. The Slack and Teams SDKs are imported only when on.
    from handlers import console, webchat

    # The console after the web chat: it uses the web chat's sign-in, when there is one.
    found: list[Installer] = [webchat.install, console.install]
    if settings.slack_enabled:
        from handlers import slack

        found.append(slack.install)
    if settings.teams_enabled:
        from handlers import teams

        found.append(teams.install)
    return found
