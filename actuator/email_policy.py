"""Which email addresses may log in: Flower's ``--auth`` pattern, without Flower's hole.

Flower matched the pattern with ``re.match``: anchored at the start only, so
``.*@company\\.com`` let in ``attacker@evil.com?x@company.com`` and friends (CVE-2022-30034).
Here an address is admitted only when

1. the provider says it is verified (an unverified address proves nothing about its owner);
2. it is one plausible address: the HTML standard's definition of a valid e-mail address (one
   ``@``, an ASCII domain of labels; no spaces, control characters, NUL, second ``@``,
   non-ASCII lookalike letters), so no pattern is ever matched against something that is not an
   address;
3. the whole of it matches the pattern (``re.fullmatch``), the domain compared in lower case.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# WHATWG HTML, "valid e-mail address" (input type=email).
_ADDRESS = re.compile(
    r"[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*", re.ASCII)
MAX_ADDRESS_LENGTH = 254


def normalise(address: str) -> str:
    """The address with its domain in lower case."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


class EmailPolicy:
    """``pattern`` None admits every verified, well-formed address."""

    def __init__(self, pattern: re.Pattern[str] | None) -> None:
        self.pattern = pattern

    def judge(self, address: object, verified: object) -> Verdict:
        if not isinstance(address, str) or not address:
            return Verdict(False, "the provider gave no email address")
        if verified is not True:
            return Verdict(False, f"the provider does not say {address!r} is verified")
        if len(address) > MAX_ADDRESS_LENGTH or not _ADDRESS.fullmatch(address):
            return Verdict(False, f"{address!r} is not a valid email address")
        candidate = normalise(address)
        if self.pattern is not None and not self.pattern.fullmatch(candidate):
            return Verdict(False, f"{address!r} does not match the allowed pattern {self.pattern.pattern!r} "
                                  f"(the whole address must match)")
        return Verdict(True, "verified and allowed")


def compile_pattern(text: str) -> re.Pattern[str]:
    """``--auth``: a regular expression the whole address must match; ValueError if it is not one."""
    try:
        return re.compile(text)
    except re.error as exc:
        raise ValueError(f"{text!r} is not a regular expression: {exc}") from None
