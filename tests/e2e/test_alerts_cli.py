"""`deskmate alerts …`: the real command against this test's database."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import DESKMATE


def deskmate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DESKMATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("action", ["add", "list", "enable", "disable", "ack", "history"])
def test_alerts_help(action: str) -> None:
    result = subprocess.run(
        [*DESKMATE, "alerts", action, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: deskmate alerts")


def with_slack(env: dict[str, str]) -> dict[str, str]:
    return env | {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret"}


def test_add_list_disable_and_history(cli_env: dict[str, str]) -> None:
    added = deskmate(
        with_slack(cli_env),
        "alerts",
        "add",
        "LLM errors",
        "--metric",
        "llm_error_rate",
        "--condition",
        "gt",
        "--threshold",
        "0.05",
        "--for",
        "5",
        "--severity",
        "critical",
        "--notify",
        "slack:C-OPS",
        "--notify",
        "web:#ops",
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == (
        "added alert rule 'LLM errors': llm_error_rate > 5.0%, notifying slack:C-OPS, web:#ops"
    )
    listing = deskmate(cli_env, "alerts", "list").stdout.splitlines()
    assert listing[0].split()[:3] == ["NAME", "METRIC", "CONDITION"]
    assert listing[1].split()[:5] == ["LLM", "errors", "llm_error_rate", ">", "5.0%"]
    disabled = deskmate(cli_env, "alerts", "disable", "LLM errors")
    assert disabled.stdout.strip() == "alert rule 'LLM errors' is now disabled"
    history = deskmate(cli_env, "alerts", "history")
    assert history.returncode == 0 and history.stdout.startswith("ID")


def test_bad_rules_get_one_line(cli_env: dict[str, str]) -> None:
    wrong_channel = deskmate(
        cli_env,
        "alerts",
        "add",
        "x",
        "--metric",
        "query_volume",
        "--condition",
        "lt",
        "--threshold",
        "1",
        "--notify",
        "irc:#ops",
    )
    assert wrong_channel.returncode == 2
    assert wrong_channel.stderr.strip() == (
        "deskmate alerts: error: unknown platform in 'irc:#ops': use slack:, teams: or web:"
    )
    writes = deskmate(
        cli_env,
        "alerts",
        "add",
        "y",
        "--metric",
        "custom_sql",
        "--condition",
        "gt",
        "--threshold",
        "1",
        "--sql",
        "DELETE FROM query_log",
    )
    assert writes.returncode == 2
    assert writes.stderr.strip().startswith(
        "deskmate alerts: error: custom_sql rejected: the query tries to write"
    )
    unknown = deskmate(cli_env, "alerts", "ack", "999")
    assert (
        unknown.returncode == 1
        and unknown.stderr.strip() == "deskmate alerts: no alert with id 999"
    )


def test_a_rule_that_could_escape_its_sandbox_is_refused_with_the_reason(
    cli_env: dict[str, str],
) -> None:
    refused = deskmate(
        cli_env,
        "alerts",
        "add",
        "peek",
        "--metric",
        "custom_sql",
        "--condition",
        "gt",
        "--threshold",
        "0",
        "--sql",
        "SELECT count(*) FROM query_log WHERE set_config('deskmate.tenant_id', '2', true) = '2'",
    )
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "deskmate alerts: error: custom_sql rejected: set_config() is not allowed in alert "
        "queries: use aggregates, arithmetic and date functions such as count, avg, date_trunc"
    )
    fine = deskmate(
        cli_env,
        "alerts",
        "add",
        "volume",
        "--metric",
        "custom_sql",
        "--condition",
        "gt",
        "--threshold",
        "100",
        "--sql",
        "SELECT count(*) FROM query_log WHERE created_at > $2 AND created_at <= $3",
        "--notify",
        "web:#ops",
    )
    assert fine.returncode == 0, fine.stderr


def test_a_rule_for_a_platform_that_is_off_is_refused(cli_env: dict[str, str]) -> None:
    refused = deskmate(
        cli_env,
        "alerts",
        "add",
        "x",
        "--metric",
        "query_volume",
        "--condition",
        "lt",
        "--threshold",
        "1",
        "--notify",
        "teams:19:ops",
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith(
        "deskmate alerts: error: teams is not configured in this deskmate, so nothing would "
        "post to teams:19:ops: set "
    )
