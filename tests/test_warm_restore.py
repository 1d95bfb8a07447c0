"""A new container restoring saved requirements with the installer's cache kept: the kernel
check runs once per lock and kernel runtime, and the bytecode comes after the switch.

Every run of the kernel interpreter goes through a wrapper that logs its arguments and its
priority, then runs the real interpreter: the checks and compiles counted are real
processes."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bifrost_ext.engine.installer import Installer
from bifrost_ext.engine.kernel_check import KERNEL_IMPORTS, PASSED_CHECKS
from bifrost_ext.engine.packagedir import PackageDirectory
from bifrost_ext.records import RequirementsRecord
from bifrost_kernel.probes import COMPILE_MODULES, IMPORT_CHECK
from tests.wheels import build_wheel

WIDE = {f"bfwarm/m{i:02d}.py": f"def f(x):\n    return x + {i}\n" for i in range(20)}


@pytest.fixture
def python(tmp_path: Path) -> Path:
    """A kernel interpreter that logs each run (its niceness, then its arguments)."""
    wrapper = tmp_path / "kernel-python" / "python"
    wrapper.parent.mkdir()
    log = tmp_path / "runs.log"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'echo "$(nice) $*" >> {shlex.quote(str(log))}\n'
        f'exec {shlex.quote(sys.executable)} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def runs(python: Path, program: str) -> list[str]:
    """The logged runs of ``python`` that ran ``program``."""
    log = python.parent.parent / "runs.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if program in line]


def container(
    tmp_path: Path, name: str, house: list[str], python: Path, protected: tuple[str, ...] = ()
) -> PackageDirectory:
    """A new container's package directory: a site folder of its own, the kept cache."""
    cache = tmp_path / "installer-cache"  # the persistent volume
    installer = Installer(tool="uv", find_links=house, no_index=True, cache_dir=str(cache))
    return PackageDirectory(tmp_path / name / "pkg", installer, str(python), protected)


@pytest.fixture
def house(tmp_path: Path, wheelhouse: Path) -> list[str]:
    build_wheel(tmp_path / "house", "bfwarm", "1.0", extra_files=WIDE)
    return [str(wheelhouse), str(tmp_path / "house")]


def record(content: str) -> RequirementsRecord:
    return RequirementsRecord.of("default", content, 1)


async def test_a_restore_of_a_lock_that_passed_starts_no_second_check(
    tmp_path: Path, house: list[str], python: Path
) -> None:
    first = container(tmp_path, "one", house, python)
    await first.ensure(record("bfdemo==1.0\n"))
    assert len(runs(python, IMPORT_CHECK)) == 1
    seen = (first.current / KERNEL_IMPORTS).read_text("utf-8")

    second = container(tmp_path, "two", house, python)
    await second.ensure(record("bfdemo==1.0\n"))
    assert len(runs(python, IMPORT_CHECK)) == 1  # the same lock for the same kernel: noted
    # What the check saw comes with the note: the next change knows what kernels import.
    assert (second.current / KERNEL_IMPORTS).read_text("utf-8") == seen
    await second.ensure(RequirementsRecord.of("default", "bfdemo==1.0\nbfbase\n", 2))
    assert len(runs(python, IMPORT_CHECK)) == 1

    # Another lock: checked.
    await container(tmp_path, "three", house, python).ensure(record("bfdemo==2.0\n"))
    assert len(runs(python, IMPORT_CHECK)) == 2
    # The same lock, with the kernel holding other packages (one more protected): checked.
    other = container(tmp_path, "four", house, python, protected=("pytest",))
    await other.ensure(record("bfdemo==1.0\n"))
    assert len(runs(python, IMPORT_CHECK)) == 3


async def test_a_note_that_is_not_one_is_no_note(
    tmp_path: Path, house: list[str], python: Path
) -> None:
    await container(tmp_path, "one", house, python).ensure(record("bfdemo==1.0\n"))
    [note] = (tmp_path / "installer-cache" / PASSED_CHECKS).iterdir()
    for text in ("not json", '{"names": 1}', '["ok", 2]', "[" + '"x",' * 600_000 + '"x"]'):
        note.write_text(text)
        before = len(runs(python, IMPORT_CHECK))
        await container(tmp_path, f"again-{len(text)}", house, python).ensure(
            record("bfdemo==1.0\n")
        )
        assert len(runs(python, IMPORT_CHECK)) == before + 1, text
        assert note.read_text() != text  # the check passed again and said so


async def test_a_restore_compiles_after_the_switch_at_the_lowest_priority(
    tmp_path: Path, house: list[str], python: Path
) -> None:
    pkg = container(tmp_path, "one", house, python)
    await pkg.ensure(record("bfwarm\n"))
    # Switched; its bytecode may still be coming, and an import meanwhile is right.
    imports = "; ".join(f"import bfwarm.m{i:02d} as m; assert m.f(0) == {i}" for i in range(20))
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [sys.executable, "-c", f"{imports}; print('ok')"],
        env={**environ, "PYTHONPATH": str(pkg.current)},
        capture_output=True,
        text=True,
    )
    assert done.stdout == "ok\n", done.stderr
    await pkg.bytecode.settled()
    compiles = runs(python, COMPILE_MODULES)
    assert compiles
    assert all(line.split()[0] == "19" for line in compiles)
    assert runs(python, IMPORT_CHECK)[0].split()[0] == str(os.nice(0))  # only the compile
    compiled = {path.name.split(".")[0] for path in pkg.current.glob("bfwarm/__pycache__/*.pyc")}
    assert compiled == {"__init__", *(f"m{i:02d}" for i in range(len(WIDE)))}


async def test_a_change_compiles_what_it_brought_after_the_switch_at_the_lowest_priority(
    tmp_path: Path, house: list[str], python: Path
) -> None:
    pkg = container(tmp_path, "one", house, python)
    await pkg.ensure(record("bfdemo==1.0\n"))
    await pkg.bytecode.settled()
    before = len(runs(python, COMPILE_MODULES))
    await pkg.ensure(RequirementsRecord.of("default", "bfdemo==1.0\nbfwarm\n", 2))
    await pkg.bytecode.settled()
    compiles = runs(python, COMPILE_MODULES)[before:]
    assert compiles  # the change's own, in the kernel interpreter
    assert all(line.split()[0] == "19" for line in compiles)
    compiled = {path.name.split(".")[0] for path in pkg.current.glob("bfwarm/__pycache__/*.pyc")}
    assert compiled == {"__init__", *(f"m{i:02d}" for i in range(len(WIDE)))}
