"""The access-control flags of ``serve``: who may call the actuator and as what, logins, TLS.

Part of the command line (with :mod:`actuator.cli`, which reads the other flags): it turns these
flags into :class:`~actuator.settings.AuthSettings` and :class:`~actuator.settings.TlsSettings`;
every refusal is a usage error naming the flag at fault. Secrets come from files (never from the
command line, where ``ps`` shows them), except Flower's ``--basic-auth`` spelling, kept for
compatibility.
"""
from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .auth import load_bearer_tokens, parse_basic_auth
from .email_policy import compile_pattern
from .password_users import PasswordFileError, load_password_users
from .roles import Role, parse_role_map, parse_roles
from .settings import (AuthSettings, GithubSettings, JwtSettings, OidcSettings, SessionSettings, ThrottleSettings,
                       TlsSettings)
from .tokens import pinned

F = Callable[..., Any]
MIN_SESSION_SECRET = 32


def access_options(option: Callable[..., Callable[[F], F]], duration: click.ParamType) -> list[Callable[[F], F]]:
    """The flags, made with ``cli.option`` (environment variable and shown default) and its DURATION."""
    file = click.Path(dir_okay=False, path_type=Path)
    return [
        option("--basic-auth", default=None, metavar="USER:PASS[,USER:PASS...]",
               help="HTTP basic auth users (Flower's spelling); every role, the webhook included, unless "
                    "--roles names them."),
        option("--bearer-token-file", type=file, default=None,
               help="File with accepted bearer tokens, one per line (# comments allowed); every role."),
        option("--users-file", type=file, default=None,
               help="People's passwords as bcrypt hashes: a web-config file (exporter-toolkit's basic_auth_users); "
                    "roles from --roles, else --default-role."),
        option("--webhook-basic-auth", default=None, metavar="USER:PASS[,USER:PASS...]",
               help="Basic auth users that may only POST /webhook (Alertmanager's)."),
        option("--webhook-bearer-token-file", type=file, default=None,
               help="File of bearer tokens that may only POST /webhook, one per line."),
        option("--roles", "role_map", default="", metavar="SUBJECT=ROLE[,...]",
               help="Roles (viewer, operator, webhook; several joined with +) of users, emails and group:NAME."),
        option("--default-role", type=click.Choice(["viewer", "operator", "none"]), default="viewer",
               help="Role of a person --roles does not name (users-file users, OIDC and GitHub logins)."),
        option("--no-auth", is_flag=True, default=False,
               help="Run without authentication (every endpoint open). Off unless given explicitly."),
        option("--metrics-auth", is_flag=True, default=False,
               help="Require credentials (viewer) for GET /metrics too (open by default, like exporters)."),
        option("--auth", "allowed_emails", default=None, metavar="REGEX",
               help="Email addresses allowed to log in with OpenID Connect or GitHub (Flower's --auth), matched "
                    "in full against the verified address; required with --oidc-*/--github-*."),
        option("--oidc-discovery-url", default=None, metavar="URL",
               help="OpenID provider's discovery URL (or its issuer URL) for people's login."),
        option("--oidc-client-id", default=None, help="Client id registered at the OpenID provider."),
        option("--oidc-client-secret-file", type=file, default=None, help="File holding the OIDC client secret."),
        option("--oidc-scopes", default="openid email profile", help="Scopes asked at login (space-separated)."),
        option("--oidc-groups-claim", default="groups", help="ID token claim listing the person's groups."),
        option("--oidc-algorithms", default=None, metavar="ALG[,ALG...]",
               help="ID token algorithms accepted. Default: what discovery lists (asymmetric only)."),
        option("--oidc-label", default="OpenID Connect", help="Name of the provider on the login button."),
        option("--github-client-id", default=None, help="GitHub OAuth app client id, for people's login."),
        option("--github-client-secret-file", type=file, default=None, help="File holding the GitHub client secret."),
        option("--github-url", default="https://github.com", help="GitHub (Enterprise Server) web URL."),
        option("--github-api-url", default="https://api.github.com", help="GitHub (Enterprise Server) API URL."),
        option("--jwt-issuer", default=None, metavar="URL",
               help="Accept JWT access tokens (e.g. Alertmanager's oauth2) from this issuer; keys from its "
                    "discovery document unless --jwt-jwks-url."),
        option("--jwt-audience", default=None, help="The audience (aud) tokens must be issued for."),
        option("--jwt-jwks-url", default=None, metavar="URL", help="The issuer's JWKS URL. Default: from discovery."),
        option("--jwt-algorithms", default="RS256", metavar="ALG[,ALG...]", help="Token algorithms accepted."),
        option("--jwt-scope-roles", default="webhook=webhook", metavar="SCOPE=ROLE[,...]",
               help="Roles a token's scopes give."),
        option("--provider-ca-file", type=file, default=None,
               help="CA certificates to trust for calls to the identity provider. Default: the system's."),
        option("--public-url", default=None, metavar="URL",
               help="URL people reach the actuator at (login callbacks, Origin checks). Default: each "
                    "request's own scheme and Host."),
        option("--session-secret-file", type=file, default=None,
               help="File with at least 32 bytes of secret keying session cookies (share it between replicas). "
                    "Default: random per process (sessions end at restart)."),
        option("--session-max-age", type=duration, default="8h", help="How long a console session lasts."),
        option("--auth-failure-burst", type=click.IntRange(min=1), default=ThrottleSettings.burst,
               help="Failed logins allowed at once per client address and per user name before 429."),
        option("--auth-failure-interval", type=duration, default="30s",
               help="One more failed login is allowed every this long."),
        option("--certfile", type=file, default=None, help="Serve HTTPS with this certificate (PEM, with chain)."),
        option("--keyfile", type=file, default=None, help="Private key of --certfile (PEM)."),
        option("--client-ca", type=file, default=None,
               help="Require client certificates signed by this CA (mutual TLS)."),
    ]


def _bad(flag: str, message: str) -> click.BadParameter:
    return click.BadParameter(message, param_hint=flag)


def _secret(path: Path | None, flag: str) -> str:
    if path is None:
        raise click.UsageError(f"{flag} is required")
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(flag, f"cannot read {path}: {exc}") from None
    if not secret:
        raise _bad(flag, f"{path} is empty")
    return secret


def _together(options: dict[str, Any], *keys: str) -> bool:
    """Whether the flags ``keys`` are given (all of them); a usage error when only some are."""
    given = [key for key in keys if options[key] is not None]
    if given and len(given) < len(keys):
        missing = [f"--{key.replace('_', '-')}" for key in keys if key not in given]
        raise click.UsageError(f"--{given[0].replace('_', '-')} needs {' and '.join(missing)} too")
    return bool(given)


def _url(value: str, flag: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad(flag, f"got {value!r}; expected an http:// or https:// URL")
    return value.rstrip("/")


def _algorithms(text: str, flag: str) -> tuple[str, ...]:
    try:
        return pinned(part.strip() for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise _bad(flag, str(exc)) from None


def _scope_roles(text: str) -> dict[str, frozenset[Role]]:
    mapping: dict[str, frozenset[Role]] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        scope, separator, roles = entry.partition("=")
        if not separator or not scope.strip():
            raise _bad("--jwt-scope-roles", f"{entry!r}: expected SCOPE=ROLE")
        try:
            mapping[scope.strip()] = parse_roles(roles)
        except ValueError as exc:
            raise _bad("--jwt-scope-roles", f"{entry!r}: {exc}") from None
    return mapping


def _oidc(options: dict[str, Any]) -> OidcSettings | None:
    if not _together(options, "oidc_discovery_url", "oidc_client_id", "oidc_client_secret_file"):
        return None
    scopes = tuple(options["oidc_scopes"].split())
    if "openid" not in scopes:
        raise _bad("--oidc-scopes", f"got {options['oidc_scopes']!r}; OpenID Connect needs 'openid' among them")
    return OidcSettings(
        discovery_url=_url(options["oidc_discovery_url"], "--oidc-discovery-url"),
        client_id=options["oidc_client_id"],
        client_secret=_secret(options["oidc_client_secret_file"], "--oidc-client-secret-file"),
        scopes=scopes, groups_claim=options["oidc_groups_claim"], label=options["oidc_label"],
        algorithms=_algorithms(options["oidc_algorithms"], "--oidc-algorithms") if options["oidc_algorithms"] else None)


def _github(options: dict[str, Any]) -> GithubSettings | None:
    if not _together(options, "github_client_id", "github_client_secret_file"):
        return None
    return GithubSettings(client_id=options["github_client_id"],
                          client_secret=_secret(options["github_client_secret_file"], "--github-client-secret-file"),
                          url=_url(options["github_url"], "--github-url"),
                          api_url=_url(options["github_api_url"], "--github-api-url"))


def _jwt(options: dict[str, Any]) -> JwtSettings | None:
    if not _together(options, "jwt_issuer", "jwt_audience"):
        return None
    return JwtSettings(issuer=_url(options["jwt_issuer"], "--jwt-issuer"), audience=options["jwt_audience"],
                       jwks_url=_url(options["jwt_jwks_url"], "--jwt-jwks-url") if options["jwt_jwks_url"] else None,
                       algorithms=_algorithms(options["jwt_algorithms"], "--jwt-algorithms"),
                       scope_roles=_scope_roles(options["jwt_scope_roles"]))


def _session(options: dict[str, Any]) -> SessionSettings:
    path = options["session_secret_file"]
    secret = b""
    if path is not None:
        try:
            raw = path.read_bytes().strip()
        except OSError as exc:
            raise _bad("--session-secret-file", f"cannot read {path}: {exc}") from None
        if len(raw) < MIN_SESSION_SECRET:
            raise _bad("--session-secret-file", f"{path} holds {len(raw)} bytes; expected at least "
                                                f"{MIN_SESSION_SECRET} (e.g. head -c 32 /dev/urandom | base64)")
        secret = hashlib.sha256(raw).digest()
    if options["session_max_age"] < 60:
        raise _bad("--session-max-age", f"got {options['session_max_age']:g} seconds; expected at least 60")
    return SessionSettings(secret=secret, max_age=options["session_max_age"])


def _parsed(parse: Callable[[Any], Any], value: Any, flag: str) -> Any:
    try:
        return parse(value)
    except (ValueError, PasswordFileError) as exc:
        raise _bad(flag, str(exc)) from None


def _people_and_machines(options: dict[str, Any]) -> dict[str, Any]:
    """The credentials of the basic-auth and bearer flags, with their user names distinct."""
    found = {
        "basic_users": _parsed(parse_basic_auth, options["basic_auth"], "--basic-auth")
        if options["basic_auth"] else {},
        "bearer_tokens": _parsed(load_bearer_tokens, options["bearer_token_file"], "--bearer-token-file")
        if options["bearer_token_file"] else (),
        "password_users": _parsed(load_password_users, options["users_file"], "--users-file")
        if options["users_file"] else {},
        "webhook_basic_users": _parsed(parse_basic_auth, options["webhook_basic_auth"], "--webhook-basic-auth")
        if options["webhook_basic_auth"] else {},
        "webhook_bearer_tokens": _parsed(load_bearer_tokens, options["webhook_bearer_token_file"],
                                         "--webhook-bearer-token-file") if options["webhook_bearer_token_file"] else (),
    }
    seen: dict[str, str] = {}
    for key, flag in (("basic_users", "--basic-auth"), ("password_users", "--users-file"),
                      ("webhook_basic_users", "--webhook-basic-auth")):
        for user in found[key]:
            if user in seen:
                raise click.UsageError(f"user {user!r} is in both {seen[user]} and {flag}; a user name means one user")
            seen[user] = flag
    return found


def auth_settings(options: dict[str, Any]) -> AuthSettings:
    credentials = _people_and_machines(options)
    oidc, github, jwt = _oidc(options), _github(options), _jwt(options)
    anything = any(credentials.values()) or oidc or github or jwt
    if options["no_auth"] and anything:
        raise click.UsageError("--no-auth contradicts the credential flags given; choose one")
    if not options["no_auth"] and not anything:
        raise click.UsageError("authentication is on by default: give --basic-auth, --users-file, "
                               "--bearer-token-file, --webhook-*, --jwt-*, --oidc-* or --github-*, "
                               "or --no-auth to run without it")
    allowed = options["allowed_emails"]
    if (oidc or github) and allowed is None:
        raise click.UsageError("--oidc-*/--github-* let people log in with an email address: give --auth with "
                               "the addresses allowed, e.g. --auth '.*@example\\.com'")
    if allowed is not None and not (oidc or github):
        raise click.UsageError("--auth restricts OpenID Connect and GitHub logins; give --oidc-* or --github-*")
    return AuthSettings(
        **credentials,
        roles=_parsed(parse_role_map, options["role_map"], "--roles"),
        default_role=None if options["default_role"] == "none" else Role(options["default_role"]),
        jwt=jwt, oidc=oidc, github=github,
        allowed_emails=_parsed(compile_pattern, allowed, "--auth") if allowed is not None else None,
        provider_ca_file=options["provider_ca_file"],
        public_url=_url(options["public_url"], "--public-url") if options["public_url"] else None,
        session=_session(options),
        throttle=ThrottleSettings(options["auth_failure_burst"], options["auth_failure_interval"]),
        enabled=not options["no_auth"], protect_metrics=options["metrics_auth"])


def tls_settings(options: dict[str, Any]) -> TlsSettings | None:
    if options["client_ca"] is not None and options["certfile"] is None:
        raise click.UsageError("--client-ca needs --certfile and --keyfile (client certificates need TLS)")
    if not _together(options, "certfile", "keyfile"):
        return None
    return TlsSettings(options["certfile"], options["keyfile"], options["client_ca"])
