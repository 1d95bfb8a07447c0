"""What this kernel has in memory, for the JupyterLab Packages panel.

… package directory → **kernels** → the panel.

The panel asks the active notebook's kernel with a silent execute request whose user
expression is ``__import__('bifrost_ext.kernel.report', fromlist=['report']).report()``, and
shows each saved requirement's loaded version beside its locked one ("restart to use …" when
they differ). The answer is one JSON text, ASCII only, so its ``repr`` decodes simply.
"""

from __future__ import annotations

import json

from .stale import canonical, imported_distributions
from .watch import PackageWatch, active_watch


def kernel_report(watch: PackageWatch | None) -> str:
    """``{"loaded": {distribution: version in memory}}`` as JSON.

    With the watch of a kernel bifrost started, the version of the environment each module
    was imported from; in any other kernel, what its ``sys.path`` finds now.
    """
    if watch is not None:
        loaded = watch.loaded_versions()
    else:
        loaded = {canonical(name): version for name, version in imported_distributions()[0].items()}
    return json.dumps({"loaded": dict(sorted(loaded.items()))}, ensure_ascii=True)


def report() -> str:
    """This kernel's report (see :func:`kernel_report`)."""
    return kernel_report(active_watch())
