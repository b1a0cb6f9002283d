"""Synchronisation by condition, never by sleeping a fixed time (the demo's poller, shared)."""
from demo.polling import Timeout, wait_for

__all__ = ["Timeout", "wait_for"]
