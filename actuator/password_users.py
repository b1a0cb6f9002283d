"""People's passwords as bcrypt hashes, in the web-config file format of Prometheus'
exporter-toolkit (``basic_auth_users``), and checking them.

The same file the exporter reads with ``--web.config.file`` serves here (one habit for every
service on a host)::

    basic_auth_users:
      alice: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG

The actuator takes only the users from it: its TLS comes from ``--certfile``/``--keyfile`` and a
``tls_server_config`` in the file is refused with that advice, so nobody believes it is in force.
The parser is a small mirror of the exporter's (the actuator must not import the exporter).

bcrypt is slow on purpose, and Alertmanager or a script sends the same credentials on every
request, so successful checks are remembered under an HMAC of user, hash and password keyed at
start (the cache holds no password); failures are never cached, so every guess pays a full bcrypt
check. A user that does not exist is checked against a dummy hash of the same cost, so timing does
not tell which users exist. Checks run on a thread of their own, one at a time.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bcrypt
import yaml

_BCRYPT = re.compile(r"\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}")
# exporter-toolkit's other keys: accepted in a shared file, but not used by the actuator.
_IGNORED_KEYS = ("http_server_config", "rate_limit")
CACHE_SIZE = 100


class PasswordFileError(ValueError):
    """The users file cannot be used; the message names the file, the key and why."""


def load_password_users(path: Path) -> dict[str, bytes]:
    """user → bcrypt hash from ``basic_auth_users``; PasswordFileError on anything wrong."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswordFileError(f"{path}: cannot read the users file: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PasswordFileError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(document, dict):
        raise PasswordFileError(f"{path}: expected a mapping with basic_auth_users (exporter-toolkit's web config)")
    for key in document:
        if key == "tls_server_config":
            raise PasswordFileError(f"{path}: tls_server_config: the actuator takes TLS from --certfile, "
                                    f"--keyfile and --client-ca; remove it from this file or use another")
        if key not in ("basic_auth_users", *_IGNORED_KEYS):
            raise PasswordFileError(f"{path}: {key}: unknown key; expected basic_auth_users")
    return _users(document.get("basic_auth_users"), path)


def _users(value: Any, path: Path) -> dict[str, bytes]:
    if not isinstance(value, dict) or not value:
        raise PasswordFileError(f"{path}: basic_auth_users: expected a mapping of user names to bcrypt hashes")
    users: dict[str, bytes] = {}
    for user, hashed in value.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise PasswordFileError(f"{path}: basic_auth_users: got {user!r}; expected user names without ':'")
        # Never echo the value: it may be a password written where its hash belongs.
        match = _BCRYPT.fullmatch(hashed) if isinstance(hashed, str) else None
        if match is None or not 4 <= int(match.group(1)) <= 31:
            raise PasswordFileError(f"{path}: basic_auth_users.{user}: expected a bcrypt hash such as $2y$10$ "
                                    f"followed by 53 characters (htpasswd -nBC 10 \"\" | tr -d ':\\n'); "
                                    f"the value given is not one")
        users[user] = hashed.encode()
    return users


class PasswordChecker:
    def __init__(self, users: Mapping[str, bytes], cache_size: int = CACHE_SIZE) -> None:
        self._users = dict(users)
        cost = max((int(hashed.split(b"$")[2]) for hashed in self._users.values()), default=4)
        self._dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(cost))
        self._key = os.urandom(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bcrypt")

    def __contains__(self, user: str) -> bool:
        return user in self._users

    async def check(self, user: str, password: bytes) -> bool:
        hashed = self._users.get(user)
        key = hmac.new(self._key, b"\0".join((user.encode(), hashed or b"", password)), hashlib.sha256).digest()
        if hashed is not None and key in self._verified:
            self._verified.move_to_end(key)
            return True
        loop = asyncio.get_running_loop()
        matches = await loop.run_in_executor(self._executor, bcrypt.checkpw, password, hashed or self._dummy)
        if not (matches and hashed is not None):
            return False
        self._verified[key] = None
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=False)
