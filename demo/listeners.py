"""Who listens on a TCP port of this machine, read from /proc (Linux).

The demo starts its services on fixed, documented ports. A port already taken (Debian's
prometheus service after a reboot, an earlier demo left running) must stop it with the culprit
named, and a readiness probe answered by such a stranger must not count as our service being up:
so the demo asks which process holds a listening socket, not merely whether something answers.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

_TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
_LISTEN = "0A"


class PortTaken(RuntimeError):
    """A port the demo must listen on is in use; the message names who holds it."""

    def __init__(self, port: int, what: str, holders: list[str]) -> None:
        self.port = port
        self.what = what
        held_by = ", ".join(holders) if holders else "a process this user cannot see"
        super().__init__(f"port {port} on 127.0.0.1, where the {what} should listen, is taken by {held_by}")


def _listening_inodes() -> dict[int, int]:
    """Socket inode → port, for every listening TCP socket (IPv4 and IPv6) on this machine."""
    inodes = {}
    for table in _TCP_TABLES:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == _LISTEN:
                inodes[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    """The inodes of ``pid``'s sockets; empty when its descriptors cannot be read."""
    inodes = set()
    try:
        for entry in os.scandir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[len("socket:["):-1]))
    except OSError:
        pass
    return inodes


def listening_ports(pid: int) -> set[int]:
    """The TCP ports ``pid`` listens on."""
    listening = _listening_inodes()
    return {listening[inode] for inode in _socket_inodes(pid) if inode in listening}


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"


def holders(port: int) -> list[str]:
    """``pid N (command line)`` of every process this user can see listening on ``port``."""
    inodes = {inode for inode, listened in _listening_inodes().items() if listened == port}
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _socket_inodes(int(entry.name)) & inodes:
            found.append(f"pid {entry.name} ({_command(int(entry.name))[:200]})")
    return found


def ensure_free(port: int, what: str) -> None:
    """Raise PortTaken, naming the holder, unless ``port`` can be bound on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PortTaken(port, what, holders(port)) from None
