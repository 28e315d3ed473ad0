"""The README is the operator's manual: every setting and command must be in it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices

from bot.settings import Settings
from deskmate.cli import build_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")


def _variable(name: str) -> str:
    alias = Settings.model_fields[name].validation_alias
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else name.upper()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`{_variable(name)}`" in README


def test_every_command_is_documented() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    missing = [name for name in commands if f"deskmate {name}" not in README]
    assert missing == []
