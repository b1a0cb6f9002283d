"""Prometheus exporter for Celery: events, queue depths and worker inspection as metrics."""
