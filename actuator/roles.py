"""Who may do what: three roles, and the mapping from people and groups to them.

- ``viewer`` reads: the console, the JSON read endpoints, ``/metrics`` when it is protected;
- ``operator`` also acts: the console's forms, the Flower control API, pause and resume;
- ``webhook`` may only ``POST /webhook``: Alertmanager's credentials, kept apart from people's so
  a person's password (or a leaked session) cannot feed the actuator fake alerts, and a leaked
  Alertmanager secret cannot read task arguments or grow pools by hand.

``--roles`` maps subjects to roles: a user name (basic auth), an email address (OpenID Connect or
GitHub login: the verified address) or ``group:NAME`` (the OpenID ``groups`` claim). A person gets
every role of every entry naming them or one of their groups; a person no entry names gets the
default role (``--default-role``), or nothing and is refused.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

GROUP_PREFIX = "group:"


class Role(enum.Enum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    WEBHOOK = "webhook"


# What each role also grants: an operator sees what they change.
_IMPLIED = {Role.OPERATOR: frozenset({Role.VIEWER})}
ALL_ROLES = frozenset(Role)


def expand(roles: Iterable[Role]) -> frozenset[Role]:
    """The roles together with those they imply."""
    given = frozenset(roles)
    return given.union(*(_IMPLIED.get(role, frozenset()) for role in given))


def describe(roles: Iterable[Role]) -> str:
    names = sorted(role.value for role in roles)
    return "+".join(names) if names else "no role"


def parse_roles(text: str) -> frozenset[Role]:
    """``operator`` or ``operator+webhook``; ValueError names the unknown role."""
    roles = set()
    for part in text.split("+"):
        word = part.strip().lower()
        try:
            roles.add(Role(word))
        except ValueError:
            raise ValueError(f"unknown role {part.strip()!r}; expected "
                             f"{', '.join(role.value for role in Role)} (several joined with +)") from None
    return frozenset(roles)


@dataclass(frozen=True)
class RoleMap:
    """``--roles``: users, emails and groups to roles. Email addresses compare with the domain in
    lower case (domains are case-insensitive; the part before ``@`` is the provider's business)."""

    users: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    groups: Mapping[str, frozenset[Role]] = field(default_factory=dict)

    def roles_of(self, name: str, groups: Iterable[str] = ()) -> frozenset[Role] | None:
        """Every role the entries naming ``name`` or one of ``groups`` give; None if none does."""
        found: list[frozenset[Role]] = []
        key = subject_key(name)
        if key in self.users:
            found.append(self.users[key])
        found += [self.groups[group] for group in groups if group in self.groups]
        return expand(frozenset().union(*found)) if found else None

    def names(self, name: str) -> bool:
        return subject_key(name) in self.users


def subject_key(name: str) -> str:
    local, at, domain = name.rpartition("@")
    return f"{local}@{domain.lower()}" if at else name


def parse_role_map(spec: str) -> RoleMap:
    """``alice=operator,bob@company.com=viewer,group:sre=operator,alertmanager=webhook``."""
    users: dict[str, frozenset[Role]] = {}
    groups: dict[str, frozenset[Role]] = {}
    for position, entry in enumerate(spec.split(","), start=1):
        if not entry.strip():
            continue
        subject, separator, roles_text = entry.strip().rpartition("=")
        subject = subject.strip()
        if not separator or not subject:
            raise ValueError(f"entry {position} ({entry.strip()!r}): expected SUBJECT=ROLE, e.g. "
                             f"alice=operator or group:sre=operator")
        try:
            roles = parse_roles(roles_text)
        except ValueError as exc:
            raise ValueError(f"entry {position} ({subject}): {exc}") from None
        table, key = ((groups, subject[len(GROUP_PREFIX):]) if subject.startswith(GROUP_PREFIX)
                      else (users, subject_key(subject)))
        if not key:
            raise ValueError(f"entry {position}: {subject!r} names no group")
        if key in table:
            raise ValueError(f"entry {position}: {subject!r} is listed twice")
        table[key] = roles
    return RoleMap(users, groups)
