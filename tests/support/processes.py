"""Ending the server subprocesses the tests start (the demo's helper, shared)."""
from demo.processes import terminate

__all__ = ["terminate"]
