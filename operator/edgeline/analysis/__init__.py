"""Metric checks against a Prometheus-compatible HTTP API (docs/analysis.md): the I/O half.
What the answers mean is decided in `edgeline.domain.analysis`."""
