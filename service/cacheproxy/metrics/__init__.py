"""Metrics: plain counters bumped on the hot path, turned into Prometheus text only on scrape."""
