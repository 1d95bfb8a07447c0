"""What this kernel has in memory, for the JupyterLab Packages panel.

… package directory → **kernels** → the panel.

The panel asks the active notebook's kernel with a silent execute request whose user
expression is ``__import__('bifrost_kernel.report', fromlist=['report']).report()``, and
shows each saved requirement's loaded version beside its locked one ("restart to use …" when
they differ). The answer is a :class:`KernelReport`, which IPython's display formatter sends
as ``application/json`` (its ``_repr_json_``): the panel reads the object as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from .names import canonical
from .stale import imported_distributions
from .watch import PackageWatch, active_watch


@dataclass(frozen=True)
class KernelReport:
    """``{"loaded": {distribution: version in memory}}``: ``application/json`` when IPython
    displays it (a ``user_expressions`` answer), its JSON text as a ``str``."""

    loaded: Mapping[str, str]

    def to_json(self) -> dict[str, dict[str, str]]:
        """The report as JSON data, names sorted."""
        return {"loaded": dict(sorted(self.loaded.items()))}

    def _repr_json_(self) -> dict[str, dict[str, str]]:
        return self.to_json()

    def __str__(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=True)


def loaded_report(watch: PackageWatch | None) -> KernelReport:
    """The versions in memory. With the watch of a kernel bifrost started, the version of the
    environment each module was imported from; in any other kernel, what its ``sys.path``
    finds now."""
    if watch is not None:
        return KernelReport(watch.loaded_versions())
    versions = imported_distributions()[0]
    return KernelReport({canonical(name): version for name, version in versions.items()})


def kernel_report(watch: PackageWatch | None) -> str:
    """The report of the kernel that ``watch`` watches, as JSON text (see :func:`loaded_report`)."""
    return str(loaded_report(watch))


def report() -> KernelReport:
    """This kernel's report, for the panel's ``user_expressions`` (see :class:`KernelReport`)."""
    return loaded_report(active_watch())
