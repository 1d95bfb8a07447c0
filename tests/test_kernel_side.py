"""The kernel side stays apart: it imports only the standard library and IPython, and the
provisioner puts only it on a kernel's path."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from bifrost_ext.server.provisioner import magic_path

KERNEL_SIDE = Path(__file__).resolve().parent.parent / "bifrost_kernel"
#: What a kernel's environment may lack: the server's dependencies.
SERVER_ONLY = ("jupyter_server", "jupyter_client", "sqlalchemy", "redis", "tornado", "pluggy")

# An interpreter in which the server's dependencies cannot be imported at all.
_WITHOUT_SERVER_PACKAGES = """
import sys
from importlib.abc import MetaPathFinder

class Refuse(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not importable in this kernel")
        return None

sys.meta_path.insert(0, Refuse())
"""


def run_without_server_packages(code: str) -> str:
    program = _WITHOUT_SERVER_PACKAGES.format(blocked=set(SERVER_ONLY)) + code
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_kernel_side_imports_and_runs_without_the_server_packages() -> None:
    out = run_without_server_packages(
        """
import bifrost_kernel, bifrost_kernel.client, bifrost_kernel.magic
import bifrost_kernel.stale, bifrost_kernel.watch
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "bifrost_ext")
shell.run_line_magic("bifrost", "")
shell.run_cell("%pip install nothing-to-see")
try:
    import tornado
except ImportError:
    print("tornado refused")
"""
    )
    assert "%bifrost install [--restart] SPEC..." in out
    assert "`%bifrost install nothing-to-see` saves them for the workspace" in out
    assert out.splitlines()[-1] == "tornado refused"  # the guard works


def test_kernel_modules_import_only_the_standard_library_ipython_and_each_other() -> None:
    allowed = set(sys.stdlib_module_names) | {"IPython"}
    for module in sorted(KERNEL_SIDE.rglob("*.py")):
        tree = ast.parse(module.read_text(), str(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level > 0:  # relative: another module of the kernel side
                    assert node.level == 1, f"{module.name} reaches outside the kernel side"
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.partition(".")[0] in allowed, f"{module.name} imports {name}"


def test_a_kernel_in_another_environment_sees_only_the_kernel_side(tmp_path: Path) -> None:
    folder = magic_path(tmp_path / "site")
    assert sorted(p.name for p in folder.iterdir()) == ["bifrost_kernel"]
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",  # no site-packages: only what the folder offers (and the standard library)
            "-c",
            f"import sys; sys.path.insert(0, {str(folder)!r}); import bifrost_kernel.env;"
            "import importlib.util as u; print(u.find_spec('bifrost_ext'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "None"
    magic_path(tmp_path / "site")  # idempotent: the links are left as they are


def test_the_probes_are_programs_of_the_standard_library_alone() -> None:
    # Run as files in a kernel interpreter where no bifrost package is importable.
    allowed = set(sys.stdlib_module_names)
    programs = sorted((KERNEL_SIDE / "probes").glob("*.py"))
    assert [p.name for p in programs if p.name != "__init__.py"]
    for program in programs:
        tree = ast.parse(program.read_text(), str(program))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{program.name} imports a neighbour"
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert name.partition(".")[0] in allowed, f"{program.name} imports {name}"
