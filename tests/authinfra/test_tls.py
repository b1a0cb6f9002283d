"""Certificates from tls.py work with every party issue 7 puts on TLS.

Python clients and aiohttp servers (trust, refusal, mutual TLS), a real Prometheus scraping an
HTTPS target with basic auth (the exporter's ``--web.config.file`` case), and a real
Alertmanager posting over mutual TLS with an oauth2 bearer token fetched from an HTTPS
provider (the actuator's ``--certfile``/``--keyfile``/client CA case).
"""
from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import requests
from aiohttp import web

from tests.support.alertmanager import Alertmanager, webhook_config
from tests.support.background_http import BackgroundApp
from tests.support.oidc_provider import ACTUATOR_RESOURCE, OidcProvider, machine_client
from tests.support.prometheus import Prometheus, scrape_config, scrape_job
from tests.support.tls import (
    CertificateAuthority, IssuedCertificate, client_context, peer_common_name, server_context,
)
from tests.support.webhook_receiver import WebhookReceiver

SCRAPE_USER, SCRAPE_PASSWORD = "prometheus", "s3cret scrape password"


@pytest.fixture(scope="module")
def server_cert(certificate_authority: CertificateAuthority) -> IssuedCertificate:
    return certificate_authority.issue_server()


@pytest.fixture(scope="module")
def stranger_ca(tmp_path_factory) -> CertificateAuthority:
    """Another CA: its certificates look right and must still be refused."""
    return CertificateAuthority(tmp_path_factory.mktemp("stranger-ca"), name="stranger CA")


def hello_app() -> web.Application:
    """Answers with the common name of the client certificate, if any."""
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=peer_common_name(request) or "anonymous")

    app = web.Application()
    app.router.add_get("/", hello)
    return app


def fetch(url: str, context: ssl.SSLContext) -> str:
    with urllib.request.urlopen(url, context=context, timeout=5) as response:
        return response.read().decode()


def test_a_client_trusting_the_ca_connects_and_others_do_not(certificate_authority, server_cert, stranger_ca):
    with BackgroundApp(hello_app(), ssl_context=server_context(server_cert)) as app:
        assert app.base_url.startswith("https://127.0.0.1:")
        assert fetch(app.base_url, client_context(ca_file=certificate_authority.cert_file)) == "anonymous"
        localhost = app.base_url.replace("127.0.0.1", "localhost")
        assert fetch(localhost, client_context(ca_file=certificate_authority.cert_file)) == "anonymous"
        for context in (client_context(ca_file=None), client_context(ca_file=stranger_ca.cert_file)):
            with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
                fetch(app.base_url, context)


def test_mutual_tls_requires_a_client_certificate_from_the_ca(certificate_authority, server_cert, stranger_ca):
    context = server_context(server_cert, client_ca=certificate_authority.cert_file)
    trusted = certificate_authority.cert_file
    with BackgroundApp(hello_app(), ssl_context=context) as app:
        operator = certificate_authority.issue_client("operator")
        assert fetch(app.base_url, client_context(ca_file=trusted, cert=operator)) == "operator"

        impostor = stranger_ca.issue_client("operator")
        for refused in (client_context(ca_file=trusted), client_context(ca_file=trusted, cert=impostor)):
            # TLS 1.3 reports the server's refusal at the first read: an SSL alert or a reset.
            with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionResetError)):
                fetch(app.base_url, refused)


class BasicAuthTarget(BackgroundApp):
    """A /metrics target behind basic auth that counts the scrapes it let in, per user."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self.admitted: dict[str, int] = {}
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        super().__init__(app, ssl_context=ssl_context)

    async def _metrics(self, request: web.Request) -> web.Response:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        credentials = base64.b64decode(encoded).decode() if scheme == "Basic" else ""
        user, _, password = credentials.partition(":")
        if (user, password) != (SCRAPE_USER, SCRAPE_PASSWORD):
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="metrics"'})
        self.admitted[user] = self.admitted.get(user, 0) + 1
        return web.Response(text="# TYPE tls_probe gauge\ntls_probe 1\n", content_type="text/plain")


@pytest.mark.e2e
def test_prometheus_scrapes_https_with_basic_auth_and_refuses_what_is_wrong(certificate_authority, server_cert,
                                                                            stranger_ca):
    ca = str(certificate_authority.cert_file)
    with BasicAuthTarget(server_context(server_cert)) as target:
        jobs = [
            scrape_job("right", [target.address], scheme="https", tls_config={"ca_file": ca},
                       basic_auth={"username": SCRAPE_USER, "password": SCRAPE_PASSWORD}),
            scrape_job("wrong-password", [target.address], scheme="https", tls_config={"ca_file": ca},
                       basic_auth={"username": SCRAPE_USER, "password": "guess"}),
            scrape_job("untrusted", [target.address], scheme="https",
                       tls_config={"ca_file": str(stranger_ca.cert_file)},
                       basic_auth={"username": SCRAPE_USER, "password": SCRAPE_PASSWORD}),
        ]
        with Prometheus(scrape_config(*jobs)) as prometheus:
            targets = prometheus.scraped_targets(len(jobs), timeout=20)
            value = prometheus.query('tls_probe{job="right"}')

    assert targets["right"]["health"] == "up"
    assert [sample["value"][1] for sample in value] == ["1"]
    assert target.admitted[SCRAPE_USER] >= 1
    assert targets["wrong-password"]["health"] == "down"
    assert "401" in targets["wrong-password"]["lastError"]
    assert targets["untrusted"]["health"] == "down"
    assert "certificate" in targets["untrusted"]["lastError"]


@pytest.fixture(scope="module")
def https_provider(certificate_authority: CertificateAuthority) -> Iterator[OidcProvider]:
    cert = certificate_authority.issue_server("oidc-provider")
    with OidcProvider(users=(), clients=[machine_client("alertmanager")], tls=(cert.cert_file, cert.key_file),
                      ca_file=certificate_authority.cert_file) as provider:
        yield provider


def test_the_provider_serves_https_to_clients_trusting_the_ca(https_provider):
    assert https_provider.issuer.startswith("https://127.0.0.1:")
    assert https_provider.discovery()["token_endpoint"].startswith(https_provider.issuer)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https_provider.discovery_url, timeout=5)


@pytest.mark.e2e
def test_alertmanager_posts_over_mutual_tls_with_a_token_from_an_https_provider(
    certificate_authority, server_cert, https_provider,
):
    client_cert = certificate_authority.issue_client("alertmanager")
    [client] = https_provider.clients
    http_config = {
        "oauth2": https_provider.alertmanager_oauth2(client, resource=ACTUATOR_RESOURCE.indicator, scopes=["webhook"]),
        "tls_config": {"ca_file": str(certificate_authority.cert_file), "cert_file": str(client_cert.cert_file),
                       "key_file": str(client_cert.key_file)},
    }
    receiver_tls = server_context(server_cert, client_ca=certificate_authority.cert_file)

    with WebhookReceiver(ssl_context=receiver_tls) as receiver, \
            Alertmanager(webhook_config(receiver.url, http_config=http_config)) as am:
        am.post_alerts([{"labels": {"alertname": "TLSProbe"}}])
        notification = receiver.wait_for(lambda n: "TLSProbe" in n.alertnames, what="the TLSProbe webhook")

    assert receiver.url.startswith("https://")
    assert notification.client_certificate == "alertmanager"
    scheme, _, token = notification.headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    claims = https_provider.verified_claims(token, audience=ACTUATOR_RESOURCE.indicator, algorithms=["RS256"])
    assert claims["client_id"] == "alertmanager"
