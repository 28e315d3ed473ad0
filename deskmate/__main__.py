"""`python -m deskmate` is the `deskmate` command."""

from deskmate.cli import run

run()
