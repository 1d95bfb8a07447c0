"""Console scripts that would shadow the system's commands are refused.

request → requirements → installer → **package directory** → store → cache → kernels.

A build's ``bin/`` comes first on every kernel's and terminal's ``PATH`` (through
``current/bin``), so a package's script named ``ls`` or ``git`` would run instead of the
system's in each of them, the kernels already running included. :mod:`bifrost_ext.engine.packagedir`
asks :meth:`CommandGuard.check` about every build before it is renamed into place (a build
from nothing, a change, a sync, a kernel start's build alike): a script whose name is a
command on kernels' ``PATH`` (without bifrost's own folders), or on the operator's
``reserved_commands``, makes the build a :class:`ShadowsCommand` (422, nothing saved, nothing
switched), unless the operator's ``allowed_scripts`` names it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from ..pins import DIST_INFO
from ..settings import RESERVED_COMMANDS
from .dist_info import dist_infos, record_paths
from .installer import InstallError

#: The names of bash's builtins (``compgen -b``, bash 5): a script named so is never what a
#: user meant to run.
_BUILTIN_NAMES = """
    . : [ alias bg bind break builtin caller cd command compgen complete compopt continue
    declare dirs disown echo enable eval exec exit export false fc fg getopts hash help history
    jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly return set
    shift shopt source suspend test times trap true type typeset ulimit umask unalias unset wait
"""
SHELL_BUILTINS = frozenset(_BUILTIN_NAMES.split())
#: The programs of GNU coreutils 9: present on every Linux a kernel runs on, or expected there.
_COREUTILS_NAMES = """
    [ arch b2sum base32 base64 basename basenc cat chcon chgrp chmod chown chroot cksum comm cp
    csplit cut date dd df dir dircolors dirname du echo env expand expr factor false fmt fold
    groups head hostid hostname id install join kill link ln logname ls md5sum mkdir mkfifo
    mknod mktemp mv nice nl nohup nproc numfmt od paste pathchk pinky pr printenv printf ptx pwd
    readlink realpath rm rmdir runcon seq sha1sum sha224sum sha256sum sha384sum sha512sum shred
    shuf sleep sort split stat stdbuf stty sum sync tac tail tee test timeout touch tr true
    truncate tsort tty uname unexpand uniq unlink uptime users vdir wc who whoami yes
"""
COREUTILS = frozenset(_COREUTILS_NAMES.split())
#: Names that stand for a group in ``reserved_commands``.
GROUPS = {"@builtins": SHELL_BUILTINS, "@coreutils": COREUTILS}
#: What a refusal tells the operator to do about it.
ALLOWING = "an operator may allow a script by name or glob in allowed_scripts"


class ShadowsCommand(InstallError):
    """A build would put a console script first on kernels' ``PATH`` that shadows a command."""

    kind = "shadows-command"


@dataclass(frozen=True)
class CommandGuard:
    """Which console scripts a build may put on kernels' ``PATH``."""

    #: Names or globs refused whether or not the command exists here (``@builtins`` and
    #: ``@coreutils`` stand for :data:`GROUPS`).
    reserved: Sequence[str] = RESERVED_COMMANDS
    #: Names or globs the operator permits, whatever they shadow.
    allowed: Sequence[str] = ()
    #: Bifrost's own folders (the site dir): their entries on ``PATH`` are not the system's.
    own: Sequence[Path] = ()

    def shadowed(self, script: str, path: str | None = None) -> str | None:
        """What ``script`` would shadow on ``path`` (default: this process's ``PATH``, which
        kernels inherit): the command's location, ``reserved: <pattern>``, or None."""
        return self._shadowed(script, self._system_path(path))

    def _shadowed(self, script: str, folders: Sequence[str]) -> str | None:
        if any(fnmatchcase(script, pattern) for pattern in self.allowed):
            return None
        for folder in folders:
            command = os.path.join(folder, script)
            if os.path.isfile(command) and os.access(command, os.X_OK):
                return command
        for pattern in self.reserved:
            names = GROUPS.get(pattern)
            if names is not None and script in names:
                return f"reserved: {pattern}"
            if names is None and fnmatchcase(script, pattern):
                return f"reserved: {pattern}"
        return None

    def check(self, env: Path, path: str | None = None) -> None:
        """Raise :class:`ShadowsCommand` naming each script in ``env/bin`` that would shadow
        a command, and the distribution that ships it."""
        bin_dir = env / "bin"
        if not bin_dir.is_dir():
            return
        found = {}
        folders = self._system_path(path)  # once: resolving them costs more than the lookups
        for script in sorted(os.listdir(bin_dir)):
            if script.startswith("."):
                continue  # not a command anyone types (and an anchoring's temporary file)
            what = self._shadowed(script, folders)
            if what is not None:
                found[script] = what
        if not found:
            return
        owners = _script_owners(env, found)
        by_owner: dict[str, list[str]] = {}
        for script, what in found.items():
            by_owner.setdefault(owners.get(script, "a package"), []).append(f"`{script}` ({what})")
        parts = [f"{owner}'s {', '.join(scripts)}" for owner, scripts in sorted(by_owner.items())]
        noun = "script" if len(found) == 1 else "scripts"
        raise ShadowsCommand(
            f"these packages would put console {noun} first on kernels' PATH that shadow"
            f" commands the kernels run: {'; '.join(parts)}; {ALLOWING}"
        )

    def _system_path(self, path: str | None) -> list[str]:
        """The folders of ``path`` that are not bifrost's own (nor relative)."""
        own = [os.path.realpath(folder) for folder in self.own]
        text = os.environ.get("PATH", os.defpath) if path is None else path
        folders = []
        for folder in text.split(os.pathsep):
            if not os.path.isabs(folder):
                continue  # an empty or relative entry means the kernel's working folder
            real = os.path.realpath(folder)
            if any(real == mine or real.startswith(mine + os.sep) for mine in own):
                continue
            folders.append(folder)
        return folders


def _script_owners(env: Path, scripts: Iterable[str]) -> dict[str, str]:
    """``name version`` of the distribution whose RECORD lists ``bin/<script>``, by script."""
    wanted = {f"bin/{script}": script for script in scripts}
    owners = {}
    for dist_info, _pin in dist_infos(env):
        try:
            paths = [os.path.normpath(path) for path in record_paths(dist_info)]
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        name, _, version = dist_info.name[: -len(DIST_INFO)].rpartition("-")
        for relative in paths:
            if relative in wanted:
                owners[wanted[relative]] = f"{name} {version}"
    return owners
