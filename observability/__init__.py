"""Structured logs and Prometheus metrics, shared by the producers and the workers."""
