"""A REAL Alertmanager reaches the actuator the two ways production does, and the actuator acts on
a real worker (its pool, as the worker itself reports it, grows):

- ``http_config.oauth2``: client credentials at the REAL test provider, a JWT access token the
  actuator verifies against the provider's keys (forged ones get 401);
- HTTPS with mutual TLS: ``tls_config`` with the test CA and a client certificate, plus the
  webhook's own basic credentials; without a client certificate there is no connection at all.
"""
from __future__ import annotations

import subprocess

import pytest
import requests

from tests.actuator.conftest import write_rules
from tests.support.actuator_process import ActuatorProcess
from tests.support.alertmanager import Alertmanager, webhook_config
from tests.support.inspection import pool_size
from tests.support.oidc_provider import ACTUATOR_RESOURCE
from tests.support.polling import wait_for
from tests.support.workers import ROOT

pytestmark = pytest.mark.e2e

WORKER = "w1@alertmanager-access"
RULES = f"""
    rules:
      - name: grow
        match: {{alertname: GrowPool}}
        actions: [{{command: pool_grow, workers: {{name: "{WORKER}"}}, n: 1}}]
"""


@pytest.fixture(scope="module")
def worker(start_workers):
    return start_workers({"name": WORKER, "queues": ["celery"], "concurrency": 2})[0]


def fire(alertmanager: Alertmanager, via: str) -> None:
    alertmanager.post_alerts([{"labels": {"alertname": "GrowPool", "via": via},
                               "annotations": {"summary": "grow the pool"}}])


def test_alertmanager_oauth2_token_reaches_the_actuator_which_acts(worker, inspector, oidc_provider,
                                                                   module_broker_url, tmp_path):
    actuator = ActuatorProcess(write_rules(tmp_path, RULES), module_broker_url,
                               "--jwt-issuer", oidc_provider.issuer, "--jwt-audience", ACTUATOR_RESOURCE.indicator,
                               "--jwt-scope-roles", "webhook=webhook,control=viewer", "--discovery-interval", "1")
    actuator.start()
    try:
        client = oidc_provider.register_client(grant_types=["client_credentials"], client_name="alertmanager")
        forged = oidc_provider.forge.hostile_access_tokens(audience=ACTUATOR_RESOURCE.indicator,
                                                           subject=client.client_id)
        for fault, token in forged.items():
            answer = requests.post(f"{actuator.url}/webhook", json={}, timeout=10,
                                   headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401, fault
        before = pool_size(inspector, WORKER)
        oauth2 = oidc_provider.alertmanager_oauth2(client, resource=ACTUATOR_RESOURCE.indicator, scopes=["webhook"])
        with Alertmanager(webhook_config(f"{actuator.url}/webhook", http_config={"oauth2": oauth2})) as am:
            fire(am, "oauth2")
            wait_for(lambda: pool_size(inspector, WORKER) == before + 1, timeout=30,
                     what="the worker's pool to grow by the webhook Alertmanager sent")
        reader = oidc_provider.client_credentials_token(client, resource=ACTUATOR_RESOURCE.indicator, scope="control")
        records = requests.get(f"{actuator.url}/actions", params={"source": "webhook"}, timeout=10,
                               headers={"Authorization": f"Bearer {reader['access_token']}"}).json()["actions"]
        assert [(r["command"], r["outcome"], r["principal"]) for r in records] == \
            [("pool_grow", "sent", f"jwt:{client.client_id}")]
        log = actuator.log_text()
        assert f"allow jwt:{client.client_id} (webhook) POST /webhook" in log
        assert "JWT refused: algorithm 'none' is not accepted" in log
        assert all(token not in log for token in forged.values())
    finally:
        actuator.stop()


def test_alertmanager_over_mutual_tls_reaches_the_actuator_which_acts(worker, inspector, certificate_authority,
                                                                      module_broker_url, tmp_path):
    ca = certificate_authority
    server, am_cert = ca.issue_server("actuator"), ca.issue_client("alertmanager")
    actuator = ActuatorProcess(write_rules(tmp_path, RULES), module_broker_url,
                               "--certfile", str(server.cert_file), "--keyfile", str(server.key_file),
                               "--client-ca", str(ca.cert_file), "--webhook-basic-auth", "alertmanager:am-tls-pw",
                               "--basic-auth", "admin:admin-tls-pw", "--discovery-interval", "1",
                               verify=ca.cert_file, cert=(am_cert.cert_file, am_cert.key_file))
    actuator.start()
    try:
        assert actuator.url.startswith("https://")
        # TLS 1.3 checks the client certificate after the handshake: the server hangs up (an SSLError
        # or a dropped connection, both ConnectionErrors to requests), and no answer ever comes.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{actuator.url}/healthz", verify=str(ca.cert_file), timeout=5)
        stranger = ca.__class__(tmp_path / "other-ca").issue_client("alertmanager")
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{actuator.url}/healthz", verify=str(ca.cert_file), timeout=5,
                         cert=(str(stranger.cert_file), str(stranger.key_file)))
        login = requests.get(f"{actuator.url}/login", verify=actuator.verify, cert=actuator.cert, timeout=5)
        cookie = next(c for c in login.cookies if c.name == "autopilot_session")
        assert cookie.secure, "under TLS the session cookie is Secure"

        before = pool_size(inspector, WORKER)
        http_config = {"basic_auth": {"username": "alertmanager", "password": "am-tls-pw"},
                       "tls_config": {"ca_file": str(ca.cert_file), "cert_file": str(am_cert.cert_file),
                                      "key_file": str(am_cert.key_file)}}
        with Alertmanager(webhook_config(f"{actuator.url}/webhook", http_config=http_config)) as am:
            fire(am, "mtls")
            wait_for(lambda: pool_size(inspector, WORKER) == before + 1, timeout=30,
                     what="the worker's pool to grow by the webhook Alertmanager sent over mutual TLS")
        records = requests.get(f"{actuator.url}/actions", params={"source": "webhook"}, auth=("admin", "admin-tls-pw"),
                               verify=actuator.verify, cert=actuator.cert, timeout=10).json()["actions"]
        assert [(r["outcome"], r["principal"]) for r in records] == [("sent", "webhook-basic:alertmanager")]
    finally:
        actuator.stop()


def test_the_actuator_refuses_to_start_on_a_key_that_does_not_match(certificate_authority, module_broker_url,
                                                                    tmp_path):
    one, other = certificate_authority.issue_server("one"), certificate_authority.issue_server("other")
    actuator = ActuatorProcess(write_rules(tmp_path, RULES), module_broker_url, "--certfile", str(one.cert_file),
                               "--keyfile", str(other.key_file), "--no-auth")
    result = subprocess.run(actuator.command, capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 1
    assert f"error: --certfile {one.cert_file} / --keyfile {other.key_file}: cannot load them" in result.stderr
