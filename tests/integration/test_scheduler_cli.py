"""`deskmate schedule add` in this process (the same `main` the console script runs) against this
test's database: invalid schedules are refused in one sentence (no Slack or Teams credentials
are set here, so those platforms are off)."""

from __future__ import annotations

import pytest

from deskmate.cli import main

ADD = ["schedule", "add", "--platform", "slack", "--channel", "C123"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--cron", "0 9 * *", "--text", "x"], "bad cron expression: '0 9 * *' needs five fields"),
        (["--cron", "0 9 * * 1-5", "--tz", "Mars/Olympus", "--text", "x"],
         "unknown time zone 'Mars/Olympus'"),
        (["--at", "2001-01-01T09:00", "--text", "x"], "2001-01-01T09:00 is in the past"),
        (["--at", "tomorrow", "--text", "x"], "'tomorrow' is not an ISO time"),
        (["--at", "2099-01-01T09:00", "--prompt", "Any news?"], "a prompt schedule needs --as"),
        (["--at", "2099-01-01T09:00", "--prompt", "remember I like tea", "--as", "a@example.com"],
         "a scheduled prompt must be a question"),
        (["--cron", "0 9 * * *", "--digest", "team:sales"], "'team:sales' is not a digest scope"),
        (["--cron", "0 9 * * *", "--digest", "department:sales"],
         "unknown department 'sales': no document, person or channel belongs to it"),
        (["--at", "2099-01-01T09:00", "--text", "x"],
         "slack is not configured in this deskmate, so nothing would deliver this schedule: "
         "set SLACK_BOT_TOKEN"),
    ],
)  # fmt: skip
def test_invalid_schedules_are_refused_in_one_sentence(
    args: list[str], expected: str, cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # In-process (the same `main` the console script runs): these need no fresh interpreter.
    for name in ("DATABASE_URL", "DESKMATE_DATA_DIR", "EMBEDDING_PROVIDER", "EMBEDDING_DIMENSION"):
        monkeypatch.setenv(name, cli_env[name])
    assert main([*ADD, *args]) == 2
    error = capsys.readouterr().err
    assert error.startswith("deskmate schedule: error: ") and expected in error
    assert len(error.strip().splitlines()) == 1
