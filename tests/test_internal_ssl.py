"""Kernels reach their server under JupyterHub's internal SSL, without a hub.

A real jupyter_server runs with what jupyterhub-singleuser gives it under
``c.JupyterHub.internal_ssl = True``: a certificate from a ``notebooks-ca``, client
certificates required from the hub's and the proxy's CAs, and the ``JUPYTERHUB_SSL_*``
variables its kernels inherit (tests/certs.py makes the same layout). The test talks to it as
the hub's proxy does. tests/test_jupyterhub.py shows the same behind a real hub.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bifrost_kernel.client import ApiError, PackagesClient, Unreachable
from tests.certs import InternalCerts, issue, make_ca
from tests.kernels import IMPORT_BFDEMO
from tests.servers import ServerProcess


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> InternalCerts:
    return InternalCerts(tmp_path_factory.mktemp("internal-ssl"))


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, certs: InternalCerts, wheelhouse: Path
) -> Iterator[ServerProcess]:
    """A server on https that requires client certificates, as under internal SSL (SQLite,
    no Redis: the transport is what is tested here)."""
    home = tmp_path_factory.mktemp("tls-server")
    env = {
        "BIFROST_DATABASE_URL": f"sqlite:///{home / 'bifrost.db'}",
        "BIFROST_SITE_DIR": str(home / "site"),
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
        **certs.server_env(),
    }
    server = ServerProcess(
        home, env, certs.server_config(), client_ssl=certs.proxy_context()
    ).start()
    yield server
    server.stop()


def _kernel_env(certs: InternalCerts, server: ServerProcess) -> dict[str, str]:
    """What a kernel of the server has: the server's SSL files, its URL, a (wrong) secret."""
    return {
        **certs.server_env(),
        "BIFROST_SERVER_URL": f"https://127.0.0.1:{server.port}/",
        "BIFROST_KERNEL_TOKEN": "not-a-kernel-secret",
    }


async def test_the_magic_installs_over_tls_and_a_new_kernel_imports(
    tls_server: ServerProcess,
) -> None:
    status, kernel = tls_server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, kernel
    url = await tls_server.execute(
        kernel["id"], "import os; print(os.environ['BIFROST_SERVER_URL'])"
    )
    assert url.strip() == f"https://127.0.0.1:{tls_server.port}/"
    out = await tls_server.execute(kernel["id"], "%bifrost install bfdemo==1.0")
    assert "installed bfdemo 1.0; saved to workspace 'default'" in out, out

    status, second = tls_server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, second
    assert (await tls_server.execute(second["id"], IMPORT_BFDEMO)).startswith("1.0\n")


def test_the_kernel_client_passes_tls_and_its_credential_is_then_judged(
    certs: InternalCerts, tls_server: ServerProcess
) -> None:
    client = PackagesClient.from_env(_kernel_env(certs, tls_server))
    assert client is not None
    with pytest.raises(ApiError) as refused:  # through TLS: the server read the request
        client.get("api/packages")
    assert refused.value.status == 403


def test_without_the_ssl_files_the_kernel_client_cannot_verify_the_server(
    certs: InternalCerts, tls_server: ServerProcess
) -> None:
    env = _kernel_env(certs, tls_server)
    for name in ("JUPYTERHUB_SSL_KEYFILE", "JUPYTERHUB_SSL_CERTFILE", "JUPYTERHUB_SSL_CLIENT_CA"):
        del env[name]
    client = PackagesClient.from_env(env)
    assert client is not None
    with pytest.raises(Unreachable, match="CERTIFICATE_VERIFY_FAILED"):
        client.get("api/packages")


def test_unreadable_ssl_files_are_named(certs: InternalCerts, tmp_path: Path) -> None:
    env = {
        **certs.server_env(),
        "JUPYTERHUB_SSL_CERTFILE": str(tmp_path / "missing.crt"),
        "BIFROST_SERVER_URL": "https://127.0.0.1:1/",
        "BIFROST_KERNEL_TOKEN": "x",
    }
    with pytest.raises(Unreachable, match=r"\$JUPYTERHUB_SSL_CERTFILE"):
        PackagesClient.from_env(env)


def _status(server: ServerProcess, context: ssl.SSLContext) -> int | str:
    """The HTTP status of GET /api/status with ``context``, or why TLS refused."""
    request = urllib.request.Request(
        f"https://127.0.0.1:{server.port}/api/status",
        headers={"Authorization": f"token {server.token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError) as exc:
        return f"refused: {getattr(exc, 'reason', exc)}"


def test_the_server_lets_in_its_own_certificate_and_no_other_new_one(
    certs: InternalCerts, tls_server: ServerProcess, tmp_path: Path
) -> None:
    assert _status(tls_server, certs.proxy_context()) == 200  # the proxy, as before
    own = certs.client_context(certs.server, trust=certs.server)
    own.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    assert _status(tls_server, own) == 200  # the server's own key: its kernels

    # Anyone else is refused as before: no certificate, or one from a CA it does not trust,
    # even one naming the same user, or another server's certificate from the same CA.
    assert str(_status(tls_server, certs.client_context(None))).startswith("refused")
    stranger_ca = make_ca(tmp_path / "stranger-ca", "stranger-ca")
    stranger = issue(tmp_path / "stranger", stranger_ca, "user-alice")
    assert str(_status(tls_server, certs.client_context(stranger))).startswith("refused")
    neighbour = issue(tmp_path / "neighbour", certs.notebooks_ca, "user-bob")
    assert str(_status(tls_server, certs.client_context(neighbour))).startswith("refused")


async def test_kernel_server_url_is_what_kernels_are_given(
    tmp_path: Path, wheelhouse: Path
) -> None:
    env = {
        "BIFROST_DATABASE_URL": f"sqlite:///{tmp_path / 'bifrost.db'}",
        "BIFROST_SITE_DIR": str(tmp_path / "site"),
        "BIFROST_KERNEL_SERVER_URL": "https://proxy.example/user/alice/",
    }
    server = ServerProcess(tmp_path / "home", env).start()
    try:
        status, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
        assert status == 201, kernel
        out = await server.execute(
            kernel["id"], "import os; print(os.environ['BIFROST_SERVER_URL'])"
        )
        assert out.strip() == "https://proxy.example/user/alice/"
    finally:
        server.stop()
