"""Demo Celery app, worker tasks and the live demo driver (``python -m demo``)."""
