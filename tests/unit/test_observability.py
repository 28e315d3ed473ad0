"""What an operator builds on: every metric documented, the shipped dashboard and alert rules
load and use only metrics deskmate serves, and log lines in both formats carry request ids."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
import yaml

from bot import logs, metrics
from bot.errors import ConfigError
from bot.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "metrics.md").read_text("utf-8")
_METRIC = re.compile(r"\b(?:deskmate|process|python)_[a-z_]+")
_SUFFIXES = ("_bucket", "_count", "_sum")


def served() -> set[str]:
    """The names of what /metrics serves (a counter's with `_total`, an info's with `_info`)."""
    names = set()
    for family in metrics.REGISTRY.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
    return names


def used_in(text: str) -> set[str]:
    names = set()
    for name in _METRIC.findall(text):
        for suffix in _SUFFIXES:
            name = name.removesuffix(suffix)
        names.add(name)
    return names


def test_every_metric_is_documented() -> None:
    assert {f"`{name}`" for name in served() if f"`{name}`" not in DOC} == set()


def test_the_documentation_names_no_metric_that_is_not_served() -> None:
    assert used_in(DOC) - served() == set()


def test_the_alert_rules_load_and_use_served_metrics() -> None:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text())
    [group] = rules["groups"]
    names = [rule["alert"] for rule in group["rules"]]
    assert len(names) == len(set(names))
    for rule in group["rules"]:
        assert rule["expr"] and rule["annotations"]["summary"], rule["alert"]
        assert used_in(rule["expr"]) - served() == set(), rule["alert"]
        assert f"`{rule['alert']}`" in DOC, rule["alert"]
    assert {"DeskmateAnswerErrors", "DeskmateLLMSlow", "DeskmatePoolSaturated",
            "DeskmateSchedulerLag", "DeskmateSweeperResuming"} <= set(names)  # fmt: skip


def test_the_dashboard_loads_and_uses_served_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "deskmate.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    expressions = [t["expr"] for p in panels for t in p["targets"]]
    assert used_in("\n".join(expressions)) - served() == set()
    # Every metric of deskmate's own is on a panel.
    ours = {name for name in served() if name.startswith("deskmate_")}
    assert ours - used_in("\n".join(expressions)) == set()


def _record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("deskmate.test", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_a_json_line_has_the_request_id_and_the_lines_own_fields() -> None:
    written = io.StringIO()
    handler = logs.handler("json", written)
    with logs.request_scope("req-1"):
        handler.handle(_record("hello %s", "there", reference="ab12cd34", where="http:/x"))
    handler.handle(_record("outside"))
    inside, outside = (json.loads(line) for line in written.getvalue().splitlines())
    assert inside["message"] == "hello there"
    assert (inside["level"], inside["logger"]) == ("WARNING", "deskmate.test")
    assert (inside["request_id"], inside["reference"], inside["where"]) == (
        "req-1",
        "ab12cd34",
        "http:/x",
    )
    assert inside["time"].endswith("+00:00")
    assert outside["request_id"] is None


def test_a_json_line_keeps_a_traceback_on_one_line() -> None:
    written = io.StringIO()
    try:
        raise ValueError("bad\nvalue")
    except ValueError as exc:
        record = _record("failed")
        record.exc_info = (type(exc), exc, exc.__traceback__)
    logs.handler("json", written).handle(record)
    [line] = written.getvalue().splitlines()
    assert "ValueError: bad\nvalue" in json.loads(line)["exception"]


def test_a_text_line_ends_with_its_request_id_before_any_traceback() -> None:
    written = io.StringIO()
    handler = logs.handler("text", written)
    handler.handle(_record("outside"))
    with logs.request_scope("req-2"):
        handler.handle(_record("inside"))
    outside, inside = written.getvalue().splitlines()
    assert outside.endswith("WARNING deskmate.test: outside")
    assert inside.endswith("WARNING deskmate.test: inside [request req-2]")


@pytest.mark.parametrize(
    ("header", "kept"),
    [("lb-7f3a.42", True), ("Root=1-67891233-abcdef012345678912345678", True), (None, False),
     ("", False), ("x" * 129, False), ("bad id", False), ("a\nb", False), ("-leading", False)],
)  # fmt: skip
def test_only_a_sane_incoming_request_id_is_kept(header: str | None, kept: bool) -> None:
    request_id = logs.request_id_from(header)
    assert (request_id == header) is kept
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,127}", request_id)


def test_log_format_is_text_or_json() -> None:
    assert load_settings(env_file=None).log_format == "text"
    assert load_settings(env_file=None, log_format="JSON").log_format == "json"
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        load_settings(env_file=None, log_format="xml")
    with pytest.raises(ValueError, match="text, json"):
        logs.handler("xml")
