"""The environment variables through which a server tells its kernels where things are.

Both sides read these names: the provisioner (:mod:`bifrost_ext.server.provisioner`) sets
them when it launches a kernel, and the kernel side (this package) reads them.
"""

from __future__ import annotations

#: The server's URL as a kernel on this machine reaches it (loopback when possible).
ENV_SERVER_URL = "BIFROST_SERVER_URL"
#: The kernel's own scoped secret for the packages API (:mod:`bifrost_ext.server.credentials`).
ENV_KERNEL_TOKEN = "BIFROST_KERNEL_TOKEN"
#: The ``current`` link of the package directory on the kernel's ``PYTHONPATH``.
ENV_PACKAGE_DIR = "BIFROST_PACKAGE_DIR"
#: The recycle policy (also an operator setting): what a kernel does when its packages move.
ENV_RECYCLE = "BIFROST_RECYCLE"
#: Under ``restart-idle``: where the kernel reports the distributions it imported.
ENV_KERNEL_STATE = "BIFROST_KERNEL_STATE"
#: The workspace whose packages the kernel imports.
ENV_WORKSPACE = "BIFROST_WORKSPACE"
#: Said once at the kernel's first execution: why it did not get the saved packages, or that
#: it waited for them to be installed (how many, how long).
ENV_NOTICE = "BIFROST_NOTICE"
#: JupyterHub's internal SSL (``c.JupyterHub.internal_ssl``), set by the hub for the server and
#: inherited by its kernels: the server's private key and certificate (with which a kernel
#: proves it belongs to this server), and the CAs whose client certificates the server accepts.
ENV_SSL_KEYFILE = "JUPYTERHUB_SSL_KEYFILE"
ENV_SSL_CERTFILE = "JUPYTERHUB_SSL_CERTFILE"
ENV_SSL_CLIENT_CA = "JUPYTERHUB_SSL_CLIENT_CA"
#: Outside a Jupyter server (nbclient, papermill): a JSON file with the requirements record
#: the provisioner made this kernel's packages from, for ``%bifrost list`` and ``status``.
ENV_START_RECORD = "BIFROST_START_RECORD"
