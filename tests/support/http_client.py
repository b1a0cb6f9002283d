"""Small blocking JSON-over-HTTP helpers (the demo's, shared with the tests)."""
from demo.http_client import answers, get_json, post_json

__all__ = ["answers", "get_json", "post_json"]
