"""``--web.config.file``: exporter-toolkit's format checked at start with precise errors, bcrypt
basic auth with its cache, and the real thing: a real Prometheus scraping the exporter over HTTPS
with basic auth and with mutual TLS, certificates made by the test."""
from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import textwrap
from pathlib import Path

import bcrypt
import pytest
import requests

from exporter import web_access
from exporter.cli import UsageError, parse_settings
from exporter.web_access import BasicAuth, TokenBucket
from exporter.server import make_app
from exporter.web_config import RateLimit, WebConfig, WebConfigError, load_web_config
from tests.support.exporter import ROOT, start_exporter
from tests.support.prometheus import Prometheus, scrape_config, scrape_job
from tests.support.tls import CertificateAuthority, IssuedCertificate, client_context

USER, PASSWORD = "prometheus", "s3cret scrape password"
# Cost 4, bcrypt's cheapest, keeps the tests fast; the cost does not change what is checked.
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


@pytest.fixture(scope="module")
def server_cert(certificate_authority: CertificateAuthority) -> IssuedCertificate:
    return certificate_authority.issue_server("exporter")


def write(directory: Path, text: str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def tls_block(cert: IssuedCertificate, **extra: str) -> str:
    lines = [f"  cert_file: {cert.cert_file}", f"  key_file: {cert.key_file}",
             *(f"  {key}: {value}" for key, value in extra.items())]
    return "tls_server_config:\n" + "\n".join(lines) + "\n"


def test_a_complete_file_loads_with_relative_paths_from_its_directory(tmp_path, server_cert, certificate_authority):
    for source in (server_cert.cert_file, server_cert.key_file, certificate_authority.cert_file):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    path = write(tmp_path, f"""\
        tls_server_config:
          cert_file: {server_cert.cert_file.name}
          key_file: {server_cert.key_file.name}
          client_auth_type: RequireAndVerifyClientCert
          client_ca_file: {certificate_authority.cert_file.name}
          min_version: TLS13
          cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
        http_server_config:
          http2: false
          headers: {{X-Frame-Options: deny, Strict-Transport-Security: max-age=31536000}}
        basic_auth_users:
          {USER}: {HASH}
        rate_limit: {{interval: 250ms, burst: 5}}
        """)
    config = load_web_config(str(path))
    assert config.tls.cert_file == tmp_path / server_cert.cert_file.name
    assert config.tls.client_ca_file == tmp_path / certificate_authority.cert_file.name
    assert (config.tls.client_auth_type, config.tls.min_version) == ("RequireAndVerifyClientCert", "TLS13")
    assert config.basic_auth_users == {USER: HASH.encode()}
    assert config.headers == {"X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=31536000"}
    assert config.rate_limit == RateLimit(0.25, 5)
    assert load_web_config("") is None
    assert load_web_config(str(write(tmp_path, "", "empty.yml"))).tls is None


@pytest.mark.parametrize(("body", "culprit", "expected"), [
    ("tls_config: {{}}\n", ": tls_config: unknown key",
     "expected one of tls_server_config, http_server_config, basic_auth_users, rate_limit"),
    ("{tls}  sert_file: x\n", "tls_server_config.sert_file: unknown key", "expected one of cert_file"),
    ("tls_server_config:\n  cert: '-----BEGIN CERTIFICATE-----'\n", "tls_server_config.cert:",
     "put it in a file and give cert_file"),
    ("tls_server_config:\n  cert_file: {cert}\n", "tls_server_config.key_file: missing", "needs cert_file and key_file"),
    ("tls_server_config:\n  cert_file: nowhere.pem\n  key_file: {key}\n", "tls_server_config.cert_file:",
     "nowhere.pem is not a readable file"),
    ("{tls}  client_auth_type: RequireSomething\n", "tls_server_config.client_auth_type: got 'RequireSomething'",
     "expected one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"),
    ("{tls}  client_auth_type: RequireAnyClientCert\n  client_ca_file: {ca}\n",
     "tls_server_config.client_auth_type:", "without verifying them; use RequireAndVerifyClientCert"),
    ("{tls}  client_auth_type: RequireAndVerifyClientCert\n", "tls_server_config.client_ca_file: missing",
     "verifies client certificates against it"),
    ("{tls}  client_ca_file: {ca}\n", "tls_server_config.client_auth_type:",
     "a client CA is configured but client_auth_type is NoClientCert"),
    ("{tls}  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.min_version:",
     "TLS13 is above max_version TLS12"),
    ("{tls}  min_version: TLS1.2\n", "tls_server_config.min_version: got 'TLS1.2'", "one of TLS10, TLS11"),
    ("{tls}  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "tls_server_config.cipher_suites[0]: got",
     "expected one of TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    ("{tls}  curve_preferences: [X25519]\n", "tls_server_config.curve_preferences:", "cannot set a list of curves"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {other_key}\n", "tls_server_config.cert_file/key_file:",
     "cannot load"),
    ("basic_auth_users:\n  prometheus: hunter2-plaintext\n", "basic_auth_users.prometheus:",
     "expected a bcrypt hash such as $2y$10$"),
    ("basic_auth_users:\n  a: {hash}\n  a: {hash}\n", ":3: not valid YAML", "duplicate key 'a'"),
    ("basic_auth_users: [prometheus]\n", "basic_auth_users:", "a mapping of user names to bcrypt hashes"),
    ("http_server_config:\n  headers: {{X-Frame-Options: allow}}\n",
     "http_server_config.headers.X-Frame-Options: got 'allow'", "one of deny, sameorigin"),
    ("http_server_config:\n  headers: {{Server: x}}\n", "http_server_config.headers.Server: unknown key",
     "Strict-Transport-Security"),
    ("rate_limit: {{interval: soon, burst: 2}}\n", "rate_limit.interval: got 'soon'", "100ms, 1s or 1m30s"),
    ("rate_limit: {{interval: 1s}}\n", "rate_limit.burst: got None", "an integer >= 1"),
    ("tls_server_config: [\n", ": not valid YAML", ""),
])
def test_errors_name_the_file_the_key_and_what_was_expected(tmp_path, server_cert, certificate_authority,
                                                            body, culprit, expected):
    other = certificate_authority.issue_server("other")
    text = body.format(tls=tls_block(server_cert), cert=server_cert.cert_file, key=server_cert.key_file,
                       ca=certificate_authority.cert_file, other_key=other.key_file, hash=HASH)
    path = write(tmp_path, text)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(str(path))
    message = str(caught.value)
    assert message.startswith(str(path)) and culprit in message and expected in message, message
    assert "hunter2" not in message


def test_the_cli_refuses_a_bad_file_naming_the_flag(tmp_path):
    path = write(tmp_path, "basic_auth_users:\n  prometheus: plaintext\n")
    with pytest.raises(UsageError, match=r"^--web.config.file: .*basic_auth_users.prometheus"):
        parse_settings(["--broker-url", "redis://h/0", "--web.config.file", str(path)], {})
    done = subprocess.run([sys.executable, "-m", "exporter", "--broker-url", "redis://h/0"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                               "AUTOPILOT_EXPORTER_WEB_CONFIG_FILE": str(path)})
    assert done.returncode == 2
    assert f"error: AUTOPILOT_EXPORTER_WEB_CONFIG_FILE: {path}: basic_auth_users.prometheus:" in done.stderr


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_remembers_successes_only(monkeypatch):
    checks: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checks.append(password)
        return real_checkpw(password, hashed)
    monkeypatch.setattr(web_access.bcrypt, "checkpw", counting_checkpw)
    auth = BasicAuth({USER: HASH.encode()})

    async def run() -> list[str | None]:
        headers = [basic(USER, PASSWORD), basic(USER, PASSWORD), basic(USER, "guess"), basic(USER, "guess"),
                   basic("nobody", PASSWORD), "Bearer x", basic(USER, PASSWORD)[:-2], None]
        return [await auth.user(header) for header in headers]
    assert asyncio.run(run()) == [USER, USER, None, None, None, None, None, None]
    # One check for the right password, then the cache; every wrong guess pays its own check,
    # and an unknown user is checked too (against the dummy hash), so timing does not tell.
    assert checks == [PASSWORD.encode(), b"guess", b"guess", PASSWORD.encode()]


def test_the_token_bucket_allows_a_burst_then_one_per_interval():
    now = [100.0]
    bucket = TokenBucket(RateLimit(interval=0.5, burst=2), clock=lambda: now[0])
    assert [bucket.allow() for _ in range(3)] == [True, True, False]
    now[0] += 0.5
    assert [bucket.allow(), bucket.allow()] == [True, False]


async def test_headers_on_every_answer_and_the_rate_limit_over_all_requests(aiohttp_client):
    config = WebConfig(source="web.yml", basic_auth_users={USER: HASH.encode()},
                       headers={"X-Content-Type-Options": "nosniff"}, rate_limit=RateLimit(interval=60, burst=3))
    client = await aiohttp_client(make_app(lambda: [b"up ", b"1\n"], lambda: True, "redis://broker", config))
    answers = [await client.get("/metrics", headers={"Authorization": basic(USER, PASSWORD)}),
               await client.get("/metrics"), await client.get("/healthz"), await client.get("/healthz")]
    assert [a.status for a in answers] == [200, 401, 200, 429]
    assert [a.headers.get("X-Content-Type-Options") for a in answers] == ["nosniff"] * 4
    assert await answers[0].text() == "up 1\n"


@pytest.fixture(scope="module")
def web_configs(tmp_path_factory, server_cert, certificate_authority) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("web-config")
    return {
        "basic": write(directory, tls_block(server_cert) + f"basic_auth_users:\n  {USER}: {HASH}\n", "basic.yml"),
        "mtls": write(directory, tls_block(server_cert, client_auth_type="RequireAndVerifyClientCert",
                                           client_ca_file=str(certificate_authority.cert_file)), "mtls.yml"),
    }


@pytest.fixture(scope="module")
def basic_exporter(module_broker_url, web_configs, certificate_authority):
    exporter = start_exporter(module_broker_url, "--web.config.file", str(web_configs["basic"]),
                              ssl_context=client_context(ca_file=certificate_authority.cert_file))
    yield exporter
    exporter.stop()


@pytest.fixture(scope="module")
def client_cert(certificate_authority) -> IssuedCertificate:
    return certificate_authority.issue_client("prometheus")


@pytest.fixture(scope="module")
def mtls_exporter(module_broker_url, web_configs, certificate_authority, client_cert):
    exporter = start_exporter(module_broker_url, "--web.config.file", str(web_configs["mtls"]),
                              ssl_context=client_context(ca_file=certificate_authority.cert_file, cert=client_cert))
    yield exporter
    exporter.stop()


def test_metrics_and_index_need_credentials_and_healthz_does_not(basic_exporter, certificate_authority):
    ca = str(certificate_authority.cert_file)
    for path in ("/metrics", "/"):
        refused = requests.get(basic_exporter.url + path, verify=ca, timeout=5)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
        assert requests.get(basic_exporter.url + path, verify=ca, auth=(USER, "guess"), timeout=5).status_code == 401
    answer = requests.get(basic_exporter.url + "/metrics", verify=ca, auth=(USER, PASSWORD), timeout=5)
    assert answer.status_code == 200 and "celery_exporter_broker_connected 1" in answer.text
    assert requests.get(basic_exporter.url + "/healthz", verify=ca, timeout=5).text == "ok\n"


def test_plain_http_to_the_tls_port_fails(basic_exporter):
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{basic_exporter.address}/healthz", timeout=5)


def test_mutual_tls_needs_a_client_certificate_from_the_ca(mtls_exporter, certificate_authority, client_cert,
                                                          tmp_path_factory):
    ca = str(certificate_authority.cert_file)
    with_cert = requests.get(mtls_exporter.url + "/metrics", verify=ca, timeout=5,
                             cert=(str(client_cert.cert_file), str(client_cert.key_file)))
    assert with_cert.status_code == 200 and "celery_exporter_broker_connected" in with_cert.text
    stranger = CertificateAuthority(tmp_path_factory.mktemp("stranger")).issue_client("prometheus")
    for cert in (None, (str(stranger.cert_file), str(stranger.key_file))):
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.get(mtls_exporter.url + "/metrics", verify=ca, cert=cert, timeout=5)


@pytest.mark.e2e
def test_prometheus_scrapes_over_https_with_basic_auth_and_mutual_tls(basic_exporter, mtls_exporter,
                                                                      certificate_authority, client_cert):
    ca = str(certificate_authority.cert_file)
    with_cert = {"ca_file": ca, "cert_file": str(client_cert.cert_file), "key_file": str(client_cert.key_file)}
    jobs = [
        scrape_job("basic-auth", [basic_exporter.address], scheme="https", tls_config={"ca_file": ca},
                   basic_auth={"username": USER, "password": PASSWORD}),
        scrape_job("wrong-password", [basic_exporter.address], scheme="https", tls_config={"ca_file": ca},
                   basic_auth={"username": USER, "password": "guess"}),
        scrape_job("plain-http", [basic_exporter.address], basic_auth={"username": USER, "password": PASSWORD}),
        scrape_job("client-cert", [mtls_exporter.address], scheme="https", tls_config=with_cert),
        scrape_job("no-client-cert", [mtls_exporter.address], scheme="https", tls_config={"ca_file": ca}),
    ]
    with Prometheus(scrape_config(*jobs)) as prometheus:
        targets = prometheus.scraped_targets(len(jobs))
        series = {job: prometheus.query(f'celery_exporter_broker_connected{{job="{job}"}}')
                  for job in ("basic-auth", "client-cert")}

    assert {job: t["health"] for job, t in targets.items()} == {
        "basic-auth": "up", "wrong-password": "down", "plain-http": "down", "client-cert": "up",
        "no-client-cert": "down"}
    assert {job: [s["value"][1] for s in found] for job, found in series.items()} == {
        "basic-auth": ["1"], "client-cert": ["1"]}
    assert "401" in targets["wrong-password"]["lastError"]
    # Refused during the TLS handshake (Go reports the closed connection as EOF), never by HTTP.
    assert targets["no-client-cert"]["lastError"] and "HTTP status" not in targets["no-client-cert"]["lastError"]
