"""The two installer programs, uv and pip: what differs between them, one class each.

request → requirements → **installer** → package directory → store → cache → kernels.

:class:`~bifrost_ext.engine.installer.Installer` chooses one of them once from the
``installer`` setting (``auto``: uv when available, else pip) and asks it for its command
lines, the environment variables its index settings go in, and how to read its resolution;
everything else (the constraints file, the deadline, the pid file, failures) is the
installer's, the same for both. marimo's ``PackageManager`` subclasses are the model.
"""

from __future__ import annotations

import abc
import functools
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..pins import Pin, make_pin, parse_pin


@functools.cache
def find_uv() -> str | None:
    """Return the uv binary shipped by the ``uv`` package or found on PATH, if any.

    Looked up once per process: the lookup walks sysconfig paths (~0.25 ms), and an install
    asks twice.
    """
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


class InstallerTool(abc.ABC):
    """One installer program: its command lines, and where its index settings go."""

    #: The ``installer`` setting's word for it.
    name: ClassVar[str]
    #: The variable that carries the index URL (never the command line, which ``ps`` shows).
    index_variable: ClassVar[str]
    #: The variable that carries the find-links, and what it splits them on.
    links_variable: ClassVar[str]
    links_separator: ClassVar[str]

    @abc.abstractmethod
    def install_command(self, python: str, options: Sequence[str]) -> list[str]:
        """The command that installs for ``python``, up to ``options`` (``--target`` and the
        rest, the index arguments and the specs after ``--``)."""

    @abc.abstractmethod
    def resolve_command(
        self, python: str, requirements: Path, output: Path, index_args: Sequence[str]
    ) -> list[str]:
        """The command that resolves the requirements file ``requirements`` for ``python``
        and writes the outcome to ``output``, installing nothing."""

    @abc.abstractmethod
    def read_resolution(self, text: str) -> list[tuple[str, Pin | None]]:
        """Each line of a resolution's ``output`` as the tool wrote it, and its pin (None
        for a line that is not a valid one)."""

    def index_environment(
        self, env: dict[str, Any], index_url: str | None, links: Sequence[str]
    ) -> None:
        """Put the index URL, and ``links`` when not empty, into ``env``."""
        if index_url:
            env[self.index_variable] = index_url
        if links:
            env[self.links_variable] = self.links_separator.join(links)


class UvInstaller(InstallerTool):
    """``uv pip``: installs with ``uv pip install``, resolves with ``uv pip compile``."""

    name = "uv"
    index_variable = "UV_INDEX_URL"
    links_variable = "UV_FIND_LINKS"
    links_separator = ","  # uv splits its variable on commas

    def __init__(self, uv: str) -> None:
        #: The uv binary.
        self.uv = uv

    def install_command(self, python: str, options: Sequence[str]) -> list[str]:
        """``uv pip install --python python …``."""
        return [self.uv, "pip", "install", "--python", python, "--color", "never", *options]

    def resolve_command(
        self, python: str, requirements: Path, output: Path, index_args: Sequence[str]
    ) -> list[str]:
        """``uv pip compile``: a ``name==version`` list in ``output``."""
        head = [self.uv, "pip", "compile", "--python", python, "--color", "never"]
        head += ["--quiet", "--no-header", "--no-annotate", "--output-file", str(output)]
        return [*head, *index_args, str(requirements)]

    def read_resolution(self, text: str) -> list[tuple[str, Pin | None]]:
        """The ``name==version`` lines of ``uv pip compile``."""
        return [(line, parse_pin(line)) for line in text.splitlines() if "==" in line]

    def index_environment(
        self, env: dict[str, Any], index_url: str | None, links: Sequence[str]
    ) -> None:
        """As for any tool; a ``UV_DEFAULT_INDEX`` of the server's would win over the URL."""
        if index_url:
            env.pop("UV_DEFAULT_INDEX", None)
        super().index_environment(env, index_url, links)


class PipInstaller(InstallerTool):
    """``python -m pip`` of the kernel interpreter: installs, and resolves with a dry run."""

    name = "pip"
    index_variable = "PIP_INDEX_URL"
    links_variable = "PIP_FIND_LINKS"
    links_separator = " "  # pip splits its variable on whitespace

    def install_command(self, python: str, options: Sequence[str]) -> list[str]:
        """``python -m pip install``, quiet about its version and the scripts' folder."""
        head = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        return [*head, "--no-warn-script-location", *options]

    def resolve_command(
        self, python: str, requirements: Path, output: Path, index_args: Sequence[str]
    ) -> list[str]:
        """``pip install --dry-run --report``: pip's installation report (JSON) in ``output``."""
        head = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        head += ["--dry-run", "--ignore-installed", "--quiet", "--report", str(output)]
        # A --target keeps pip off the interpreter's own environment (and its PEP 668 mark).
        head += ["--target", str(output.with_suffix(".target"))]
        return [*head, *index_args, "--requirement", str(requirements)]

    def read_resolution(self, text: str) -> list[tuple[str, Pin | None]]:
        """What pip's installation report would install, as ``name==version`` lines."""
        report = json.loads(text)
        return [
            (f"{meta['name']}=={meta['version']}", make_pin(meta["name"], meta["version"]))
            for meta in (item["metadata"] for item in report.get("install", []))
        ]
