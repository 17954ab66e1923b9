"""Metric registry: classification metrics, statistics and baselines."""
