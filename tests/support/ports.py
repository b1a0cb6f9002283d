"""Free loopback ports for the services tests start (the demo's helper, shared)."""
from demo.processes import free_port

__all__ = ["free_port"]
