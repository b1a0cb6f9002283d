"""Real Alertmanager with ``http_config.oauth2`` fetches a token from the test provider and sends it.

This is the machine half of issue 7: the actuator will verify these very tokens (issuer,
audience, expiry, pinned algorithm) against the provider's JWKS. Here a WebhookReceiver stands
in for the actuator and the test verifies what it received.
"""
from __future__ import annotations

import pytest

from tests.support.alertmanager import Alertmanager, webhook_config
from tests.support.oidc_provider import ACTUATOR_RESOURCE, OidcClient, OidcProvider
from tests.support.polling import wait_for
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e


def probe_alert(name: str) -> list[dict]:
    return [{"labels": {"alertname": name, "severity": "none"},
             "annotations": {"summary": "a probe of the webhook's credentials"}}]


def oauth2_webhook(receiver: WebhookReceiver, oauth2: dict) -> dict:
    return webhook_config(receiver.url, http_config={"oauth2": oauth2})


def bearer(headers: dict[str, str]) -> str:
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    assert scheme == "Bearer", f"expected a bearer token, got Authorization {headers.get('Authorization')!r}"
    return token


def test_alertmanager_sends_a_jwt_from_the_provider_for_the_actuator(oidc_provider: OidcProvider):
    client = oidc_provider.register_client(grant_types=["client_credentials"], client_name="alertmanager")
    oauth2 = oidc_provider.alertmanager_oauth2(client, resource=ACTUATOR_RESOURCE.indicator, scopes=["webhook"])

    with WebhookReceiver() as receiver, Alertmanager(oauth2_webhook(receiver, oauth2)) as am:
        am.post_alerts(probe_alert("OAuth2Probe"))
        notification = receiver.wait_for(lambda n: "OAuth2Probe" in n.alertnames, what="the OAuth2Probe webhook")

    claims = oidc_provider.verified_claims(bearer(notification.headers), audience=ACTUATOR_RESOURCE.indicator,
                                           algorithms=["RS256"])
    assert claims["client_id"] == client.client_id
    assert claims["scope"] == "webhook"
    assert claims["iss"] == oidc_provider.issuer


def test_alertmanager_with_a_wrong_secret_posts_nothing(oidc_provider: OidcProvider):
    client = oidc_provider.register_client(grant_types=["client_credentials"], client_name="alertmanager")
    impostor = OidcClient(client.client_id, "not-the-secret")
    oauth2 = oidc_provider.alertmanager_oauth2(impostor, resource=ACTUATOR_RESOURCE.indicator)

    with WebhookReceiver() as receiver, Alertmanager(oauth2_webhook(receiver, oauth2)) as am:
        am.post_alerts(probe_alert("OAuth2Probe"))
        wait_for(lambda: "invalid_client" in am.log_text(), timeout=15, interval=0.1,
                 what="Alertmanager to log the provider's refusal of its token request")

        assert receiver.notifications == []
