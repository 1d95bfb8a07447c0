"""The server's side of JupyterHub's internal SSL: its own kernels may connect.

With ``c.JupyterHub.internal_ssl = True`` a single-user server listens on https and requires a
client certificate signed by one of the CAs in ``JUPYTERHUB_SSL_CLIENT_CA`` (the hub's and the
proxy's). Its kernels hold no such certificate: all they have is what the server has, its own
key and certificate (signed by the hub's ``notebooks-ca``, which the server does not trust as a
client CA). So the server also accepts exactly its own certificate from a client, which only a
process that can read the server's private key can present: its kernels, running as its user.
Everyone else is judged as before, and the request still needs its credential (the kernel's
secret) like any other.

The kernel's side is :func:`bifrost_kernel.client.ssl_context`.
"""

from __future__ import annotations

import ssl
from typing import Any

from tornado.netutil import ssl_options_to_context


def requires_client_certificates(serverapp: Any) -> bool:
    """True when the server speaks https and asks clients for certificates (internal SSL)."""
    return bool(serverapp.certfile and serverapp.client_ca)


def accept_own_certificate(http_server: Any) -> bool:
    """Let clients that present the server's own certificate in; True if anything changed.

    ``http_server`` is the server's tornado HTTPServer, changed before it takes connections
    from kernels: its ``ssl_options`` (jupyter_server gives a dict) become an SSLContext that
    trusts, besides the client CAs, the server's certificate itself (partial chain: that
    certificate is an end entity and signs nothing, so it vouches for nobody else).
    """
    options = http_server.ssl_options
    if not isinstance(options, dict) or not options.get("ca_certs"):
        return False
    certfile = options.get("certfile")
    if not certfile:
        return False
    context = ssl_options_to_context(options, server_side=True)
    context.load_verify_locations(cafile=certfile)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    http_server.ssl_options = context
    return True
