"""The access-control flags: settings they build, the usage errors that name the flag at fault,
and the README documenting every flag of ``serve`` with its variable and default."""
from __future__ import annotations

from pathlib import Path

import bcrypt
import click
import pytest

from actuator.cli import build_settings, serve_command
from actuator.roles import Role
from tests.support.workers import ROOT


def settings_of(*args: str):
    return build_settings(serve_command.make_context("serve", ["--rules", "r.yml", *args]).params, None)


def usage_error(*args: str) -> str:
    with pytest.raises(click.UsageError) as failure:
        settings_of(*args)
    return failure.value.format_message()


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "secret"
    path.write_text("s3cret-from-a-file\n")
    return path


def test_the_flags_build_the_settings(tmp_path, secret):
    users = tmp_path / "users.yml"
    users.write_text(f"basic_auth_users:\n  alice: '{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}'\n")
    session = tmp_path / "session"
    session.write_bytes(b"x" * 40)
    settings = settings_of(
        "--users-file", str(users), "--roles", "alice=operator,group:sre=operator", "--default-role", "none",
        "--webhook-basic-auth", "am:pw", "--oidc-discovery-url", "https://sso.example.com/realms/ops/",
        "--oidc-client-id", "autopilot", "--oidc-client-secret-file", str(secret), "--auth", r".*@example\.com",
        "--jwt-issuer", "https://sso.example.com/realms/ops", "--jwt-audience", "actuator",
        "--jwt-scope-roles", "webhook=webhook,ops=operator+webhook", "--session-secret-file", str(session),
        "--session-max-age", "1h", "--auth-failure-burst", "3", "--auth-failure-interval", "1m",
        "--certfile", str(secret), "--keyfile", str(secret), "--public-url", "https://actuator.example.com/")
    auth = settings.auth
    assert set(auth.password_users) == {"alice"} and auth.webhook_basic_users == {"am": "pw"}
    assert auth.roles.roles_of("x", ["sre"]) == {Role.OPERATOR, Role.VIEWER} and auth.default_role is None
    assert (auth.oidc.discovery_url, auth.oidc.client_secret) == ("https://sso.example.com/realms/ops",
                                                                  "s3cret-from-a-file")
    assert "s3cret" not in repr(auth.oidc), "secrets stay out of reprs (and so of logs)"
    assert auth.jwt.scope_roles == {"webhook": {Role.WEBHOOK}, "ops": {Role.OPERATOR, Role.WEBHOOK}}
    assert auth.allowed_emails.pattern == r".*@example\.com" and auth.public_url == "https://actuator.example.com"
    assert len(auth.session.secret) == 32 and auth.session.max_age == 3600
    assert (auth.throttle.burst, auth.throttle.interval) == (3, 60)
    assert settings.tls.certfile == secret and settings.tls.client_ca is None


@pytest.mark.parametrize("args, fragment", [
    ((), "authentication is on by default"),
    (("--no-auth", "--webhook-basic-auth", "a:b"), "--no-auth contradicts"),
    (("--oidc-discovery-url", "https://sso.example.com"), "--oidc-discovery-url needs --oidc-client-id and "
                                                          "--oidc-client-secret-file too"),
    (("--github-client-id", "x", "--github-client-secret-file", "{secret}"), "give --auth with the addresses"),
    (("--basic-auth", "a:b", "--auth", ".*"), "--auth restricts OpenID Connect and GitHub logins"),
    (("--jwt-issuer", "https://sso.example.com", "--jwt-audience", "a", "--jwt-algorithms", "HS256"),
     "HS256: expected asymmetric algorithms"),
    (("--jwt-issuer", "https://sso.example.com", "--jwt-audience", "a", "--jwt-algorithms", "none"), "never none"),
    (("--jwt-issuer", "ftp://x", "--jwt-audience", "a"), "expected an http:// or https:// URL"),
    (("--basic-auth", "a:b", "--client-ca", "{secret}"), "--client-ca needs --certfile"),
    (("--basic-auth", "a:b", "--certfile", "{secret}"), "--certfile needs --keyfile too"),
    (("--basic-auth", "am:b", "--webhook-basic-auth", "am:c"), "user 'am' is in both --basic-auth and "
                                                               "--webhook-basic-auth"),
    (("--basic-auth", "a:b", "--roles", "a=root"), "unknown role 'root'"),
    (("--basic-auth", "a:b", "--session-secret-file", "{secret}"), "expected at least 32"),
    (("--oidc-discovery-url", "https://x", "--oidc-client-id", "c", "--oidc-client-secret-file", "{secret}",
      "--auth", ".*", "--oidc-scopes", "email"), "needs 'openid'"),
    (("--basic-auth", "a:b", "--users-file", "{secret}"), "expected a mapping with basic_auth_users"),
])
def test_bad_combinations_name_the_flag(secret, args, fragment):
    message = usage_error(*(arg.replace("{secret}", str(secret)) for arg in args))
    assert fragment in message, message


def test_the_readme_documents_every_serve_flag_with_its_variable_and_default():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Actuator", 1)[1].split("\n## ", 1)[0]
    for param in serve_command.params:
        if not isinstance(param, click.Option) or "--help" in param.opts:
            continue
        flag = next(opt for opt in param.opts if opt.startswith("--"))
        row = next((line for line in section.splitlines() if line.startswith(f"| `{flag}")), None)
        assert row is not None, f"{flag} is not in the README's actuator flags"
        assert f"`{param.envvar}`" in row, f"{param.envvar} missing from the row of {flag}"
        default = param.get_default(click.Context(serve_command), call=True)
        if param.required:
            assert "(required)" in row
        elif default not in (None, False, ""):
            shown = {str(default), f"{default:g}" if isinstance(default, float) else str(default)}
            assert any(f"`{text}`" in row for text in shown), f"default {default!r} of {flag} missing: {row}"
