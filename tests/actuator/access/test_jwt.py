"""Machines' JWT access tokens, verified against the REAL test provider's published keys: a token
the provider issued by client credentials is accepted; every forged one (TokenForge's hostile set,
made with the provider's own keys) is refused, in the verifier and over HTTP with 401."""
from __future__ import annotations

import pytest

from actuator.discovery import Discovery
from actuator.jwks import JwksCache
from actuator.provider_client import ProviderClient
from actuator.roles import Role
from actuator.settings import AuthSettings, JwtSettings
from actuator.tokens import TokenError, TokenVerifier
from tests.actuator.payloads import alert, notification
from tests.support.oidc_provider import ACTUATOR_RESOURCE, OidcProvider
from tests.support.signing_keys import generate_signing_key

AUDIENCE = ACTUATOR_RESOURCE.indicator
RULES = """
    rules:
      - {name: grow, match: {alertname: Grow}, actions: [{command: pool_grow, workers: all, n: 1}]}
"""


@pytest.fixture(scope="module")
def machine(oidc_provider: OidcProvider):
    return oidc_provider.register_client(grant_types=["client_credentials"], client_name="alertmanager")


def issued(provider: OidcProvider, client, scope: str = "webhook") -> str:
    return provider.client_credentials_token(client, resource=AUDIENCE, scope=scope)["access_token"]


@pytest.fixture
async def verifier(oidc_provider):
    client = ProviderClient()
    discovery = Discovery(oidc_provider.issuer, client)
    jwks = JwksCache(client, lambda: discovery.endpoint("jwks_uri"))
    yield TokenVerifier(oidc_provider.issuer, AUDIENCE, ("RS256",), jwks)
    await client.close()


async def test_the_providers_token_is_accepted(oidc_provider, machine, verifier):
    claims = await verifier.verify(issued(oidc_provider, machine))
    assert claims["client_id"] == machine.client_id and claims["scope"] == "webhook"
    assert verifier.jwks.fetches == 1


@pytest.mark.parametrize("fault", ["expired", "not-yet-valid", "no-expiry", "wrong-audience", "wrong-issuer",
                                   "alg-none", "hs256-with-public-key", "unknown-signer", "tampered-payload"])
async def test_every_forged_token_is_refused(oidc_provider, verifier, fault):
    forged = oidc_provider.forge.hostile_access_tokens(audience=AUDIENCE, subject="alertmanager")[fault]
    with pytest.raises(TokenError) as refusal:
        await verifier.verify(forged)
    expected = {"alg-none": "algorithm 'none' is not accepted", "hs256-with-public-key": "algorithm 'HS256'",
                "expired": "ExpiredSignatureError", "wrong-audience": "InvalidAudienceError",
                "wrong-issuer": "InvalidIssuerError", "no-expiry": 'MissingRequiredClaimError',
                "not-yet-valid": "ImmatureSignatureError", "unknown-signer": "InvalidSignatureError",
                "tampered-payload": "InvalidSignatureError"}[fault]
    assert expected in str(refusal.value)


async def test_a_genuine_signature_with_an_algorithm_not_pinned_is_refused(oidc_provider, verifier):
    forge = oidc_provider.forge
    token = forge.sign(forge.claims(audience=AUDIENCE, subject="alertmanager"), alg="ES256")
    with pytest.raises(TokenError, match="algorithm 'ES256' is not accepted"):
        await verifier.verify(token)


async def test_unknown_key_ids_refresh_the_keys_at_most_once_per_interval(oidc_provider, verifier):
    forge = oidc_provider.forge
    claims = forge.claims(audience=AUDIENCE, subject="alertmanager")
    await verifier.verify(forge.sign(claims))
    for kid in ("rotated-1", "rotated-2", "rotated-3"):
        with pytest.raises(TokenError, match=f"key id '{kid}' is not among"):
            await verifier.verify(forge.sign(claims, key=generate_signing_key("RS256", kid=kid)))
    assert verifier.jwks.fetches == 1, "a stream of unknown kids must not hammer the provider"
    verifier.jwks._min_refresh_interval = 0
    with pytest.raises(TokenError, match="key id 'rotated-4'"):
        await verifier.verify(forge.sign(claims, key=generate_signing_key("RS256", kid="rotated-4")))
    assert verifier.jwks.fetches == 2


async def test_over_http_a_token_posts_webhooks_and_forgeries_get_401(actuator_client, module_broker_url,
                                                                       oidc_provider, machine):
    jwt = JwtSettings(issuer=oidc_provider.issuer, audience=AUDIENCE,
                      scope_roles={"webhook": frozenset({Role.WEBHOOK}), "control": frozenset({Role.OPERATOR})})
    client = await actuator_client(RULES, module_broker_url, auth=AuthSettings(jwt=jwt))
    body = notification(alert({"alertname": "Nothing"}))
    bearer = {"Authorization": f"Bearer {issued(oidc_provider, machine)}"}
    assert (await client.post("/webhook", json=body, headers=bearer)).status == 200
    assert (await client.get("/actions", headers=bearer)).status == 403, "webhook scope: no reading"
    operator = {"Authorization": f"Bearer {issued(oidc_provider, machine, scope='control')}"}
    records = (await (await client.get("/actions", headers=operator)).json())["actions"]
    assert records[0]["principal"] == f"jwt:{machine.client_id}"
    assert (await client.post("/webhook", json=body, headers=operator)).status == 403
    for fault, token in oidc_provider.forge.hostile_access_tokens(audience=AUDIENCE, subject="alertmanager").items():
        answer = await client.post("/webhook", json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status == 401, fault
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="celery-autopilot"'
