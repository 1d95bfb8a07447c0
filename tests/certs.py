"""Throwaway certificate authorities for TLS tests, laid out as JupyterHub's internal SSL lays
them out (``c.JupyterHub.internal_ssl``), made with ``cryptography`` in the test's folder.

A user's server gets a certificate signed by ``notebooks-ca`` naming ``localhost`` and
``127.0.0.1``, and accepts clients whose certificates chain to ``hub-ca`` or
``proxy-client-ca`` (its ``JUPYTERHUB_SSL_CLIENT_CA`` bundle, which does not hold
``notebooks-ca``); the proxy presents a ``proxy-client-ca`` certificate and verifies servers
with ``notebooks-ca``. See jupyterhub.app.JupyterHub.init_internal_ssl.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


def _write(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Pair:
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Pair(cert_path, key_path, cert, key)


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def make_ca(folder: Path, name: str) -> Pair:
    """A self-signed CA that may sign end-entity certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(name, subject, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(folder, name, cert, key)


def issue(
    folder: Path, ca: Pair, name: str, names: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> Pair:
    """An end-entity certificate signed by ``ca`` for ``names`` (DNS names or IP addresses),
    fit for a server and for a client (as JupyterHub's are)."""
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for value in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            alt_names.append(x509.DNSName(value))
    cert = (
        _builder(name, ca.certificate.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
        .sign(ca.private_key, hashes.SHA256())
    )
    return _write(folder, name, cert, key)


class InternalCerts:
    """The certificates of one hub's internal SSL, for one user's server."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.notebooks_ca = make_ca(folder / "notebooks-ca", "notebooks-ca")
        self.hub_ca = make_ca(folder / "hub-ca", "hub-ca")
        self.proxy_client_ca = make_ca(folder / "proxy-client-ca", "proxy-client-ca")
        self.server = issue(folder / "user-alice", self.notebooks_ca, "user-alice")
        self.proxy_client = issue(folder / "proxy-client", self.proxy_client_ca, "proxy-client")
        self.client_ca = folder / "notebooks-ca_trust.crt"
        self.client_ca.write_bytes(
            self.hub_ca.cert.read_bytes() + self.proxy_client_ca.cert.read_bytes()
        )

    def server_config(self) -> dict[str, dict[str, str]]:
        """What jupyterhub-singleuser sets on the server from ``JUPYTERHUB_SSL_*``."""
        return {
            "ServerApp": {
                "certfile": str(self.server.cert),
                "keyfile": str(self.server.key),
                "client_ca": str(self.client_ca),
            }
        }

    def server_env(self) -> dict[str, str]:
        """The ``JUPYTERHUB_SSL_*`` variables the hub gives the server (and so its kernels)."""
        return {
            "JUPYTERHUB_SSL_KEYFILE": str(self.server.key),
            "JUPYTERHUB_SSL_CERTFILE": str(self.server.cert),
            "JUPYTERHUB_SSL_CLIENT_CA": str(self.client_ca),
        }

    def client_context(self, client: Pair | None, trust: Pair | None = None) -> ssl.SSLContext:
        """A client's TLS settings: verify the server with ``trust`` (default: notebooks-ca,
        as the proxy does) and present ``client``'s certificate, if any."""
        context = ssl.create_default_context(cafile=str((trust or self.notebooks_ca).cert))
        if client is not None:
            context.load_cert_chain(client.cert, client.key)
        return context

    def proxy_context(self) -> ssl.SSLContext:
        """What the hub's proxy presents and trusts when it talks to a user's server."""
        return self.client_context(self.proxy_client)
