"""The alert rules and the rendered Prometheus config, checked and unit-tested by promtool.

promtool comes from Debian's `prometheus` package, unpacked (not installed) by
scripts/ensure-promtool.sh into the setup cache; `make setup` runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.monitoring_cfg import Members, render_prometheus

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "images" / "monitoring" / "rules" / "pgha.yml"
CASES = ROOT / "tests" / "unit" / "alerts" / "pgha_test.yml"
CACHE = Path(os.environ.get("PGHA_CACHE", Path.home() / ".cache" / "pgha"))


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or str(CACHE / "promtool" / "usr" / "bin" / "promtool")
    assert Path(found).exists(), "promtool is missing: run scripts/ensure-promtool.sh"
    return found


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=120)


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _without_annotations(override: dict[str, Any] | None = None) -> str:
    """The rules file with annotations dropped (the cases test expressions, `for` and
    labels), and with `override` in place of the alert of the same name."""
    document = yaml.safe_load(RULES.read_text())
    for group in document["groups"]:
        if override is not None:
            group["rules"] = [
                dict(override) if r.get("alert") == override["alert"] else r for r in group["rules"]
            ]
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return str(yaml.safe_dump(document, sort_keys=False))


def _test_rules(promtool: str, tmp_path: Path, rules_text: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yml").write_text(rules_text)
    shutil.copy(CASES, tmp_path / "pgha_test.yml")
    return _run(promtool, "test", "rules", "pgha_test.yml", cwd=tmp_path)


def test_the_rules_file_passes_promtool_check_rules(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_for_a_severity_and_a_summary() -> None:
    for alert in _alerts():
        assert "for" in alert, alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert alert["annotations"]["summary"].strip(), alert["alert"]
        assert alert["annotations"]["description"].strip(), alert["alert"]


def test_every_alert_has_a_case_that_fires_it_and_one_that_does_not() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(CASES.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert names - fires == set()
    assert names - silent == set()


def test_promtool_test_rules_passes_every_case(promtool: str, tmp_path: Path) -> None:
    result = _test_rules(promtool, tmp_path, _without_annotations())
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cases_catch_an_alert_that_lost_its_for(promtool: str, tmp_path: Path) -> None:
    # Proof the cases can fail: without `for`, a node down for one scrape would page someone.
    broken = {**next(a for a in _alerts() if a["alert"] == "PostgresNodeDown"), "for": "0s"}
    result = _test_rules(promtool, tmp_path, _without_annotations(broken))
    assert result.returncode != 0
    assert "a node down for less than 10 s does not fire yet" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "members",
    [
        Members(nodes=["pg-0", "pg-1"], api_instances=["api-1", "api-2"]),
        Members(
            nodes=["pg-0", "pg-1", "pg-2"],
            api_instances=["api-1"],
            patroni=True,
            etcd=["etcd-0", "etcd-1", "etcd-2"],
            redis=["redis-0", "redis-1"],
            sentinels=["sentinel-0", "sentinel-1", "sentinel-2"],
        ),
    ],
    ids=["manual-single", "patroni-sentinel"],
)
def test_the_rendered_prometheus_config_passes_promtool_check_config(
    promtool: str, tmp_path: Path, members: Members
) -> None:
    config = yaml.safe_load(render_prometheus("pgha-t", members))
    # The image's rules path does not exist on the host: check the repository's file.
    shutil.copy(RULES, tmp_path / "pgha.yml")
    config["rule_files"] = [str(tmp_path / "pgha.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = _run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
