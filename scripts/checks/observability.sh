#!/usr/bin/env bash
# The dashboard and alerts that ship with keyhook (deploy/observability):
# the rules load (`promtool check rules`), every alert fires when it should
# and stays silent when it should not (`promtool test rules`), and the
# dashboard is a valid Grafana dashboard (check_dashboard.py). That every
# metric they name is exported, and every panel's query answers, is tested
# against a real Prometheus and keyhook by tests/process/observability.rs.
# promtool comes with Debian's `prometheus` package (scripts/test installs it).
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v promtool >/dev/null || {
    echo "observability: promtool is not installed (apt-get install prometheus; scripts/test does)" >&2
    exit 1
}

echo "-- promtool check rules"
promtool check rules deploy/observability/keyhook-alerts.yaml
echo "-- promtool test rules"
promtool test rules deploy/observability/keyhook-alerts.test.yaml
echo "-- Grafana dashboard"
python3 deploy/observability/check_dashboard.py
# Every alert has a unit test that fires it and one that keeps it silent.
python3 - <<'PY'
import sys, yaml
rules = yaml.safe_load(open("deploy/observability/keyhook-alerts.yaml"))["groups"]
alerts = {r["alert"]: r for g in rules for r in g["rules"] if "alert" in r}
tests = yaml.safe_load(open("deploy/observability/keyhook-alerts.test.yaml"))["tests"]
fired, silent = set(), set()
for test in tests:
    for check in test.get("alert_rule_test", []):
        (fired if check.get("exp_alerts") else silent).add(check["alertname"])
bad = []
for name, rule in alerts.items():
    for key in ("summary", "description", "runbook"):
        if not rule.get("annotations", {}).get(key, "").strip():
            bad.append(f"{name}: no `{key}` annotation")
    if name not in fired:
        bad.append(f"{name}: no unit test where it fires")
    if name not in silent:
        bad.append(f"{name}: no unit test where it stays silent")
for line in bad:
    print(f"keyhook-alerts: {line}")
sys.exit(1 if bad else 0)
PY
echo "observability: OK"
