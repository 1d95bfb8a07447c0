"""The ``%bifrost`` line magic: persistent installs from a notebook cell.

Loaded automatically in kernels that ``bifrost-provisioner`` launches, or by hand with
``%load_ext bifrost_ext``. It calls this kernel's server through :mod:`.client`, streams the
installer's output into the cell, and tells the truth about restarts: a distribution this
kernel already imported and that changed version leaves stale modules behind, and the magic
names them (:mod:`.stale`).
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
from collections.abc import Callable
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from .client import ApiError, PackagesClient, Unreachable
from .env import ENV_PACKAGE_DIR
from .stale import (
    imported_distributions,
    installed_version,
    readlink,
    stale_distributions,
)
from .watch import acknowledge

USAGE = """\
%bifrost install [--restart] SPEC...   install and keep across restarts (e.g. "pandas==2.2")
%bifrost remove NAME...                 remove from the workspace's requirements
%bifrost list                           saved requirements beside what this kernel imports
%bifrost status                         database, cache and package directory: in sync?
"""

_PIP_INSTALL = re.compile(
    r"^\s*[%!]\s*(?:python3?\s+-m\s+)?pip3?\s+install\s+(?P<args>.*)$", re.MULTILINE
)
# uv: "Because foo was not found in the package registry"; pip: "No matching distribution
# found for foo".
_NOT_FOUND = re.compile(
    r"Because ([A-Za-z0-9][\w.-]*) was not found"
    r"|No matching distribution found for ([A-Za-z0-9][\w.-]*)"
)
_CONTINUES = set("=<>!~@;,[(")
_OPEN_ENDED = set("=<>!~@;,")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@magics_class
class BifrostMagics(Magics):
    """``%bifrost install|remove|list|status``."""

    @line_magic
    def bifrost(self, line: str) -> None:
        """Install, remove and inspect the packages that persist for this workspace."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            _say(f"✗ cannot read that line: {exc}")
            return
        command, args = (words[0], words[1:]) if words else ("help", [])
        handler = {
            "install": self._install,
            "remove": self._remove,
            "uninstall": self._remove,
            "list": self._list,
            "status": self._status,
        }.get(command)
        if handler is None:
            _say(USAGE if command == "help" else f"✗ unknown command {command!r}\n{USAGE}")
            return
        try:
            client = PackagesClient.from_env()
            if client is None:
                _say(
                    "✗ this kernel was not started by a Jupyter server with bifrost_ext,"
                    " so there is nowhere to save packages"
                )
                return
            handler(client, args)
        except Unreachable as exc:
            _say(f"✗ {exc}; nothing was changed")
        except ApiError as exc:
            _say(_explain(exc))

    def _install(self, client: PackagesClient, args: list[str]) -> None:
        def summary(body: dict[str, Any], specs: list[str]) -> str:
            installed = ", ".join(f"{d['name']} {d['version']}" for d in body["installed"])
            return f"{'installed' if body['changed'] else 'already installed'} {installed}"

        self._change(client, "install", join_specs(args), summary)

    def _remove(self, client: PackagesClient, args: list[str]) -> None:
        self._change(client, "remove", args, lambda _, names: f"removed {', '.join(names)}")

    def _change(
        self,
        client: PackagesClient,
        command: str,
        args: list[str],
        summary: Callable[[dict[str, Any], list[str]], str],
    ) -> None:
        """Post a change, stream its output, then say what changed and what went stale."""
        restart = "--restart" in args
        items = [arg for arg in args if arg != "--restart"]
        if not items:
            _say(f"✗ name at least one package: %bifrost {command} pandas")
            return
        before = imported_distributions()
        route = "install" if command == "install" else "uninstall"
        body = client.post(f"api/packages/{route}", {"packages": items}, on_output=_say)
        importlib.invalidate_caches()
        acknowledge()  # the stale report below is this change's; the watch need not repeat it
        _say(f"{summary(body, items)}; saved to workspace {body['workspace']!r}")
        self._after_change(client, before, restart)

    def _after_change(
        self,
        client: PackagesClient,
        before: tuple[dict[str, str], dict[str, set[str]]],
        restart: bool,
    ) -> None:
        versions, tops = before
        stale = stale_distributions(versions, _versions_now(versions), tops)
        for dist in stale:
            _say(
                f"⚠ {dist.name} {dist.old} is already imported in this kernel ({dist.now});"
                f" stale modules: {', '.join(dist.modules)}"
            )
        if restart:
            client.post("api/packages/kernel/restart", {})
            _say("restarting the kernel…")
        elif stale:
            _say(
                "  restart the kernel to use the new versions"
                " (Kernel ▸ Restart, or add --restart to the %bifrost command)"
            )

    def _list(self, client: PackagesClient, args: list[str]) -> None:
        body = client.get("api/packages")
        lines = body.get("requirements", [])
        if not lines:
            _say(f"workspace {body['workspace']!r} has no saved requirements")
            return
        importlib.invalidate_caches()
        rows = [("package", "saved", "in this kernel", "")]
        for spec in lines:
            name = _project_name(spec)
            version = installed_version(name)
            rows.append((name, spec, version or "not importable", _flag(spec, version)))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            cells = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3]))
            _say((cells + row[3]).rstrip())

    def _status(self, client: PackagesClient, args: list[str]) -> None:
        status = client.get("api/packages/status")
        database, cache = status["database"], status["cache"]
        saved_hash = database.get("hash")
        _say(f"workspace {status['workspace']!r}")
        if database["ok"]:
            _say(f"database      ok     version {database['version']}, {_short(saved_hash)}")
        else:
            _say(f"database      DOWN   {database['error']}")
        if not cache["enabled"]:
            _say("cache         off    (no Redis configured)")
        elif not cache["ok"]:
            _say(f"cache         DOWN   {cache['error']}")
        else:
            _say(f"cache         ok     {_short(cache['hash'])}{_sync(cache['hash'], saved_hash)}")
        link = readlink(os.environ.get(ENV_PACKAGE_DIR, ""))
        kernel_hash = os.path.basename(link) if link else None
        _say(
            f"this kernel   {os.environ.get(ENV_PACKAGE_DIR, '?')}"
            f"  {_short(kernel_hash)}{_sync(kernel_hash, saved_hash)}"
        )
        _say(_verdict(status, kernel_hash))


def join_specs(words: list[str]) -> list[str]:
    """Rejoin a spec typed with spaces (``pandas >= 2.2``, ``x @ url``) into one."""
    specs: list[str] = []
    for word in words:
        continues = word[:1] in _CONTINUES or (specs and specs[-1][-1:] in _OPEN_ENDED)
        if specs and continues:
            specs[-1] = f"{specs[-1]} {word}"
        else:
            specs.append(word)
    return specs


def _say(text: str) -> None:
    print(text, flush=True)


def _explain(exc: ApiError) -> str:
    body = exc.body
    if exc.status == 400:
        return f"✗ {body.get('message')}"
    if exc.status == 404:
        return f"✗ {body.get('message')}"
    if exc.status == 422:
        # The installer's output was streamed into the cell already; say what it means.
        output = body.get("output", "")
        missing = sorted({uv or pip for uv, pip in _NOT_FOUND.findall(output)})
        if missing:
            names = ", ".join(repr(name) for name in missing)
            return f"✗ {names} not found in the package index; nothing was saved"
        return f"✗ {body.get('message')}"
    if exc.status == 403:
        return "✗ the server refused: this user may not change the workspace's packages"
    if exc.status == 503:
        return f"✗ the server cannot reach its database: {body.get('message')}"
    return f"✗ the server answered {exc.status}: {body.get('message')}"


def _project_name(spec: str) -> str:
    match = _NAME.match(spec)
    return match.group(1) if match else spec


def _flag(spec: str, version: str | None) -> str:
    if version is None:
        return "  ✗"
    requirement = _requirement(spec)
    if requirement is None or requirement.specifier.contains(version, prereleases=True):
        return ""
    return "  ✗ does not match"


def _requirement(spec: str) -> Any:
    """Parse with packaging, or pip's vendored copy; None when the kernel has neither."""
    for module in ("packaging.requirements", "pip._vendor.packaging.requirements"):
        try:
            return importlib.import_module(module).Requirement(spec)
        except ImportError:
            continue
    return None


def _versions_now(before: dict[str, str]) -> dict[str, str | None]:
    return {name: installed_version(name) for name in before}


def _verdict(status: dict[str, Any], kernel_hash: str | None) -> str:
    """What the status means for this kernel, and what would fix it: never a promise that a
    restart helps when it would not."""
    saved = status["database"].get("hash")
    packages = status["package_dir"]
    if status["in_sync"] and kernel_hash == saved:
        return "all in sync ✓"
    if not status["database"]["ok"]:
        return "not in sync: the server cannot read the saved requirements; try again later"
    if packages.get("error"):
        return (
            f"not in sync: the saved packages could not be installed ({packages['error']});"
            " the server tries again in the background; restart the kernel once"
            " `%bifrost status` says all in sync"
        )
    if packages["hash"] == saved and packages.get("complete"):
        return "not in sync: a kernel restart will catch up"
    return (
        "not in sync: the server is still bringing its packages up to the saved ones;"
        " restart the kernel once `%bifrost status` says all in sync"
    )


def _short(digest: str | None) -> str:
    return f"hash {digest[:12]}" if digest else "empty"


def _sync(value: str | None, saved: str | None) -> str:
    return "  (in sync)" if value == saved else "  (out of sync)"


def pip_hint(raw_cell: str) -> str | None:
    """The hint for a cell that runs ``%pip install`` or ``!pip install``, if it does."""
    match = _PIP_INSTALL.search(raw_cell)
    if match is None:
        return None
    specs = [arg for arg in match.group("args").split() if not arg.startswith("-")]
    suggestion = f"%bifrost install {' '.join(specs)}" if specs else "%bifrost install ..."
    return f"bifrost: pip installs last until the kernel restarts; `{suggestion}` keeps them"


def show_pip_hint(raw_cell: str) -> None:
    """Print :func:`pip_hint`'s hint for a cell, if it has one."""
    message = pip_hint(raw_cell)
    if message:
        _say(message)


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%bifrost`` (the hint is registered by ``bifrost_ext`` itself)."""
    ipython.register_magics(BifrostMagics)
