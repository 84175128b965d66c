#!/usr/bin/env python3
"""Checks keyhook-dashboard.json as Grafana imports it (no Grafana runs
here): the dashboard fields an import needs, every panel placed on the grid
with a unique id, a Prometheus data source from the `datasource` template
variable, and queries; every query names only keyhook's metrics (or
Prometheus' own functions). Each query is also run against a real Prometheus
scraping a real keyhook by tests/process/observability.rs.

Prints one line per finding and exits 1 if there is any.
"""

from __future__ import annotations

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
findings: list[str] = []


def finding(where: str, message: str) -> None:
    findings.append(f"keyhook-dashboard.json: {where}: {message}")


def check_datasource(where: str, ds: object, variables: set[str]) -> None:
    if not isinstance(ds, dict) or ds.get("type") != "prometheus":
        finding(where, f"datasource {ds!r} is not a Prometheus data source")
        return
    uid = str(ds.get("uid", ""))
    if not (uid.startswith("${") and uid.endswith("}") and uid[2:-1] in variables):
        finding(where, f"datasource uid {uid!r} is not a template variable (importable anywhere)")


def main() -> int:
    path = HERE / "keyhook-dashboard.json"
    try:
        dash = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        print(f"{path}: {err}")
        return 1
    for field, kind in [("uid", str), ("title", str), ("schemaVersion", int), ("panels", list),
                        ("templating", dict), ("time", dict), ("tags", list)]:
        if not isinstance(dash.get(field), kind):
            finding("dashboard", f"`{field}` missing or not a {kind.__name__}")
    if dash.get("id") not in (None,):
        finding("dashboard", "`id` must be null: Grafana assigns it at import")
    if isinstance(dash.get("uid"), str) and not (0 < len(dash["uid"]) <= 40):
        finding("dashboard", "`uid` must be 1 to 40 characters")
    if isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] < 36:
        finding("dashboard", "schemaVersion older than 36 (Grafana 9)")
    variables = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    ds_vars = [v for v in dash.get("templating", {}).get("list", []) if v.get("type") == "datasource"]
    if not any(v.get("query") == "prometheus" for v in ds_vars):
        finding("templating", "no `datasource` variable of Prometheus data sources")
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            check_datasource(f"variable {var.get('name')}", var.get("datasource"), variables)
    ids: set[int] = set()
    cells: dict[tuple[int, int], int] = {}
    for i, panel in enumerate(dash.get("panels", [])):
        where = f"panel {i} ({panel.get('title', 'untitled')})"
        for field in ("id", "type", "title", "gridPos", "targets", "datasource"):
            if field not in panel:
                finding(where, f"`{field}` missing")
        pid = panel.get("id")
        if not isinstance(pid, int):
            finding(where, "`id` is not an integer")
        elif pid in ids:
            finding(where, f"id {pid} used twice")
        else:
            ids.add(pid)
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            finding(where, "gridPos needs integer x, y, w, h")
        else:
            if grid["x"] < 0 or grid["w"] < 1 or grid["x"] + grid["w"] > 24 or grid["h"] < 1:
                finding(where, f"gridPos {grid} is off Grafana's 24-column grid")
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    if (x, y) in cells:
                        finding(where, f"overlaps panel id {cells[(x, y)]}")
                        break
                    cells[(x, y)] = pid
                else:
                    continue
                break
        check_datasource(where, panel.get("datasource"), variables)
        targets = panel.get("targets") or []
        if not targets:
            finding(where, "no targets")
        ref_ids = set()
        for target in targets:
            expr = target.get("expr", "")
            if not isinstance(expr, str) or not expr.strip():
                finding(where, "a target without `expr`")
            elif "keyhook_" not in expr:
                finding(where, f"query names no keyhook metric: {expr}")
            if target.get("refId") in ref_ids or not target.get("refId"):
                finding(where, "targets need unique refIds")
            ref_ids.add(target.get("refId"))
            check_datasource(f"{where} target {target.get('refId')}", target.get("datasource"), variables)
    for line in findings:
        print(line)
    if not findings:
        print(f"keyhook-dashboard.json: {len(ids)} panels, OK")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
