"""The Grafana dashboard's queries, read for the tests that check them against what the bot exports."""

import json
import re
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "discomfy.json"
#: A metric name in PromQL: an identifier not followed by "(" (a function) and not a label or keyword.
_NAME = re.compile(r"(?<![\w:])[a-zA-Z_:][\w:]*(?![\w:]*\s*\()")
_LABELS = re.compile(r"\{[^}]*\}")
_BY = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_DURATION = re.compile(r"\[[^\]]*\]")
_STRINGS = re.compile(r'"[^"]*"')
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels too."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found += panel.get("panels", [])
    return found


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, by-clauses, ranges, strings taken out)."""
    text = _STRINGS.sub("", expr)
    text = _LABELS.sub("", text)
    text = _BY.sub("", text)
    text = _DURATION.sub("", text)
    text = re.sub(r"\$\w+|\$\{[^}]*\}", "", text)  # Grafana variables ($__rate_interval)
    return {n for n in _NAME.findall(text) if n not in PROMQL_WORDS and not re.fullmatch(r"[\d.e]+", n)}


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def dashboard_metric_names() -> set[str]:
    return {name for expr in exprs(load()) for name in metric_names(expr)}
