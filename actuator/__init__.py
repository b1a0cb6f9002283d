"""Alertmanager-driven remediation for Celery: webhook → rules → guards → remote control."""
