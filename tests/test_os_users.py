"""Each user's files are theirs: two real OS users on one machine.

The attack (a hub with LocalProcessSpawner, where ``useradd`` makes 0755 homes): bob's kernel
read alice's ``…/bifrost/site/alice/requirements.json`` and imported her packages from her
``current``, because bifrost made its folders 0755 and its files 0644 (uv's ``.lock`` files
0666). Here alice's own ``jupyter bifrost install`` builds her environment under her home, and
a process running as bob tries to list, read and import what it made.

The users are made by this test (``useradd``, as root, with names no one else has) and removed
afterwards, whatever happened. Their Python is the system's ``python3.11`` (the suite's own
interpreter may live where other users cannot enter) with the suite's packages on its path.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import bifrost_ext
import bifrost_kernel
from bifrost_ext.workspaces import workspace_for_user
from tests.wheels import build_suite_wheels

SYSTEM_PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class World:
    """What the users share: a folder everyone may enter, a Python, a wheelhouse."""

    root: Path
    python: Path
    wheels: Path


@dataclass(frozen=True)
class User:
    """One OS user this test made, with a 0755 home as ``useradd`` makes it."""

    name: str
    home: Path

    @property
    def data_dir(self) -> Path:
        return self.home / ".local" / "share" / "jupyter" / "bifrost"

    @property
    def site_dir(self) -> Path:
        return self.data_dir / "site"


def run_as(user: User, world: World, argv: list[str], umask: int = 0o022, **env: str) -> str:
    """Run ``argv`` as ``user`` with a clean environment and ``umask``; its stdout."""
    environment = {
        "HOME": str(user.home),
        "PATH": f"{world.python.parent}:/usr/bin:/bin",
        "JUPYTERHUB_USER": user.name,
        "BIFROST_FIND_LINKS": str(world.wheels),
        "BIFROST_NO_INDEX": "1",
        **env,
    }
    command = ["runuser", "-u", user.name, "--", "env", "-i"]
    command += [f"{name}={value}" for name, value in environment.items()]
    command += ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *argv]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=user.home, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def world() -> Iterator[World]:
    """A folder under /tmp everyone may enter (pytest's own are root's alone), holding a
    virtual environment of the system Python with the suite's packages, and wheels."""
    if os.geteuid() != 0:
        pytest.fail("this test makes OS users: run it as root (CI and the dev machines do)")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.fail(f"{SYSTEM_PYTHON}, the suite's Python version runnable by any user, is missing")
    root = Path(tempfile.mkdtemp(prefix="bifrost-os-users-", dir="/tmp"))
    try:
        root.chmod(0o755)
        venv = root / "venv"
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
        (own,) = venv.glob("lib/python*/site-packages")
        # Everything the users run is copied in, not reached through a path line: the suite's
        # environment and checkout may sit in a folder only root may enter (a CI clone under
        # mktemp -d). Redis-py wants the async-timeout backport before Python 3.11.3, which
        # Debian's 3.11 is; the standard library has had the same context manager since.
        for package in (bifrost_ext, bifrost_kernel):
            shutil.copytree(
                Path(package.__file__).parent,
                own / package.__name__,
                ignore=shutil.ignore_patterns("__pycache__", "labextension"),
            )
        (own / "async_timeout.py").write_text("from asyncio import timeout  # noqa: F401\n")
        wheels = root / "wheels"
        wheels.mkdir()
        build_suite_wheels(wheels)
        subprocess.run(["chmod", "-R", "a+rX", str(venv), str(wheels)], check=True)
        # Hard links (on one filesystem) to the suite's packages and its uv: as readable as
        # they are there, and nothing of the suite's is changed, its modes included.
        site_packages = Path(sysconfig.get_path("purelib"))
        for entry in site_packages.iterdir():
            if entry.name.startswith("_editable_impl_"):
                continue  # the editable install's path line: this checkout is copied above
            _link_tree(entry, own / entry.name)
        _link_tree(Path(sys.executable).parent / "uv", venv / "bin" / "uv")
        yield World(root, venv / "bin" / "python", wheels)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _link_tree(source: Path, target: Path) -> None:
    """``target`` made of hard links to ``source``'s files (copies across filesystems)."""
    linked = subprocess.run(["cp", "-al", str(source), str(target)], capture_output=True)
    if linked.returncode != 0:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        subprocess.run(["cp", "-a", str(source), str(target)], check=True)


@pytest.fixture
def make_user(world: World) -> Iterator[Callable[[str], User]]:
    """Make OS users under ``world`` (unique names); each is deleted at the end."""
    made: list[User] = []

    def make(prefix: str) -> User:
        name = f"bf{prefix}{secrets.token_hex(4)}"
        home = world.root / name
        subprocess.run(
            ["useradd", "--create-home", "--home-dir", str(home), "--user-group", name],
            check=True,
            capture_output=True,
        )
        made.append(User(name, home))
        home.chmod(0o755)  # as useradd makes homes on Debian and Ubuntu (HOME_MODE unset)
        return made[-1]

    yield make
    for user in made:
        subprocess.run(["userdel", user.name], check=False, capture_output=True)
        shutil.rmtree(user.home, ignore_errors=True)
    for user in made:
        assert subprocess.run(["id", user.name], capture_output=True).returncode != 0


#: Run as bob: each attempt on one of alice's paths, and whether it worked.
ATTEMPTS = r"""
import json, os, sys
done = {}
def attempt(what, action):
    try:
        action()
        done[what] = "worked"
    except PermissionError:
        done[what] = "denied"
    except Exception as exc:
        done[what] = f"{type(exc).__name__}: {exc}"
for path in json.loads(sys.argv[1]):
    if path.endswith("/"):
        attempt("list " + path, lambda: os.listdir(path))
    else:
        attempt("read " + path, lambda: open(path, "rb").read(1))
sys.path.insert(0, sys.argv[2])
try:
    import bfdemo
    done["import bfdemo"] = bfdemo.__file__
except ImportError:
    done["import bfdemo"] = "not found"
print(json.dumps(done))
"""


def test_bob_reads_nothing_of_alices(world: World, make_user: Callable[[str], User]) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    cli = [str(world.python), "-m", "bifrost_ext.cli.main"]
    run_as(alice, world, [*cli, "install", "bfdemo==1.0"])
    # A second change made under a permissive umask: what it creates is private all the same.
    run_as(alice, world, [*cli, "install", "bfapp"], umask=0o000)

    workspace = alice.site_dir / workspace_for_user(alice.name)
    (root,) = (p for p in workspace.iterdir() if p.is_dir() and p.name != "kernels")
    current = root / "current"
    show = "import bfdemo, bfapp; print(bfdemo.__version__, bfapp.__name__)"
    assert run_as(
        alice, world, [str(world.python), "-c", show], PYTHONPATH=str(current)
    ).split() == [
        "1.0",
        "bfapp",
    ]
    # Everything bifrost made for alice (as root sees it), and what bob tries on each.
    made = [alice.data_dir, alice.site_dir, workspace, root, current, alice.site_dir / ".cache"]
    files = [alice.data_dir / "bifrost.db", workspace / "requirements.json", root / "active.json"]
    locks = sorted(alice.data_dir.rglob("*.lock"))
    assert any(lock.stat().st_mode & 0o777 == 0o666 for lock in locks), "uv makes 0666 locks"
    paths = [f"{folder}/" for folder in made] + [str(p) for p in files + locks]
    out = run_as(bob, world, [str(world.python), "-c", ATTEMPTS, json.dumps(paths), str(current)])
    outcome = json.loads(out)
    worked = {what: how for what, how in outcome.items() if how != "denied"}
    assert worked == {"import bfdemo": "not found"}, worked

    # umask-independent: bifrost's folders are 0700 and its own files 0600 (what is inside
    # the folders, such as uv's locks, is out of reach with them).
    for folder in [*made[:4], alice.site_dir / ".cache"]:
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    for file in files:
        assert file.stat().st_mode & 0o777 == 0o600, file
