"""The Prometheus rule file, checked and unit-tested by promtool (see tests/monitoring)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from maas.base.errors import MonitorUnavailableError
from maas.monitor.prometheus import PrometheusTools
from maas.monitor.rules import RuleOptions, alerts, render_rules

ROOT = Path(__file__).resolve().parents[2]
RULES = Path("deploy/monitoring/maas_rules.yml")
RULES_TEST = Path("tests/monitoring/rules_test.yml")


@pytest.fixture(scope="module")
def promtool() -> Path:
    try:
        return PrometheusTools.locate().promtool
    except MonitorUnavailableError as error:
        pytest.skip(str(error))


def run_promtool(promtool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def alert_tests() -> Iterator[dict[str, Any]]:
    """Every alert_rule_test case of the promtool test file."""
    document = yaml.safe_load((ROOT / RULES_TEST).read_text())
    for group in document["tests"]:
        yield from group.get("alert_rule_test") or []


def test_promtool_check_rules_succeeds_when_given_the_rule_file(promtool: Path) -> None:
    result = run_promtool(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_promtool_test_rules_succeeds_when_given_the_rules_test_file(promtool: Path) -> None:
    result = run_promtool(promtool, "test", "rules", str(RULES_TEST))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_rules_test_covers_every_alert_when_firing_and_when_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in alert_tests():
        (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {alert.name for alert in alerts(RuleOptions())}
    assert names - firing == set(), "alerts without a case where they fire"
    assert names - quiet == set(), "alerts without a case where they must not fire"
    assert (firing | quiet) - names == set(), "cases of alerts the rules do not have"


def test_rule_file_matches_rules_module_when_written_with_default_options() -> None:
    written = (ROOT / RULES).read_text()
    assert written == render_rules(RuleOptions()), f"{RULES} is stale: rewrite it from rules.py"
