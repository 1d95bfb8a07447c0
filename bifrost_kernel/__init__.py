"""The kernel side of bifrost_ext: what runs inside a kernel, and nothing else.

request → requirements → installer → package directory → store → cache → **kernels**.

Everything in this package imports only the standard library and IPython: a kernel's
environment need not have bifrost's dependencies, and the provisioner puts only this package
(not the server's code) on a kernel's path: a folder holding one link to it
(:func:`bifrost_ext.server.provisioner.magic_path`), and ``--IPKernelApp.extra_extensions=
bifrost_kernel``. ``%load_ext bifrost_kernel`` loads it in any kernel that can import it, and
``%load_ext bifrost_ext`` where bifrost_ext is installed (it delegates here).
``tests/test_kernel_side.py`` checks the boundary.

- :mod:`.magic`: the ``%bifrost`` line magic;
- :mod:`.client`: its HTTP client for the kernel's own server;
- :mod:`.watch`: notices that the package directory moved under a running kernel;
- :mod:`.stale`: which imported modules a change left stale (shared by the two above);
- :mod:`.missing` and :mod:`.distributions`: a failed import offers ``%bifrost install``;
- :mod:`.report`: the versions this kernel has in memory, for the JupyterLab panel;
- :mod:`.names`: project names without ``packaging`` (the canonical form, a requirement's name);
- :mod:`.env`: the environment variables the server and its kernels share;
- :mod:`.probes`: programs the build engine runs in a kernel's interpreter, before any kernel.
"""

from __future__ import annotations

import os
from typing import Any

from .env import ENV_NOTICE, ENV_PACKAGE_DIR


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext bifrost_kernel``: the ``%bifrost`` magic, the ``%pip install`` hint and the
    offer after a missing import.

    Every kernel that bifrost starts loads this before its first execution, so it imports
    nothing: the magic's module is imported the first time ``%bifrost`` runs (IPython's lazy
    magics), the hint only when a cell mentions pip, the offer only after a
    ``ModuleNotFoundError``. The package-directory watch costs one ``readlink`` per execution.
    """
    manager = ipython.magics_manager
    if hasattr(manager, "register_lazy"):  # IPython >= 8.8
        manager.register_lazy("bifrost", "bifrost_kernel.magic")
    else:
        from .magic import load_ipython_extension as load

        load(ipython)

    def pip_hint(info: Any) -> None:
        cell = getattr(info, "raw_cell", "") or ""
        if "pip" in cell:
            from .magic import show_pip_hint

            show_pip_hint(cell)

    ipython.events.register("pre_run_cell", pip_hint)

    def offer_install(result: Any) -> None:
        error = getattr(result, "error_in_exec", None)
        if isinstance(error, ModuleNotFoundError):
            from .missing import offer

            offer(ipython, error)

    ipython.events.register("post_run_cell", offer_install)

    notice = os.environ.get(ENV_NOTICE)
    if notice:  # the server could not give this kernel its saved packages: say so, once

        def tell(_info: Any) -> None:
            print(notice, flush=True)
            ipython.events.unregister("pre_run_cell", tell)

        ipython.events.register("pre_run_cell", tell)

    package_dir = os.environ.get(ENV_PACKAGE_DIR)
    if package_dir:  # a kernel started by bifrost: notice when its packages change under it
        from .watch import start_watch

        watch = start_watch(package_dir)
        ipython.events.register("pre_run_cell", lambda _info: watch.before_cell())
        ipython.events.register("post_run_cell", lambda _result: watch.after_cell())
