"""`python -m bot` is the `deskmate` command."""

from bot.cli import run

run()
