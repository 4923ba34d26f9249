"""The Grafana dashboards are importable (one datasource input, unique panel ids, every panel on
the grid) and every PromQL expression in them is accepted by a real Prometheus; the metric names
they use are the ones the exchange and the exporter expose."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import ROOT

from chaoslab.observe import exporter as exporter_module

from .conftest import Prometheus

GRAFANA = ROOT / "examples" / "exchange" / "grafana"
FUNCTIONS = {"sum", "rate", "histogram_quantile", "clamp_min", "vector", "by", "le", "or", "bool"}


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(GRAFANA.glob("*.json"))}


def exprs(d: dict[str, Any]) -> list[str]:
    out = [t["expr"] for p in d["panels"] for t in p["targets"]]
    out += [a["expr"] for a in d["annotations"]["list"] if "expr" in a]
    return out


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\[[^]]*\]", "", expr)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {
        n
        for n in names
        if n not in FUNCTIONS
        and not re.fullmatch(r"e\d*", n)
        and n not in ("status", "outcome", "probe", "dependency")
    }


def test_dashboards_are_importable_and_their_promql_is_valid(prometheus: Prometheus) -> None:
    found = dashboards()
    assert set(found) == {"chaos.json", "exchange.json"}
    prom = prometheus.start([])
    exchange_src = (ROOT / "systems" / "exchange" / "src" / "chaoslab_exchange" / "metrics.py").read_text()
    exporter_src = (
        Path(exporter_module.__file__).read_text()
        + Path(exporter_module.__file__).with_name("runs.py").read_text()
    )
    for name, d in found.items():
        assert d["__inputs"][0]["name"] == "DS_PROMETHEUS" and d["uid"].startswith("chaoslab-")
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)) and all(
            {"x", "y", "w", "h"} <= set(p["gridPos"]) for p in d["panels"]
        )
        assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in d["panels"])
        for expr in exprs(d):
            body = httpx.get(f"{prom.url}/api/v1/query", params={"query": expr}, timeout=5).json()
            assert body["status"] == "success", (name, expr, body)
            for metric in metric_names(expr):
                base = re.sub(r"_(bucket|total)$", "", metric)
                source = (
                    exchange_src
                    if name == "exchange.json" and not base.startswith("chaoslab_")
                    else exporter_src
                )
                assert f'"{base}' in source, f"{name}: {metric} is not exposed by anything ({expr})"
