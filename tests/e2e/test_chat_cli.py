"""`deskmate demo` and `deskmate chat`: the real commands, the real pipeline, offline mode."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import DESKMATE


def deskmate(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DESKMATE, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def demo_env(cli_env: dict[str, str]) -> dict[str, str]:
    seeded = deskmate(cli_env, "demo")
    assert seeded.returncode == 0, seeded.stderr
    assert seeded.stdout.startswith(
        "demo organisation ready: 5 users, 4 web channels, 12 handbooks"
    )
    return cli_env


def test_demo_is_idempotent(demo_env: dict[str, str]) -> None:
    again = deskmate(demo_env, "demo")
    assert "12 handbooks (0 loaded or refreshed)" in again.stdout
    once = deskmate(demo_env, "demo", "--once")
    assert once.stdout.strip() == "the demo organisation is already there"
    users = deskmate(demo_env, "users", "list").stdout
    assert users.count("@northwind.example") == 5


def test_chat_answers_offline_with_sources(demo_env: dict[str, str]) -> None:
    session = deskmate(
        demo_env,
        "chat",
        "--as",
        "hana.schmidt@northwind.example",
        stdin="How many weeks of parental leave does the primary carer get?\nmemories\nexit\n",
    )
    assert session.returncode == 0, session.stderr
    out = session.stdout
    assert out.startswith(
        "Talking as Hana Schmidt <hana.schmidt@northwind.example> in a direct "
        "message, offline mode."
    )
    assert "No language model is configured" in out
    assert "16 weeks" in out
    assert "sources: [1] Leave Policy › Parental leave (hr)" in out
    assert "Runs payroll and parental-leave requests for Germany" in out  # her demo memory


def test_chat_respects_access_in_dms_and_channels(demo_env: dict[str, str]) -> None:
    question = "What is the salary band for level L5 engineers?\n"
    sales_dm = deskmate(demo_env, "chat", "--as", "alex.martin@northwind.example", stdin=question)
    assert "Salary Bands" not in sales_dm.stdout  # sales may not read hr
    hr_dm = deskmate(demo_env, "chat", "--as", "hana.schmidt@northwind.example", stdin=question)
    assert "Salary Bands 2026" in hr_dm.stdout
    hr_in_sales = deskmate(
        demo_env,
        "chat",
        "--as",
        "hana.schmidt@northwind.example",
        "--channel",
        "#sales",
        stdin=question,
    )
    assert "Salary Bands" not in hr_in_sales.stdout  # #sales is not cleared for hr
    assert "in #sales" in hr_in_sales.stdout


def test_chat_with_an_unknown_user_is_one_line(demo_env: dict[str, str]) -> None:
    result = deskmate(demo_env, "chat", "--as", "nobody@example.com", stdin="hi\n")
    assert result.returncode == 1
    assert result.stderr.strip() == "deskmate chat: no active user with email nobody@example.com"


def test_chat_on_an_empty_directory_says_what_to_do(cli_env: dict[str, str]) -> None:
    result = deskmate(cli_env, "chat", stdin="hi\n")
    assert result.returncode == 2
    assert "run 'deskmate demo' or 'deskmate users add'" in result.stderr
