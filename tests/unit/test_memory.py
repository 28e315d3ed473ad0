"""Memories, the typed commands: which messages are commands, and which are questions."""

from __future__ import annotations

import pytest

from bot.commands import FindDocs, Forget, Help, ListMemories, Remember, parse_command


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("remember that I manage the Berlin warehouse.", Remember("I manage the Berlin warehouse")),
        ("/deskmate remember my badge is 4411", Remember("my badge is 4411")),
        ("Please remember: I prefer email", Remember("I prefer email")),
        ("forget #12", Forget("#12")),
        ("forget that I like tea", Forget("I like tea")),
        ("memories", ListMemories()),
        ("What do you know about me?", ListMemories()),
        ("docs parental leave", FindDocs("parental leave")),
        ("help", Help()),
        ("How do I remember my password?", None),
        ("Can you forget about the meeting and tell me the travel policy?", None),
    ],
)
def test_parse_command(text: str, command: object) -> None:
    assert parse_command(text) == command
