"""`deskmate schedule …` as a real process: help everywhere, one-line errors, the whole cycle."""

from __future__ import annotations

import subprocess

import pytest

from storage.database import Database
from tests.support import DESKMATE
from tests.support.factories import add_user

ACTIONS = ["add", "list", "pause", "resume", "delete", "run-now", "runs"]


def deskmate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DESKMATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("action", [None, *ACTIONS])
def test_every_schedule_command_has_help(action: str | None) -> None:
    result = deskmate("schedule", *([action] if action else []), "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: deskmate schedule")


ADD = ["schedule", "add", "--platform", "slack", "--channel", "C123"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([*ADD, "--text", "hi"], "one of the arguments --at --cron is required"),
        ([*ADD, "--cron", "0 9 * * *"], "arguments --text --prompt --digest is required"),
        ([*ADD, "--at", "2099-01-01T09:00", "--cron", "0 9 * * *", "--text", "x"],
         "not allowed with argument"),
        (["schedule", "pause", "seven"], "'seven' is not a positive number"),
        (["schedule", "add", "--platform", "irc", "--channel", "C1"], "invalid choice: 'irc'"),
    ],
)  # fmt: skip
def test_bad_arguments_give_one_line_and_exit_2(args: list[str], expected: str) -> None:
    result = deskmate(*args)
    assert result.returncode == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1


async def test_add_list_pause_resume_run_now_delete(cli_env: dict[str, str], db: Database) -> None:
    await add_user(db, "ana@example.com", ["sales"])
    # Slack is on for the deskmate these schedules are for.
    cli_env = {**cli_env, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret"}
    added = deskmate(*ADD, "--cron", "0 9 * * 1-5", "--tz", "Europe/Berlin", "--prompt",
                     "What changed in the discount policy?", "--as", "ana@example.com",
                     env=cli_env)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added schedule 1: prompt “What changed in the discount")
    assert "slack:C123, cron '0 9 * * 1-5' Europe/Berlin, next " in added.stdout
    assert added.stdout.rstrip().endswith(("CET", "CEST"))

    listing = deskmate("schedule", "list", env=cli_env)
    assert listing.stdout.splitlines()[0].split() == [
        "ID", "STATUS", "WHAT", "TARGET", "WHEN", "NEXT", "SENT", "FAILED", "LAST",
    ]  # fmt: skip
    assert listing.stdout.splitlines()[1].startswith("1   active")

    assert deskmate("schedule", "pause", "1", env=cli_env).stdout == "schedule 1 is now paused\n"
    again = deskmate("schedule", "pause", "1", env=cli_env)
    assert (again.returncode, again.stderr) == (
        2, "deskmate schedule: error: schedule 1 is paused; it cannot pause\n",
    )  # fmt: skip
    assert "is now active, next " in deskmate("schedule", "resume", "1", env=cli_env).stdout
    queued = deskmate("schedule", "run-now", "1", env=cli_env)
    assert queued.stdout.startswith("queued run 1 of schedule 1")
    runs = deskmate("schedule", "runs", "1", env=cli_env).stdout.splitlines()
    assert runs[1].split()[3:6] == ["pending", "(run-now)", "0"]
    assert deskmate("schedule", "delete", "1", env=cli_env).stdout == "schedule 1 is now deleted\n"
    assert "(no schedules yet" in deskmate("schedule", "list", env=cli_env).stdout
    assert "deleted" in deskmate("schedule", "list", "--all", env=cli_env).stdout
    missing = deskmate("schedule", "resume", "9", env=cli_env)
    assert (missing.returncode, missing.stderr) == (1, "deskmate schedule: no schedule 9\n")

    async with db.pool.acquire() as conn:
        audit = await conn.fetch("SELECT actor, action, before, after FROM audit_log "
                                 "WHERE target_type = 'schedule' ORDER BY id")  # fmt: skip
    assert [a["action"] for a in audit] == [
        "schedule.add", "schedule.pause", "schedule.resume", "schedule.run_now", "schedule.delete",
    ]  # fmt: skip
    assert all(a["actor"].startswith("cli:") for a in audit)
    assert audit[1]["before"]["status"] == "active" and audit[1]["after"]["status"] == "paused"
    assert audit[0]["after"]["created_by"] == "ana@example.com"
