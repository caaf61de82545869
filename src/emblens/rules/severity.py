"""Severities of findings, most severe first: ranking, --fail-on and rule files use this order."""

SEVERITIES = ("error", "warning", "info")
