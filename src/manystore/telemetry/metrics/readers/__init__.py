"""Metric readers; see :mod:`.diperiodic_exporting`."""
