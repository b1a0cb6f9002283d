"""Real components for the tests: private brokers, worker subprocesses, polling helpers."""
