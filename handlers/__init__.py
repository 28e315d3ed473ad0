"""Platform edges: Slack, Teams and the local web chat turn events into IncomingMessages and
send replies; each module's `install(app, runtime)` adds its routes, senders and hooks."""

from __future__ import annotations

from bot.app import Installer
from bot.settings import Settings


def installers(settings: Settings) -> list[Installer]:
    """The platform edges these settings turn on, in the order they are installed."""
    # The web chat is always installed: it decides itself, from the bind address and
    # WEBCHAT_TOKEN, whether it is on.
    from handlers.webchat import install as install_webchat

    found: list[Installer] = [install_webchat]
    if settings.slack_enabled:
        from handlers.slack import install as install_slack

        found.append(install_slack)
    if settings.teams_enabled:
        from handlers.teams import install as install_teams

        found.append(install_teams)
    return found
