"""The Grafana dashboard and the alert rules only name metrics that Liftoff exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.registry import REGISTRY

import app.ops.metrics  # noqa: F401  (registers the metrics)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("liftoff_"):
            names.add(family.name)
    return names


def named_in(text: str) -> set[str]:
    found = set()
    for name in re.findall(r"liftoff_[a-z_]+", text):
        for suffix in SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        found.add(name)
    return found


def test_alert_rules_name_exported_metrics_and_have_runbooks() -> None:
    text = (DEPLOY / "prometheus-alerts.yml").read_text()
    rules = yaml.safe_load(text)["groups"][0]["rules"]
    assert len(rules) >= 5
    assert named_in(text) <= exported(), named_in(text) - exported()
    readme = (DEPLOY.parent / "README.md").read_text().lower()
    for rule in rules:
        assert f"#### {rule['alert'].lower()}" in readme, f"no runbook for {rule['alert']}"


def test_dashboard_names_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    assert named_in(exprs) <= exported(), named_in(exprs) - exported()
    assert len(dashboard["panels"]) >= 10
