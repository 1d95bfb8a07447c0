"""What bifrost can do for kernels that run on a kernel gateway (``--gateway-url``).

With a gateway, jupyter_server starts no kernel itself: it proxies kernels that the gateway
host launches, so this server's provisioner never runs for them and no kernel of theirs holds
a credential for this server. The packages API works all the same (builds here are for this
server's own interpreter, which checks a change before it is saved). The gateway's kernels get
the saved packages where bifrost_ext and its provisioner are installed on the gateway host
(as for papermill: bifrost's ``BIFROST_*`` settings there); ``%bifrost`` in them reads what
they started with but cannot save. :func:`kernel_gateway` says so in one line, which
:class:`~bifrost_ext.server.app.BifrostApp` logs and ``api/packages/status`` carries for the
panel. See docs/operating-bifrost.md, "Behind a kernel gateway".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit


def kernel_gateway(serverapp: Any) -> dict[str, str] | None:
    """The gateway this server's kernels run on and what that means for them, or None."""
    config = getattr(serverapp, "gateway_config", None)
    if config is None or not config.gateway_enabled:
        return None
    parts = urlsplit(str(config.url))
    url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))
    message = (
        f"kernels run on the kernel gateway at {url}: they get the saved packages only where"
        " bifrost_ext and its provisioner are installed on the gateway host, and %bifrost in"
        " them cannot save a change (use the Packages panel, `jupyter bifrost` or api/packages)"
    )
    return {"url": url, "message": message}
