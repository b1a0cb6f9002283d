"""A throwaway certificate authority, with server and client certificates, for TLS tests.

Issue 7 serves the actuator over HTTPS (``--certfile``/``--keyfile``, optionally a client CA for
mutual TLS) and the exporter with exporter-toolkit's ``--web.config.file``; real Prometheus and
Alertmanager must then reach them with ``tls_config``. The certificates here are made fresh in
a temporary directory with ``cryptography`` (no openssl subprocess, no committed keys): one CA,
server certificates valid for 127.0.0.1 and localhost, client certificates for mTLS. Keys are
P-256, which every party here (Go, Python, Node) accepts and which is quick to generate.

Used by tests/authinfra/ (which prove it), oidc_provider.py (an HTTPS issuer) and issue 7's tests.
"""
from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class IssuedCertificate:
    """PEM files of one certificate (leaf only) and its unencrypted private key."""

    common_name: str
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "celery-autopilot tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             days: int) -> x509.CertificateBuilder:
    """Valid from an hour ago (clock skew between parties) for ``days`` days."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


class CertificateAuthority:
    """A self-signed CA in ``directory`` (``ca.pem``) that issues leaf certificates next to it,
    all valid for ``days`` days."""

    def __init__(self, directory: Path, *, name: str = "celery-autopilot test CA", days: int = 2) -> None:
        self.directory = directory
        self.days = days
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(name)
        builder = _builder(self.name, self.name, self._key.public_key(), days).add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True,
        ).add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True,
        )
        self._cert = builder.sign(self._key, hashes.SHA256())
        self.cert_file = directory / "ca.pem"
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def _issue(self, common_name: str, file_stem: str, usage: x509.ObjectIdentifier,
               hosts: tuple[str, ...]) -> IssuedCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(_name(common_name), self.name, key.public_key(), self.days).add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True,
        ).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False,
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False,
        )
        if hosts:
            builder = builder.add_extension(x509.SubjectAlternativeName([_san(host) for host in hosts]),
                                            critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = IssuedCertificate(common_name, self.directory / f"{file_stem}.pem",
                                   self.directory / f"{file_stem}-key.pem")
        issued.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, issued.key_file)
        return issued

    def issue_server(self, name: str = "server", *, hosts: tuple[str, ...] = LOOPBACK_NAMES) -> IssuedCertificate:
        """A server certificate whose subject alternative names are ``hosts`` (IPs or DNS names)."""
        return self._issue(name, name, ExtendedKeyUsageOID.SERVER_AUTH, hosts)

    def issue_client(self, common_name: str) -> IssuedCertificate:
        """A client certificate for mutual TLS, identified by its ``common_name``."""
        return self._issue(common_name, f"client-{common_name}", ExtendedKeyUsageOID.CLIENT_AUTH, ())


def server_context(cert: IssuedCertificate, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server's TLS context; with ``client_ca`` a client certificate from that CA is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert_file, cert.key_file)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


def client_context(*, ca_file: Path | None, cert: IssuedCertificate | None = None) -> ssl.SSLContext:
    """A client's TLS context trusting ``ca_file`` only (or the system store when ``None``),
    presenting ``cert`` when given."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert is not None:
        context.load_cert_chain(cert.cert_file, cert.key_file)
    return context


def peer_common_name(request: web.Request) -> str | None:
    """The common name of the client certificate ``request`` came with over mutual TLS, if any."""
    peer = request.transport.get_extra_info("peercert") if request.transport is not None else None
    if not peer:
        return None
    return next((value for rdn in peer["subject"] for key, value in rdn if key == "commonName"), None)
