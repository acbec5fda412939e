"""Metric readers (and, later, exporters) for manystore's telemetry."""
