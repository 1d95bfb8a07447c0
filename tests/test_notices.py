"""What a kernel's user reads is short and true (issue 23): the ``%pip`` hint, the stale
notice, a removal the kernel's own environment still satisfies, and who made each change.

Real kernels started over REST (a notebook session for the history), a real server, the cell's
real output.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest

from tests.kernels import execute
from tests.wheels import build_wheel

pytestmark = pytest.mark.usefixtures("jp_serverapp")

RESTART_HINT = "restart the kernel to use the new versions"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """One database is enough here: nothing below is about the store."""
    return sqlite_url


@pytest.fixture
def session(jp_fetch: Any, jp_serverapp: Any, jp_asyncio_loop: Any) -> tuple[Any, str]:
    """A notebook session (``Untitled.ipynb``) and its kernel, as JupyterLab opens one."""
    body = {"path": "Untitled.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
    start = jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    response = jp_asyncio_loop.run_until_complete(start)
    kernel_id = json.loads(response.body)["kernel"]["id"]
    return jp_serverapp.kernel_manager.get_kernel(kernel_id), kernel_id


@pytest.fixture
def kernel(session: tuple[Any, str]) -> Any:
    return session[0]


@pytest.fixture
def bfreq(wheelhouse: Path) -> None:
    """``bfreq`` needs four distributions, as ``requests`` needs urllib3, idna, certifi…"""
    deps = ["bfreqa", "bfreqb", "bfreqc", "bfreqd"]
    for dep in deps:
        build_wheel(wheelhouse, dep, "1.0")
    build_wheel(wheelhouse, "bfreq", "1.0", requires=deps)


@pytest.fixture
def fake_requests(wheelhouse: Path) -> None:
    """A ``requests`` the wheelhouse has; the kernel's own environment has the real one."""
    build_wheel(wheelhouse, "requests", "99.0")


async def api_change(jp_fetch: Any, route: str, packages: list[str]) -> None:
    """A change made elsewhere (another tab, the CLI, another server): not by this kernel."""
    body = json.dumps({"packages": packages})
    await jp_fetch("api", "packages", route, method="POST", body=body)


async def test_the_pip_hint_says_where_pip_installs(kernel: Any, tmp_path: Path) -> None:
    purelib = await execute(kernel, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    target = purelib.text.strip()
    cell = await execute(kernel, "if False:\n    %pip install six\n")
    assert cell.text == (
        f"bifrost: %pip installs into {target} (this kernel's own environment: it lasts until"
        " that is rebuilt, as in a new container), not into the workspace's saved packages;"
        " `%bifrost install six` saves them for the workspace\n"
    )
    # `!pip` is whatever pip the shell finds first: here one of another Python.
    other = tmp_path / "bin"
    other.mkdir()
    (other / "pip").write_text("#!/usr/bin/python3\nraise SystemExit(0)\n")
    (other / "pip").chmod(0o755)
    await execute(kernel, f"import os; os.environ['PATH'] = {str(other)!r}")
    shell = await execute(kernel, "if False:\n    !pip install six\n")
    assert shell.text.splitlines() == [
        f"bifrost: !pip runs {other / 'pip'}, which is not this kernel's Python: this kernel"
        " may not import what it installs; `%bifrost install six` installs for this kernel"
        " and saves it for the workspace"
    ]


@pytest.mark.usefixtures("bfreq")
async def test_a_change_elsewhere_is_one_line_naming_the_requirement(
    kernel: Any, jp_fetch: Any
) -> None:
    await execute(kernel, "%bifrost install bfreq bfdemo==1.0")
    await execute(kernel, "import bfreq, bfreqa, bfreqb, bfreqc, bfreqd, bfdemo")
    await api_change(jp_fetch, "uninstall", ["bfreq"])
    # The next cell is unrelated and fails: the notice is one line before its error.
    told = await execute(kernel, "1/0")
    assert told.status == "error"
    lines = [line for line in told.text.splitlines() if "bifrost" in line]
    assert lines == [
        "⚠ bifrost: the workspace's packages changed: bfreq 1.0 (now removed) and 4"
        f" dependencies are imported in this kernel; {RESTART_HINT} (Kernel ▸ Restart)"
    ], told.text
    # A version change of a requirement is named at the version in memory.
    await api_change(jp_fetch, "install", ["bfdemo==2.0"])
    changed = await execute(kernel, "pass")
    assert changed.text.splitlines() == [
        "⚠ bifrost: the workspace's packages changed: bfdemo 1.0 (now 2.0) is imported in this"
        f" kernel; {RESTART_HINT} (Kernel ▸ Restart)"
    ]


@pytest.mark.usefixtures("bfreq")
async def test_the_magics_own_change_is_one_line_too(kernel: Any) -> None:
    await execute(kernel, "%bifrost install bfreq")
    await execute(kernel, "import bfreq, bfreqa, bfreqb, bfreqc, bfreqd")
    cell = await execute(kernel, "%bifrost remove bfreq")
    assert cell.status == "ok", cell.text
    warned = [line for line in cell.text.splitlines() if line.startswith("⚠")]
    assert warned == [
        "⚠ bfreq 1.0 (now removed) and 4 dependencies are imported in this kernel;"
        f" {RESTART_HINT} (Kernel ▸ Restart, or add --restart to the %bifrost command)"
    ], cell.text
    assert cell.text.count(RESTART_HINT) == 1
    # The watch does not say it again.
    assert (await execute(kernel, "pass")).text == ""


@pytest.mark.usefixtures("fake_requests")
async def test_a_removed_package_the_kernels_own_environment_has_is_named(
    kernel: Any, jp_fetch: Any
) -> None:
    import requests

    await execute(kernel, "%bifrost install requests")
    cell = await execute(kernel, "%bifrost remove requests")
    assert cell.status == "ok", cell.text
    where = Path(requests.__file__).parent.parent
    assert (
        f"requests {requests.__version__} is still importable here, from this kernel's own"
        f" environment ({where}): removing it from the workspace does not uninstall it"
    ) in cell.text.splitlines(), cell.text
    # Removed elsewhere after this kernel imported the workspace's copy: the notice says what
    # a restart brings, the kernel's own copy, not "removed".
    await api_change(jp_fetch, "install", ["requests"])
    await execute(kernel, "import requests")
    await api_change(jp_fetch, "uninstall", ["requests"])
    told = await execute(kernel, "pass")
    assert told.text.splitlines() == [
        "⚠ bifrost: the workspace's packages changed: requests 99.0 (now"
        f" {requests.__version__} from the kernel's own environment) is imported in this"
        f" kernel; {RESTART_HINT} (Kernel ▸ Restart)"
    ]
    # A removal the kernel's environment knows nothing of says nothing of the kind.
    await execute(kernel, "%bifrost install bfdemo")
    assert "still importable" not in (await execute(kernel, "%bifrost remove bfdemo")).text


async def test_a_session_path_reaches_the_history_as_text(
    session: tuple[Any, str], jp_fetch: Any
) -> None:
    """A session's path is whatever its client said (it need not be a file). Before: kept
    raw, so a newline or an escape sequence in it reached the panel and the operator's
    ``jupyter bifrost history``. Now what is not printable is kept escaped."""
    kernel, kernel_id = session
    sessions = json.loads((await jp_fetch("api", "sessions")).body)
    path = "a\n  99  v99  admin (cli)\x1b[2J\u202e.ipynb"
    await jp_fetch(
        "api", "sessions", sessions[0]["id"], method="PATCH", body=json.dumps({"path": path})
    )
    await execute(kernel, "%bifrost install bfdemo==1.0")
    revisions = json.loads((await jp_fetch("api", "packages", "history")).body)["revisions"]
    assert revisions[0]["source"] == (
        f"kernel {kernel_id[:8]} (a\\n  99  v99  admin (cli)\\x1b[2J\\u202e.ipynb)"
    )


async def test_the_history_names_the_person_and_a_short_source(
    session: tuple[Any, str], jp_fetch: Any
) -> None:
    kernel, kernel_id = session
    await execute(kernel, "%bifrost install bfdemo==1.0")
    await jp_fetch(
        "api",
        "packages",
        "install",
        method="POST",
        body=json.dumps({"packages": ["bfdep"]}),
        headers={"X-Bifrost-Client": "panel"},
    )
    await api_change(jp_fetch, "install", ["bfapp"])
    response = await jp_fetch("api", "packages", "history")
    revisions = json.loads(response.body)["revisions"]
    assert [(r["user"], r["source"]) for r in revisions] == [
        (getpass.getuser(), "api"),
        (getpass.getuser(), "panel"),
        (getpass.getuser(), f"kernel {kernel_id[:8]} (Untitled.ipynb)"),
    ]
