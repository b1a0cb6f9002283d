"""``--web.config.file``: TLS and basic auth in the format of Prometheus' exporter-toolkit.

node_exporter, Prometheus and most exporters read this same file, so one file and one habit
serve every exporter on a host, and Prometheus scrapes them all with its usual ``scheme: https``,
``tls_config`` and ``basic_auth``::

    tls_server_config:
      cert_file: server.pem
      key_file: server-key.pem
      client_auth_type: RequireAndVerifyClientCert   # mutual TLS
      client_ca_file: ca.pem
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG
    http_server_config:
      headers: {X-Content-Type-Options: nosniff}
    rate_limit: {interval: 100ms, burst: 20}

Relative paths are relative to the file's directory, as in exporter-toolkit. The file is read and
checked once, at start (exporter-toolkit re-reads it on every request; here a change needs a
restart): every error names the file, the key and what was expected, and the exporter does not
start. What Python's ssl module cannot do the way Go does is refused by name rather than
approximated: inline ``cert``/``key``, ``curve_preferences``, ``client_allowed_sans``, and the
client-auth types that accept a certificate without verifying it.
"""
from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# exporter-toolkit's client_auth_type values, as Python's ssl module can honour them.
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Go's names of the TLS 1.2 cipher suites it offers (crypto/tls.CipherSuites) → OpenSSL's names.
CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
}
# The response headers exporter-toolkit lets a web config set, with their allowed values (None: any).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None, "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"), "X-XSS-Protection": None, "Content-Security-Policy": None,
}
_BCRYPT = re.compile(r"\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_DURATION_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}

_TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "client_ca", "min_version",
             "max_version", "cipher_suites", "prefer_server_cipher_suites")
_REFUSED_TLS_KEYS = {
    "cert": "inline certificates are not supported here; put it in a file and give cert_file",
    "key": "inline keys are not supported here; put it in a file (mode 0600) and give key_file",
    "curve_preferences": "not supported: Python's ssl module cannot set a list of curves",
    "client_allowed_sans": "not supported here; issue client certificates from a CA of their own instead",
}


class WebConfigError(ValueError):
    """The web config file cannot be used; the message names the file, the key and why."""


@dataclass(frozen=True)
class TlsServerConfig:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_ca: str | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``burst`` requests at once, one more every ``interval`` seconds."""

    interval: float
    burst: int


@dataclass(frozen=True)
class WebConfig:
    source: str
    tls: TlsServerConfig | None = None
    # user → bcrypt hash; empty means no authentication.
    basic_auth_users: Mapping[str, bytes] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    rate_limit: RateLimit | None = None


def load_web_config(path: str) -> WebConfig | None:
    """Read and check ``path`` (empty: no web config); WebConfigError on anything wrong."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"{path}: cannot read the web config file: {exc}") from None
    config = _Reader(path).web_config(_load(text, path))
    if config.tls is not None:
        server_ssl_context(config.tls, path)
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """A duplicated key is an error, as in exporter-toolkit (Go's yaml.UnmarshalStrict)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise WebConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None


class _Reader:
    """Walks the parsed file; every error says where (file and key path) and what was expected."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.directory = Path(source).parent

    def fail(self, key: str, message: str) -> WebConfigError:
        return WebConfigError(f"{self.source}: {key}: {message}")

    def expected(self, key: str, value: Any, what: str) -> WebConfigError:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        return self.fail(key, f"got {shown}; expected {what}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.expected(key, value, "a mapping")
        for name in value:
            if name not in allowed:
                raise self.fail(f"{key}.{name}" if key else str(name),
                                f"unknown key; expected one of {', '.join(allowed)}")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.expected(key, value, "a non-empty string")
        return value

    def choice(self, value: Any, key: str, choices: Mapping[str, Any]) -> str:
        if value not in choices:
            raise self.expected(key, value, f"one of {', '.join(choices)}")
        return value

    def path(self, value: Any, key: str) -> Path:
        path = self.directory / self.text(value, key)
        if not path.is_file():
            raise self.fail(key, f"{path} is not a readable file")
        return path

    def web_config(self, document: Any) -> WebConfig:
        top = self.mapping(document, "", ("tls_server_config", "http_server_config", "basic_auth_users",
                                           "rate_limit"))
        return WebConfig(source=self.source, tls=self.tls(top.get("tls_server_config")),
                         basic_auth_users=self.users(top.get("basic_auth_users")),
                         headers=self.headers(top.get("http_server_config")),
                         rate_limit=self.rate_limit(top.get("rate_limit")))

    def tls(self, value: Any) -> TlsServerConfig | None:
        for key, reason in _REFUSED_TLS_KEYS.items():
            if isinstance(value, dict) and key in value:
                raise self.fail(f"tls_server_config.{key}", reason)
        given = self.mapping(value, "tls_server_config", _TLS_KEYS)
        if not given:
            return None
        for key in ("cert_file", "key_file"):
            if key not in given:
                raise self.fail(f"tls_server_config.{key}", "missing; TLS needs cert_file and key_file")
        auth = self.choice(given.get("client_auth_type", "NoClientCert"), "tls_server_config.client_auth_type",
                           {**CLIENT_AUTH, **dict.fromkeys(_UNVERIFIED_CLIENT_AUTH)})
        if auth in _UNVERIFIED_CLIENT_AUTH:
            raise self.fail("tls_server_config.client_auth_type",
                            f"{auth} accepts client certificates without verifying them; use "
                            f"RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file")
        ca_file = self.path(given["client_ca_file"], "tls_server_config.client_ca_file") \
            if "client_ca_file" in given else None
        ca_text = self.text(given["client_ca"], "tls_server_config.client_ca") if "client_ca" in given else None
        if auth == "NoClientCert" and (ca_file or ca_text):
            raise self.fail("tls_server_config.client_auth_type",
                            "a client CA is configured but client_auth_type is NoClientCert; "
                            "set RequireAndVerifyClientCert to require client certificates")
        if auth != "NoClientCert" and not (ca_file or ca_text):
            raise self.fail("tls_server_config.client_ca_file",
                            f"missing; client_auth_type {auth} verifies client certificates against it")
        versions = [self.choice(given.get(key, default), f"tls_server_config.{key}", TLS_VERSIONS)
                    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13"))]
        if TLS_VERSIONS[versions[0]] > TLS_VERSIONS[versions[1]]:
            raise self.fail("tls_server_config.min_version", f"{versions[0]} is above max_version {versions[1]}")
        suites = given.get("cipher_suites") or []
        if not isinstance(suites, list):
            raise self.expected("tls_server_config.cipher_suites", suites, "a list of cipher suite names")
        for index, suite in enumerate(suites):
            self.choice(suite, f"tls_server_config.cipher_suites[{index}]", CIPHER_SUITES)
        prefer = given.get("prefer_server_cipher_suites", True)
        if not isinstance(prefer, bool):
            raise self.expected("tls_server_config.prefer_server_cipher_suites", prefer, "true or false")
        return TlsServerConfig(
            cert_file=self.path(given["cert_file"], "tls_server_config.cert_file"),
            key_file=self.path(given["key_file"], "tls_server_config.key_file"),
            client_auth_type=auth, client_ca_file=ca_file, client_ca=ca_text, min_version=versions[0],
            max_version=versions[1], cipher_suites=tuple(suites), prefer_server_cipher_suites=prefer)

    def users(self, value: Any) -> dict[str, bytes]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail("basic_auth_users", "expected a mapping of user names to bcrypt hashes")
        users: dict[str, bytes] = {}
        for user, hashed in value.items():
            key = f"basic_auth_users.{user}"
            if not isinstance(user, str) or not user or ":" in user:
                raise self.expected("basic_auth_users", user, "user names without ':'")
            # Never echo the value: it may be a password written where its hash belongs.
            match = _BCRYPT.fullmatch(hashed) if isinstance(hashed, str) else None
            if match is None or not 4 <= int(match.group(1)) <= 31:
                raise self.fail(key, "expected a bcrypt hash such as $2y$10$ followed by 53 characters "
                                     "(make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'); "
                                     "the value given is not one")
            users[user] = hashed.encode()
        return users

    def headers(self, value: Any) -> dict[str, str]:
        given = self.mapping(value, "http_server_config", ("http2", "headers"))
        if not isinstance(given.get("http2", True), bool):
            raise self.expected("http_server_config.http2", given["http2"], "true or false")
        headers = self.mapping(given.get("headers"), "http_server_config.headers", tuple(HEADERS))
        for name, header_value in headers.items():
            allowed = HEADERS[name]
            key = f"http_server_config.headers.{name}"
            if not isinstance(header_value, str) or (allowed is not None and header_value not in allowed):
                raise self.expected(key, header_value, f"one of {', '.join(allowed)}" if allowed else "a string")
        return {name: header_value for name, header_value in headers.items() if header_value}

    def rate_limit(self, value: Any) -> RateLimit | None:
        given = self.mapping(value, "rate_limit", ("interval", "burst"))
        interval = self.duration(given.get("interval", "0s"), "rate_limit.interval")
        if interval == 0:
            return None
        burst = given.get("burst")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise self.expected("rate_limit.burst", burst, "an integer >= 1 (requests allowed at once)")
        return RateLimit(interval, burst)

    def duration(self, value: Any, key: str) -> float:
        """A Go duration (``1s``, ``250ms``, ``1m30s``) or a number of seconds."""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
        text = value.strip() if isinstance(value, str) else ""
        if text == "0" or (text and _DURATION_PART.sub("", text) == ""):
            return sum(float(n) * _DURATION_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
        raise self.expected(key, value, "a duration such as 100ms, 1s or 1m30s (0 disables)")


def server_ssl_context(tls: TlsServerConfig, source: str = "web config") -> ssl.SSLContext:
    """The server's TLS context; WebConfigError when the certificate, key or client CA cannot be loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise WebConfigError(f"{source}: tls_server_config.cert_file/key_file: cannot load {tls.cert_file} "
                             f"with {tls.key_file}: {exc}") from None
    if tls.cipher_suites:
        context.set_ciphers(":".join(CIPHER_SUITES[name] for name in tls.cipher_suites))
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        key = "client_ca_file" if tls.client_ca_file else "client_ca"
        try:
            context.load_verify_locations(cafile=tls.client_ca_file, cadata=tls.client_ca)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise WebConfigError(f"{source}: tls_server_config.{key}: cannot load the client CA: {exc}") from None
    return context
