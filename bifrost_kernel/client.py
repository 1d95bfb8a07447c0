"""The kernel's side of the packages API: a small HTTP client for the ``%bifrost`` magic.

Runs inside the kernel, whose environment may not have bifrost's dependencies: it uses the
standard library only. The provisioner (:mod:`bifrost_ext.server.provisioner`) gives each kernel
``BIFROST_SERVER_URL`` and a scoped ``BIFROST_KERNEL_TOKEN``; installs are read as
server-sent events so the installer's output reaches the cell while it runs.

Under JupyterHub's internal SSL the server speaks https and asks every client for a
certificate. The only files a kernel has (inherited from its server: ``JUPYTERHUB_SSL_*``)
are the server's own key and certificate and the CAs the server accepts clients from, which
do not include the CA that signed the server's certificate. So the kernel trusts the server's
certificate itself (pinned: :func:`ssl_context`) and presents that same certificate, which the
server accepts from its own kernels (:mod:`bifrost_ext.server.tls`).
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .env import (
    ENV_KERNEL_TOKEN,
    ENV_SERVER_URL,
    ENV_SSL_CERTFILE,
    ENV_SSL_CLIENT_CA,
    ENV_SSL_KEYFILE,
)

#: Seconds to wait for a quiet server; an install may print nothing for a long while.
READ_TIMEOUT = 900.0


class Unreachable(RuntimeError):
    """The Jupyter server did not answer."""


class ApiError(RuntimeError):
    """The server answered with an error status."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(str(body.get("message") or f"HTTP {status}"))


class PackagesClient:
    """Calls this kernel's server with the kernel's own scoped credential."""

    def __init__(self, base_url: str, token: str, context: ssl.SSLContext | None = None) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.token = token
        #: For an https server: how to verify it and what certificate to present.
        self.context = context

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PackagesClient | None:
        """The client for this kernel, or None when no bifrost server launched it; Unreachable
        when the server's SSL files cannot be used."""
        environ = os.environ if environ is None else environ
        url, token = environ.get(ENV_SERVER_URL), environ.get(ENV_KERNEL_TOKEN)
        return cls(url, token, ssl_context(environ)) if url and token else None

    def get(self, path: str) -> dict[str, Any]:
        """GET a JSON resource."""
        return self._call("GET", path, None, None)

    def post(
        self, path: str, body: dict[str, Any], on_output: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """POST JSON; with ``on_output``, stream the installer's lines to it as they come."""
        return self._call("POST", path, body, on_output)

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        on_output: Callable[[str], None] | None,
    ) -> dict[str, Any]:
        # Imported here: loading the magic must not slow every kernel start.
        import urllib.error
        import urllib.request

        headers = {"Authorization": f"bifrost-kernel {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if on_output is not None:
            headers["Accept"] = "text/event-stream"
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(
                request, timeout=READ_TIMEOUT, context=self.context
            ) as response:
                if response.headers.get_content_type() == "text/event-stream":
                    status, result = _read_events(response, on_output or (lambda _: None))
                else:
                    status, result = response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            status, result = exc.code, _json_or_text(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(
                f"cannot reach the Jupyter server at {self.base_url} ({reason})"
            ) from None
        if status >= 400:
            raise ApiError(status, result)
        return result


def ssl_context(environ: Mapping[str, str]) -> ssl.SSLContext | None:
    """The TLS settings of a kernel whose server runs with JupyterHub's internal SSL, or None.

    It trusts the system's CAs, the internal CAs the hub gave the server, and the server's
    own certificate as such (partial chain: the CA that signed it is the hub's secret), with
    host names checked (the hub's certificates name ``localhost`` and ``127.0.0.1``); and it
    presents the server's certificate, as only a process that can read the server's key can.
    """
    keyfile, certfile = environ.get(ENV_SSL_KEYFILE), environ.get(ENV_SSL_CERTFILE)
    if not keyfile or not certfile:
        return None
    context = ssl.create_default_context()
    client_ca = environ.get(ENV_SSL_CLIENT_CA)
    try:
        if client_ca:
            context.load_verify_locations(cafile=client_ca)
        context.load_verify_locations(cafile=certfile)
        context.load_cert_chain(certfile, keyfile)
    except OSError as exc:  # ssl.SSLError too: a file missing, unreadable or not PEM
        raise Unreachable(
            f"cannot use the server's SSL files (${ENV_SSL_CERTFILE}, ${ENV_SSL_KEYFILE},"
            f" ${ENV_SSL_CLIENT_CA}): {exc}"
        ) from None
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def _read_events(
    lines: Iterable[bytes], on_output: Callable[[str], None]
) -> tuple[int, dict[str, Any]]:
    event, data = "message", []
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            payload = json.loads("\n".join(data))
            if event == "output":
                on_output(payload)
            elif event == "result":
                return int(payload["status"]), payload["body"]
            event, data = "message", []
    raise Unreachable("the server closed the stream before the result")


def _json_or_text(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"message": raw.decode("utf-8", "replace")[:500]}
    return value if isinstance(value, dict) else {"message": str(value)}
