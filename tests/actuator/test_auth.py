"""Credentials as Alertmanager's http_config sends them: basic (several users) and bearer tokens."""
from __future__ import annotations

import base64

import pytest

from actuator.auth import Access, Authenticator, Principal, load_bearer_tokens, parse_basic_auth
from actuator.settings import AuthSettings


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_flower_spelling_of_several_users():
    assert parse_basic_auth("admin:secret,operator:pass:word") == {"admin": "secret", "operator": "pass:word"}
    with pytest.raises(ValueError, match="entry 2 .*expected user:password"):
        parse_basic_auth("admin:secret,operator")
    with pytest.raises(ValueError, match="listed twice"):
        parse_basic_auth("a:b,a:c")


async def test_basic_and_bearer_credentials():
    auth = Authenticator(AuthSettings(basic_users={"admin": "secret", "ops": "pässword"},
                                      bearer_tokens=("t0ken-a", "t0ken-b")))
    assert (await auth.authenticate(basic("admin", "secret"))).describe() == "basic:admin"
    assert (await auth.authenticate(basic("ops", "pässword"))).describe() == "basic:ops"
    assert (await auth.authenticate("Bearer t0ken-b")).describe() == "bearer:token#2"
    for header in ("", basic("admin", "wrong"), basic("nobody", "secret"), basic("admin", ""),
                   "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer nope",
                   "Bearer ", "Digest abc", basic("admin", "secret") + "x"):
        assert not isinstance(await auth.authenticate(header), Principal), header
    assert auth.challenge() == {"WWW-Authenticate": 'Basic realm="celery-autopilot", Bearer realm="celery-autopilot"'}


def test_what_needs_credentials():
    on = Authenticator(AuthSettings(basic_users={"a": "b"}))
    assert [on.needs_credentials(a) for a in Access] == [False, False, True, True, True]
    strict = Authenticator(AuthSettings(basic_users={"a": "b"}, protect_metrics=True))
    assert strict.needs_credentials(Access.METRICS)
    off = Authenticator(AuthSettings(enabled=False))
    assert not any(off.needs_credentials(a) for a in Access)


def test_bearer_token_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# alertmanager\nabc123\n\n  def456  \n")
    assert load_bearer_tokens(path) == ("abc123", "def456")
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no token"):
        load_bearer_tokens(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_bearer_tokens(tmp_path / "missing")
