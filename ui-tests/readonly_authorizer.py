"""An operator's policy for the browser tests' read-only server: anyone may look at packages,
nobody may change them (the Packages panel must then switch to read-only).

Loaded by ``start_lab.py --read-only`` as
``--ServerApp.authorizer_class=readonly_authorizer.ReadOnlyPackages``.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.authorizer import Authorizer


class ReadOnlyPackages(Authorizer):
    """Refuses ``write`` on the ``packages`` resource; allows everything else."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        """False only for a change to packages."""
        return not (resource == "packages" and action == "write")
