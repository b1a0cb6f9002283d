# One image for docker-compose.yml's exporter, actuator and demo worker, built from this
# checkout: `pip install .` gives autopilot-exporter, autopilot-actuator and the `celery
# exporter` / `celery actuator` subcommands; demo/ (the demo tasks) stays importable from /app.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app

WORKDIR /app
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY actuator ./actuator
RUN pip install --no-cache-dir .
COPY demo ./demo

# Celery refuses to run a worker as root with pickle and warns otherwise: run as a plain user,
# with a writable directory for the actuator's audit log and state.
RUN useradd --create-home --uid 10001 autopilot \
    && mkdir -p /var/lib/celery-autopilot \
    && chown autopilot /var/lib/celery-autopilot
USER autopilot
