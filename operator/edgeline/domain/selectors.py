"""Kubernetes label selectors, evaluated the way the API server does."""

from __future__ import annotations

from edgeline.api.common import LabelSelector


def matches(selector: LabelSelector, labels: dict[str, str]) -> bool:
    """True when every matchLabels pair and every expression holds for `labels`."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for expr in selector.match_expressions:
        present = expr.key in labels
        if expr.operator == "In" and (not present or labels[expr.key] not in expr.values):
            return False
        if expr.operator == "NotIn" and present and labels[expr.key] in expr.values:
            return False
        if expr.operator == "Exists" and not present:
            return False
        if expr.operator == "DoesNotExist" and present:
            return False
    return True
