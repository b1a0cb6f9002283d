"""Pure access-control logic: roles and their mapping, the allowed-email check (Flower's
CVE-2022-30034 bypasses among the test provider's users), the login throttle, the bcrypt users
file."""
from __future__ import annotations

import re

import bcrypt
import pytest

from actuator.auth import Access, Authenticator, Principal
from actuator.email_policy import EmailPolicy
from actuator.login_throttle import LoginThrottle, throttle_keys
from actuator.password_users import PasswordFileError, load_password_users
from actuator.roles import ALL_ROLES, Role, parse_role_map
from actuator.settings import AuthSettings, ThrottleSettings
from tests.support.oidc_provider import COMPANY_USERS, TRICKY_USERS

VIEWER, OPERATOR, WEBHOOK = Role.VIEWER, Role.OPERATOR, Role.WEBHOOK


def test_role_map_users_emails_and_groups():
    roles = parse_role_map("alice=operator, Bob@Company.COM=viewer,group:sre=operator+webhook,ci=webhook")
    assert roles.roles_of("alice") == {OPERATOR, VIEWER}
    # The domain compares in lower case, the part before @ as written.
    assert roles.roles_of("Bob@company.com") == {VIEWER}
    assert roles.roles_of("bob@company.com") is None
    assert roles.roles_of("carol@company.com", ["sre", "other"]) == {OPERATOR, VIEWER, WEBHOOK}
    assert roles.roles_of("ci") == {WEBHOOK}
    assert roles.roles_of("nobody", ["other"]) is None
    for bad, fragment in (("alice", "expected SUBJECT=ROLE"), ("alice=admin", "unknown role 'admin'"),
                          ("a=viewer,a=operator", "listed twice"), ("group:=viewer", "names no group")):
        with pytest.raises(ValueError, match=fragment):
            parse_role_map(bad)


def test_what_each_role_may_do():
    viewer = Principal("v", "basic", frozenset({VIEWER}))
    operator = Principal("o", "basic", frozenset({OPERATOR, VIEWER}))
    webhook = Principal("w", "webhook-basic", frozenset({WEBHOOK}))
    may = {name: [access for access in Access if who.may(access)]
           for name, who in (("viewer", viewer), ("operator", operator), ("webhook", webhook))}
    assert may == {"viewer": [Access.OPEN, Access.METRICS, Access.READ],
                   "operator": [Access.OPEN, Access.METRICS, Access.READ, Access.WRITE],
                   "webhook": [Access.OPEN, Access.WEBHOOK]}


def test_people_get_mapped_roles_else_the_default():
    mapped = parse_role_map("alice@company.com=operator,group:autopilot-viewers=viewer")
    auth = Authenticator(AuthSettings(roles=mapped))
    assert auth.roles_of_person("alice@company.com") == {OPERATOR, VIEWER}
    assert auth.roles_of_person("bob@company.com", ["autopilot-viewers"]) == {VIEWER}
    assert auth.roles_of_person("carol@company.com") == {VIEWER}
    strict = Authenticator(AuthSettings(roles=mapped, default_role=None))
    assert strict.roles_of_person("carol@company.com") == frozenset()


COMPANY = EmailPolicy(re.compile(r".*@company\.com"))


@pytest.mark.parametrize("user", COMPANY_USERS, ids=lambda user: user.id)
def test_company_people_are_allowed(user):
    assert COMPANY.judge(user.email, user.email_verified).allowed


@pytest.mark.parametrize("user", [u for u in TRICKY_USERS if u.id != "uppercase"], ids=lambda user: user.id)
def test_every_bypass_of_flowers_check_is_refused(user):
    verdict = COMPANY.judge(user.email, user.email_verified)
    assert not verdict.allowed, user.email
    # The same pattern as Flower users write it, dot unescaped, still refuses every one of them.
    assert not EmailPolicy(re.compile(r".*@company.com")).judge(user.email, user.email_verified).allowed


def test_why_an_address_is_refused():
    assert "not a valid email address" in COMPANY.judge("attacker@evil.com?x@company.com", True).reason
    assert "does not match" in COMPANY.judge("attacker@company.com.evil.com", True).reason
    assert "not say" in COMPANY.judge("mallory@company.com", False).reason
    assert "not say" in COMPANY.judge("mallory@company.com", "true").reason
    assert "no email" in COMPANY.judge(None, True).reason


def test_upper_case_domains_match_in_lower_case():
    """Domains are case-insensitive: ALICE@COMPANY.COM is an address at company.com (the part
    before @ stays as written, so it is not alice@company.com for --roles)."""
    assert COMPANY.judge("ALICE@COMPANY.COM", True).allowed


def test_the_throttle_allows_a_burst_then_one_per_interval():
    now = [100.0]
    throttle = LoginThrottle(ThrottleSettings(burst=3, interval=10.0), clock=lambda: now[0])
    keys = throttle_keys("10.0.0.1", "alice")
    for _ in range(3):
        assert throttle.retry_after(keys) is None
        throttle.failed(keys)
    assert throttle.retry_after(keys) == pytest.approx(10.0)
    # Another address trying the same user is held too; the first address with another user too.
    assert throttle.retry_after(throttle_keys("10.0.0.2", "alice")) == pytest.approx(10.0)
    assert throttle.retry_after(throttle_keys("10.0.0.1", "bob")) == pytest.approx(10.0)
    assert throttle.retry_after(throttle_keys("10.0.0.2", "bob")) is None
    now[0] += 4.0
    assert throttle.retry_after(keys) == pytest.approx(6.0)
    now[0] += 6.0
    assert throttle.retry_after(keys) is None
    throttle.failed(keys)
    assert throttle.retry_after(keys) == pytest.approx(10.0)


def test_the_throttle_forgets_the_oldest_keys_beyond_its_bound():
    throttle = LoginThrottle(ThrottleSettings(burst=1, interval=60.0), max_keys=2)
    for address in ("a", "b", "c"):
        throttle.failed([address])
    assert throttle.retry_after(["a"]) is None
    assert throttle.retry_after(["c"]) is not None


def test_users_file_in_exporter_toolkit_format(tmp_path):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: '{hashed}'\nrate_limit: {{interval: 1s, burst: 5}}\n")
    assert load_password_users(path) == {"alice": hashed.encode()}
    for text, fragment in ((f"basic_auth_users:\n  bob: hunter2\n", "basic_auth_users.bob: expected a bcrypt hash"),
                           (f"tls_server_config: {{}}\nbasic_auth_users: {{a: '{hashed}'}}\n", "--certfile"),
                           ("users: {}\n", "users: unknown key"), ("basic_auth_users: {}\n", "expected a mapping"),
                           ("basic_auth_users: [\n", "not valid YAML")):
        path.write_text(text)
        with pytest.raises(PasswordFileError, match=re.escape(fragment)) as failure:
            load_password_users(path)
        assert "hunter2" not in str(failure.value)


async def test_bcrypt_users_are_people_and_webhook_users_only_post_webhooks():
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4))
    auth = Authenticator(AuthSettings(password_users={"alice": hashed, "carol": hashed},
                                      roles=parse_role_map("alice=operator"),
                                      webhook_basic_users={"alertmanager": "am-pass"},
                                      webhook_bearer_tokens=("am-token",), basic_users={"admin": "adm"}))
    alice = await auth.password("alice", "s3cret", webhook=False)
    assert (alice.describe(), alice.roles) == ("basic:alice", {OPERATOR, VIEWER})
    assert (await auth.password("carol", "s3cret", webhook=False)).roles == {VIEWER}
    assert await auth.password("carol", "wrong", webhook=False) is None
    assert await auth.password("alertmanager", "am-pass", webhook=False) is None
    machine = await auth.password("alertmanager", "am-pass", webhook=True)
    assert (machine.describe(), machine.roles) == ("webhook-basic:alertmanager", {WEBHOOK})
    assert (await auth.authenticate("Bearer am-token")).roles == {WEBHOOK}
    assert (await auth.password("admin", "adm", webhook=False)).roles == ALL_ROLES
