"""The command line: help everywhere, one-line errors, directory administration end to end."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import DESKMATE

COMMANDS = [
    [],
    ["serve"],
    ["migrate"],
    ["users"],
    ["users", "add"],
    ["users", "list"],
    ["users", "disable"],
    ["users", "enable"],
    ["channels"],
    ["channels", "map"],
    ["channels", "list"],
]


def deskmate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DESKMATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "deskmate")
def test_every_command_has_help(command: list[str]) -> None:
    result = deskmate(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: deskmate")
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
        (["serve", "--port", "http"], "'http' is not a port number"),
        (["serve", "--port", "70000"], "70000 is not between 0 and 65535"),
        (
            ["users", "add", "ana@example.com"],
            "the following arguments are required: --departments",
        ),
        (["users", "add", "ana@example.com", "--departments", "Sales Team"], "bad department name"),
        (
            ["channels", "map", "--platform", "irc", "--channel", "C1", "--department", "x"],
            "invalid choice: 'irc'",
        ),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args: list[str], expected: str) -> None:
    result = deskmate(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("deskmate")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_users_add_then_list(cli_env: dict[str, str]) -> None:
    added = deskmate(
        "users",
        "add",
        "Ana.Lopez@Example.com",
        "--departments",
        "sales,general",
        "--head-of",
        "sales",
        "--slack-id",
        "U123",
        "--tz",
        "Europe/Madrid",
        env=cli_env,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added ana.lopez@example.com (sales, general)"
    deskmate("users", "add", "bo@example.com", "--departments", "hr", "--super", env=cli_env)

    listing = deskmate("users", "list", env=cli_env)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.strip().splitlines()
    assert lines[0].split() == [
        "EMAIL",
        "NAME",
        "DEPARTMENTS",
        "HEAD",
        "OF",
        "ROLE",
        "STATUS",
        "IDENTITIES",
    ]
    assert lines[1].split() == [
        "ana.lopez@example.com",
        "Ana",
        "Lopez",
        "sales,general",
        "sales",
        "user",
        "active",
        "slack:U123",
    ]
    assert lines[2].split() == ["bo@example.com", "Bo", "hr", "-", "super", "active", "-"]


def test_users_add_again_updates_and_disable_marks_inactive(cli_env: dict[str, str]) -> None:
    deskmate("users", "add", "ana@example.com", "--departments", "sales", env=cli_env)
    again = deskmate("users", "add", "ana@example.com", "--departments", "hr", env=cli_env)
    assert again.stdout.strip() == "updated ana@example.com (hr)"
    disabled = deskmate("users", "disable", "ana@example.com", env=cli_env)
    assert disabled.stdout.strip() == "ana@example.com is now disabled"
    listing = deskmate("users", "list", env=cli_env).stdout
    assert "disabled" in listing.splitlines()[1]


def test_unknown_user_and_bad_values_are_one_line(cli_env: dict[str, str]) -> None:
    missing = deskmate("users", "disable", "nobody@example.com", env=cli_env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "deskmate users: no user with email nobody@example.com"
    bad_tz = deskmate(
        "users", "add", "a@example.com", "--departments", "x", "--tz", "Mars/Base", env=cli_env
    )
    assert bad_tz.returncode == 2
    assert bad_tz.stderr.strip().startswith("deskmate users: error: unknown time zone 'Mars/Base'")
    bad_email = deskmate("users", "add", "not-an-email", "--departments", "x", env=cli_env)
    assert bad_email.returncode == 2
    assert "is not an email address" in bad_email.stderr


def test_channels_map_and_list(cli_env: dict[str, str]) -> None:
    first = deskmate(
        "channels",
        "map",
        "--platform",
        "slack",
        "--channel",
        "C042",
        "--department",
        "sales",
        env=cli_env,
    )
    assert first.stdout.strip() == "slack channel C042 is now cleared for sales"
    again = deskmate(
        "channels",
        "map",
        "--platform",
        "slack",
        "--channel",
        "C042",
        "--department",
        "sales",
        env=cli_env,
    )
    assert again.stdout.strip() == "slack channel C042 was already cleared for sales"
    listing = deskmate("channels", "list", env=cli_env).stdout.strip().splitlines()
    assert listing[1].split()[:3] == ["slack", "C042", "sales"]


async def test_admin_actions_are_audited(cli_env: dict[str, str], database_url: str) -> None:
    import asyncpg

    deskmate("users", "add", "ana@example.com", "--departments", "sales", env=cli_env)
    deskmate("users", "add", "ana@example.com", "--departments", "hr", env=cli_env)
    deskmate(
        "channels",
        "map",
        "--platform",
        "web",
        "--channel",
        "#sales",
        "--department",
        "sales",
        env=cli_env,
    )
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT action, target_id, before::text, after::text FROM audit_log ORDER BY id"
        )
    finally:
        await conn.close()
    assert [r["action"] for r in rows] == ["user.add", "user.update", "channel.clear"]
    assert rows[0]["before"] is None
    assert '"sales"' in rows[1]["before"] and '"hr"' in rows[1]["after"]
    assert rows[0]["target_id"] == "ana@example.com"
