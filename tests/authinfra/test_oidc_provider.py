"""The test OpenID provider behaves like a real one: discovery, JWKS, code + PKCE, client credentials.

Python plays the relying party here (oidc_login.py) and verifies every token with PyJWT against
the JWKS the provider publishes, so these tests hold when the provider, the keys handed to it
or the login helpers break.
"""
from __future__ import annotations

import html
import time

import jwt
import pytest

from tests.support.oidc_login import (
    HeadlessLogin, LoginRefused, authorization_request, callback_params, exchange_code,
)
from tests.support.oidc_provider import (
    ACTUATOR_RESOURCE, DEFAULT_USERS, OidcClient, OidcProvider, OidcProviderError, OidcUser, ResourceServer,
    machine_client,
)
from tests.support.ports import free_port

from .relying_party import RelyingParty


@pytest.fixture(scope="module")
def redirect_uri() -> str:
    """A callback nobody listens on: the login stops at the redirect to it."""
    return f"http://127.0.0.1:{free_port()}/callback"


@pytest.fixture(scope="module")
def web_client(oidc_provider: OidcProvider, redirect_uri: str) -> OidcClient:
    return oidc_provider.register_client([redirect_uri], client_name="test relying party")


@pytest.fixture(scope="module")
def machine(oidc_provider: OidcProvider) -> OidcClient:
    return oidc_provider.register_client(grant_types=["client_credentials"], client_name="test machine")


def log_in(provider: OidcProvider, client: OidcClient, redirect_uri: str, user: OidcUser, **extra: str):
    request = authorization_request(provider, client, redirect_uri, **extra)
    redirect = HeadlessLogin(provider).log_in(request.url, user, stop_at=redirect_uri)
    return request, callback_params(redirect)


def test_discovery_announces_what_issue_7_relies_on(oidc_provider):
    discovery = oidc_provider.discovery()

    assert discovery["issuer"] == oidc_provider.issuer
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert {"authorization_code", "client_credentials"} <= set(discovery["grant_types_supported"])
    assert {"email", "email_verified", "groups"} <= set(discovery["claims_supported"])
    assert "RS256" in discovery["id_token_signing_alg_values_supported"]
    published = {key["kid"]: key for key in oidc_provider.jwks()["keys"]}
    assert set(published) == {key.kid for key in oidc_provider.keys}
    assert all("d" not in key for key in published.values()), "the JWKS must hold public keys only"


@pytest.mark.parametrize("user", DEFAULT_USERS, ids=[user.id for user in DEFAULT_USERS])
def test_code_flow_with_pkce_gives_a_verifiable_id_token_with_the_email_exactly(
    oidc_provider, web_client, redirect_uri, user,
):
    request, params = log_in(oidc_provider, web_client, redirect_uri, user)
    assert params["state"] == request.state
    assert params["iss"] == oidc_provider.issuer

    tokens = exchange_code(oidc_provider, web_client, params["code"], redirect_uri=redirect_uri,
                           code_verifier=request.code_verifier)
    claims = oidc_provider.verified_claims(tokens["id_token"], audience=web_client.client_id, algorithms=["RS256"])

    assert jwt.get_unverified_header(tokens["id_token"])["alg"] == "RS256"
    assert claims["sub"] == user.id
    assert claims["nonce"] == request.nonce
    assert claims["groups"] == list(user.groups)
    if user.email is None:
        assert "email" not in claims
    else:
        assert claims["email"] == user.email
        assert claims["email_verified"] is user.email_verified


def test_a_headless_login_at_a_relying_party_ends_on_its_page_signed_in(oidc_provider):
    """How issue 7's tests will log in at the console as anyone, hostile emails included."""
    with RelyingParty(oidc_provider) as relying_party:
        for user in DEFAULT_USERS:
            page = HeadlessLogin(oidc_provider).log_in(f"{relying_party.base_url}/login", user)

            assert page.status_code == 200, page.text
            assert page.url.startswith(relying_party.redirect_uri)
            assert html.unescape(page.text.split("<p id='who'>")[1].split("</p>")[0]) == (user.email or "")
        assert [claims["sub"] for claims in relying_party.signed_in] == [user.id for user in DEFAULT_USERS]


def test_the_code_needs_its_pkce_verifier_and_works_once(oidc_provider, web_client, redirect_uri):
    request, params = log_in(oidc_provider, web_client, redirect_uri, oidc_provider.user("alice"))

    def exchange(verifier: str | None) -> dict:
        return exchange_code(oidc_provider, web_client, params["code"], redirect_uri=redirect_uri,
                             code_verifier=verifier)

    with pytest.raises(OidcProviderError, match="invalid_grant"):
        exchange("not-the-verifier-" + "x" * 40)
    with pytest.raises(OidcProviderError, match="invalid_grant"):
        exchange(None)
    assert "id_token" in exchange(request.code_verifier)
    with pytest.raises(OidcProviderError, match="invalid_grant"):
        exchange(request.code_verifier)


def test_authorization_without_pkce_is_refused(oidc_provider, web_client, redirect_uri):
    request = authorization_request(oidc_provider, web_client, redirect_uri)
    without_pkce = request.url.replace("code_challenge_method=S256", "").replace("code_challenge=", "dropped=")

    redirect = HeadlessLogin(oidc_provider).session.get(without_pkce, allow_redirects=False, timeout=10)

    params = callback_params(redirect)
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]


def test_a_wrong_password_is_refused(oidc_provider, web_client, redirect_uri):
    request = authorization_request(oidc_provider, web_client, redirect_uri)
    impostor = OidcUser("alice", "alice@company.com", password="guess")

    with pytest.raises(LoginRefused, match="alice"):
        HeadlessLogin(oidc_provider).log_in(request.url, impostor, stop_at=redirect_uri)


def test_single_sign_on_until_the_relying_party_asks_for_a_login(oidc_provider, web_client, redirect_uri):
    browser = HeadlessLogin(oidc_provider)
    alice, bob = oidc_provider.user("alice"), oidc_provider.user("bob")
    browser.log_in(authorization_request(oidc_provider, web_client, redirect_uri).url, alice, stop_at=redirect_uri)

    def logged_in_as(user: OidcUser, **extra: str) -> str:
        request = authorization_request(oidc_provider, web_client, redirect_uri, **extra)
        params = callback_params(browser.log_in(request.url, user, stop_at=redirect_uri))
        tokens = exchange_code(oidc_provider, web_client, params["code"], redirect_uri=redirect_uri,
                               code_verifier=request.code_verifier)
        return oidc_provider.verified_claims(tokens["id_token"], audience=web_client.client_id)["sub"]

    assert logged_in_as(bob) == "alice", "the provider's session cookie should log alice in silently"
    assert logged_in_as(bob, prompt="login") == "bob"


def test_client_credentials_give_a_jwt_access_token_for_the_resource(oidc_provider, machine):
    answer = oidc_provider.client_credentials_token(machine, resource=ACTUATOR_RESOURCE.indicator, scope="webhook")

    token = answer["access_token"]
    claims = oidc_provider.verified_claims(token, audience=ACTUATOR_RESOURCE.indicator, algorithms=["RS256"])
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["kid"] == oidc_provider.forge.key_for("RS256").kid
    assert claims["client_id"] == claims["sub"] == machine.client_id
    assert claims["scope"] == "webhook"
    assert claims["exp"] - claims["iat"] == ACTUATOR_RESOURCE.ttl == answer["expires_in"]


def test_client_credentials_refused_for_bad_secret_unknown_resource_or_foreign_scope(oidc_provider, machine):
    impostor = OidcClient(machine.client_id, "not-the-secret", grant_types=machine.grant_types)
    with pytest.raises(OidcProviderError, match="invalid_client"):
        oidc_provider.client_credentials_token(impostor, resource=ACTUATOR_RESOURCE.indicator)
    with pytest.raises(OidcProviderError, match="invalid_target"):
        oidc_provider.client_credentials_token(machine, resource="https://elsewhere.test")
    answer = oidc_provider.client_credentials_token(machine, resource=ACTUATOR_RESOURCE.indicator, scope="admin")
    claims = oidc_provider.verified_claims(answer["access_token"], audience=ACTUATOR_RESOURCE.indicator)
    assert "scope" not in claims, "a scope the resource server does not list must not be granted"


def test_es256_access_tokens_and_a_default_resource():
    """What Okta-like deployments do: no ``resource`` parameter, audience from the provider, EC keys."""
    api = ResourceServer("https://api.autopilot.test", audience="autopilot", alg="ES256", ttl=60)
    client = machine_client()
    with OidcProvider(users=(), clients=[client], resource_servers=[api], default_resource=api.indicator) as provider:
        token = provider.client_credentials_token(client)["access_token"]

        assert jwt.get_unverified_header(token)["alg"] == "ES256"
        claims = provider.verified_claims(token, audience="autopilot", algorithms=["ES256"])
        assert claims["client_id"] == client.client_id
        with pytest.raises(jwt.InvalidAlgorithmError):
            provider.verified_claims(token, audience="autopilot", algorithms=["RS256"])


# The error a strict verifier (issuer, audience, pinned algorithms, exp/iat required) raises for
# each forged token: proof that every one of them differs from a genuine token in its named fault.
EXPECTED_REFUSALS = {
    "expired": jwt.ExpiredSignatureError,
    "not-yet-valid": jwt.ImmatureSignatureError,
    "no-expiry": jwt.MissingRequiredClaimError,
    "wrong-audience": jwt.InvalidAudienceError,
    "wrong-issuer": jwt.InvalidIssuerError,
    "alg-none": jwt.InvalidAlgorithmError,
    "hs256-with-public-key": jwt.InvalidAlgorithmError,
    "unknown-signer": jwt.InvalidSignatureError,
    "tampered-payload": jwt.InvalidSignatureError,
}


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_forged_tokens_fail_only_for_their_named_fault(oidc_provider, alg):
    forge = oidc_provider.forge
    audience = ACTUATOR_RESOURCE.indicator
    genuine = forge.sign(forge.claims(audience=audience, subject="alertmanager", scope="webhook"), alg=alg)
    assert oidc_provider.verified_claims(genuine, audience=audience)["sub"] == "alertmanager"

    hostile = forge.hostile_access_tokens(audience=audience, subject="alertmanager", alg=alg, scope="webhook")

    assert set(hostile) == set(EXPECTED_REFUSALS)
    for name, token in hostile.items():
        with pytest.raises(EXPECTED_REFUSALS[name]):
            oidc_provider.verified_claims(token, audience=audience)
        # Each differs in its fault only: the rest of the token is the genuine article.
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["iss"] in (oidc_provider.issuer, f"{oidc_provider.issuer}/evil"), name
        assert claims["scope"] == "webhook", name


def test_id_tokens_expire_as_configured(oidc_provider, web_client, redirect_uri):
    request, params = log_in(oidc_provider, web_client, redirect_uri, oidc_provider.user("bob"))
    tokens = exchange_code(oidc_provider, web_client, params["code"], redirect_uri=redirect_uri,
                           code_verifier=request.code_verifier)
    claims = oidc_provider.verified_claims(tokens["id_token"], audience=web_client.client_id)
    assert claims["exp"] - claims["iat"] == oidc_provider.id_token_ttl
    assert abs(claims["iat"] - time.time()) < 30
