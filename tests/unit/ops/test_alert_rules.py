"""The PrometheusRule: valid for promtool, each alert behaving as tests/unit/ops/alert-tests.yaml
specifies (firing and not firing), each with a severity, a summary and a runbook section."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from tests.unit.ops.catalog import REPO
from tests.unit.ops.promtool import alert_rules, run_promtool, write_rule_file

ALERT_TESTS = Path(__file__).with_name("alert-tests.yaml")
RUNBOOKS = REPO / "docs" / "operations" / "runbooks.md"
RUNBOOK_URL = re.compile(r"^https://\S+/docs/operations/runbooks\.md#(?P<anchor>[a-z0-9-]+)$")
SEVERITIES = frozenset({"critical", "warning"})


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    checked = run_promtool("check", "rules", str(write_rule_file(tmp_path)), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_alerts_fire_and_stay_quiet_as_the_promtool_unit_tests_expect(tmp_path: Path) -> None:
    write_rule_file(tmp_path)
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    tested = run_promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_unit_tests_catch_an_alert_that_does_not_fire(tmp_path: Path) -> None:
    """The harness itself can fail: with one alert's threshold out of reach its test breaks."""
    rule_file = write_rule_file(tmp_path)
    rules = rule_file.read_text("utf-8")
    assert "> 5000" in rules
    rule_file.write_text(rules.replace("> 5000", "> 50000"), "utf-8")
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    tested = run_promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0
    assert "alertname: CasewireOutboxBacklog" in tested.stdout + tested.stderr


def test_every_alert_is_tested_both_firing_and_not_firing() -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text("utf-8"))["tests"]
    checks = [check for case in cases for check in case.get("alert_rule_test", [])]
    fires = {check["alertname"] for check in checks if check.get("exp_alerts")}
    quiet = {check["alertname"] for check in checks if not check.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested staying quiet"


def runbook_anchors() -> set[str]:
    """GitHub's anchors for the runbook's headings: lower case, punctuation out, spaces to -."""
    headings = re.findall(r"^#{2,3} (.+)$", RUNBOOKS.read_text("utf-8"), flags=re.MULTILINE)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings
    }


def test_every_alert_has_a_severity_a_summary_and_its_own_runbook_section() -> None:
    anchors = runbook_anchors()
    seen: set[str] = set()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name
        url = RUNBOOK_URL.match(rule["annotations"]["runbook_url"])
        assert url is not None, f"{name}: runbook_url must point into runbooks.md"
        assert url["anchor"] == name.lower(), f"{name}: runbook_url must point at its own section"
        assert url["anchor"] in anchors, (
            f"{name}: docs/operations/runbooks.md has no section {name}"
        )
        seen.add(url["anchor"])
    assert len(seen) == len(alert_rules())
