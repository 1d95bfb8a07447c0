"""Kernel starts through the real server: the provisioner installs before the first execution."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from jupyter_client.provisioning import LocalProvisioner

from bifrost_ext.server.provisioner import BifrostProvisioner
from bifrost_ext.settings import SERVICE_SETTING
from bifrost_ext.storage.store import RequirementsStore
from tests.api import call
from tests.kernels import IMPORT_BFDEMO, run_cell, served_kernel
from tests.wheels import make_service, stopped

pytestmark = pytest.mark.usefixtures("jp_serverapp")


async def start_kernel(jp_fetch: Any, name: str = "python3") -> str:
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": name}))
    kernel_id: str = json.loads(response.body)["id"]
    return kernel_id


async def install(jp_fetch: Any, *specs: str) -> None:
    body = json.dumps({"packages": list(specs)})
    response = await jp_fetch("api", "packages", "install", method="POST", body=body)
    assert response.code == 200


async def test_a_kernel_started_over_rest_goes_through_the_provisioner(
    jp_fetch: Any, jp_serverapp: Any, site_dir: Path
) -> None:
    await install(jp_fetch, "bfdemo==1.0")
    kernel_id = await start_kernel(jp_fetch)
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    assert isinstance(km.provisioner, BifrostProvisioner)
    lines = (await run_cell(km, IMPORT_BFDEMO)).splitlines()
    assert lines[0] == "1.0"
    assert lines[1].startswith(str(site_dir / "default"))


async def test_a_restarted_kernel_gets_the_new_requirements(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    await install(jp_fetch, "bfdemo==1.0")
    kernel_id = await start_kernel(jp_fetch)
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    assert (await run_cell(km, IMPORT_BFDEMO)).startswith("1.0")
    await install(jp_fetch, "bfdemo==2.0")
    await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="{}")
    assert (await run_cell(km, IMPORT_BFDEMO)).startswith("2.0")


async def test_a_kernel_reports_the_version_it_imported_after_a_change(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    # What the Packages panel asks the active notebook's kernel, the way it asks it.
    report = "print(__import__('bifrost_kernel.report', fromlist=['report']).report())"
    await install(jp_fetch, "bfdemo==1.0")
    km = jp_serverapp.kernel_manager.get_kernel(await start_kernel(jp_fetch))
    assert json.loads(await run_cell(km, report)) == {"loaded": {}}
    await run_cell(km, "import bfdemo")
    await install(jp_fetch, "bfdemo==2.0")
    disk = "import importlib.metadata as m; print(m.version('bfdemo'))"
    after = await run_cell(km, f"{disk}; {report}")
    *_notice, on_disk, reported = after.splitlines()  # after the stale-module notice
    assert on_disk == "2.0"  # what is installed; %bifrost list shows both
    assert json.loads(reported) == {"loaded": {"bfdemo": "1.0"}}


async def test_a_kernel_start_installs_what_the_database_holds(
    jp_fetch: Any, jp_serverapp: Any, store: RequirementsStore, redis_client: redis.Redis
) -> None:
    # Saved by another server: nothing in this server's package directory, nothing cached.
    store.save("default", "bfapp\nbfdemo==2.0\n", 0)
    assert redis_client.get("bifrost:requirements:content") is None
    kernel_id = await start_kernel(jp_fetch)
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    notice, *output = (await run_cell(km, IMPORT_BFDEMO + "; import bfapp, bfdep")).splitlines()
    assert notice.startswith("bifrost: installed 3 packages for workspace 'default' in"), notice
    assert output[0] == "2.0", output
    # The kernel start filled the cache on its way.
    assert json.loads(redis_client.get("bifrost:requirements:content"))["version"] == 1


async def test_packages_never_reach_the_server_process(jp_fetch: Any, jp_serverapp: Any) -> None:
    import importlib.util

    await install(jp_fetch, "bfdemo==1.0")
    kernel_id = await start_kernel(jp_fetch)
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    assert (await run_cell(km, IMPORT_BFDEMO)).startswith("1.0")
    assert importlib.util.find_spec("bfdemo") is None


class TestKernelspecWithItsOwnProvisioner:
    @pytest.fixture(autouse=True)
    def local_spec(self, jp_kernel_dir: Path) -> None:
        import sys

        spec_dir = jp_kernel_dir / "plain"
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "plain",
            "language": "python",
            "metadata": {"kernel_provisioner": {"provisioner_name": "local-provisioner"}},
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))

    async def test_it_keeps_that_provisioner(self, jp_fetch: Any, jp_serverapp: Any) -> None:
        kernel_id = await start_kernel(jp_fetch, "plain")
        provisioner = jp_serverapp.kernel_manager.get_kernel(kernel_id).provisioner
        assert type(provisioner) is LocalProvisioner


class TestProvisionerTurnedOff:
    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any]) -> dict[str, Any]:
        return {**bifrost_config, "use_provisioner": False}

    async def test_kernels_use_the_local_provisioner(
        self, jp_fetch: Any, jp_serverapp: Any
    ) -> None:
        kernel_id = await start_kernel(jp_fetch)
        provisioner = jp_serverapp.kernel_manager.get_kernel(kernel_id).provisioner
        assert type(provisioner) is LocalProvisioner


async def test_a_running_kernel_can_import_a_package_installed_after_it_started(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    kernel_id = await start_kernel(jp_fetch)
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    assert "ModuleNotFoundError" in await run_cell(km, "import bfdemo")
    await install(jp_fetch, "bfdemo==1.0")
    assert (await run_cell(km, IMPORT_BFDEMO)).startswith("1.0")


async def test_a_kernel_gets_no_store_credentials(
    jp_fetch: Any, jp_serverapp: Any, bifrost_env: dict[str, str], monkeypatch: Any
) -> None:
    """Kernel code can read its whole environment: the database and Redis URLs (and index
    URLs, which may carry passwords) stay with the server, and so does every other
    ``BIFROST_*`` (``BIFROST_TEST_UI=0 scripts/test`` once failed here); the kernel keeps its
    own scoped credential and what it needs to find its packages (test_kernel_env has more)."""
    for name, value in bifrost_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BIFROST_INDEX_URL", "https://user:secret@index.example/simple")
    monkeypatch.setenv("BIFROST_TEST_UI", "0")
    await install(jp_fetch, "bfdemo==1.0")
    km = jp_serverapp.kernel_manager.get_kernel(await start_kernel(jp_fetch))
    code = "import os; print(sorted(k for k in os.environ if k.startswith('BIFROST_')))"
    names = (await run_cell(km, code)).strip()
    assert names == str(
        [
            "BIFROST_KERNEL_TOKEN",
            "BIFROST_PACKAGE_DIR",
            "BIFROST_RECYCLE",
            "BIFROST_SERVER_URL",
            "BIFROST_WORKSPACE",
        ]
    )
    assert "bfdemo   ==1.0  1.0" in await run_cell(km, "%bifrost list")
    # `!jupyter bifrost` from the kernel runs (the kernel side's folder on PYTHONPATH does
    # not hide the rest of the package) and points to the magic. The kernel's PYTHONPATH as a
    # server started without one gives it: the package directory first, the kernel side last.
    jupyter_bifrost = Path(sys.executable).parent / "jupyter-bifrost"
    code = (
        "import os, subprocess; path = os.environ['PYTHONPATH'].split(os.pathsep);"
        " env = dict(os.environ, PYTHONPATH=os.pathsep.join([path[0], path[-1]]));"
        f" done = subprocess.run([{str(jupyter_bifrost)!r}, 'list'], env=env,"
        " capture_output=True, text=True); print(done.returncode, done.stderr)"
    )
    out = await run_cell(km, code)
    assert out.startswith("2 error: this is a kernel started by bifrost"), out


async def test_a_kernel_that_waited_for_an_install_says_why(
    jp_fetch: Any, jp_serverapp: Any, store: RequirementsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    (app,) = jp_serverapp.extension_manager.extension_apps["bifrost_ext"]
    if app._warm_task is not None:  # the start-up build is done: the kernel start waits
        await app._warm_task
    service = app.service
    builds: list[list[dict[str, Any]]] = []
    real = service.installer.install

    async def install(*args: Any, **kw: Any) -> str:
        # What the Packages panel's status strip reads while the kernel waits.
        builds.append((await service.status())["builds"])
        return str(await real(*args, **kw))

    monkeypatch.setattr(service.installer, "install", install)
    store.save("default", "bfapp\nbfdemo==2.0\n", 0)  # saved by another server
    kernel_id = await start_kernel(jp_fetch)
    assert [[(b["for"], b["packages"]) for b in found] for found in builds] == [
        [("kernel start", 2)]
    ]
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    first, *rest = (await run_cell(km, "print('hello')")).splitlines()
    assert re.fullmatch(
        r"bifrost: installed 3 packages for workspace 'default' in \d+\.\d s"
        r" before this kernel started",
        first,
    ), first
    assert rest == ["hello"]
    assert await run_cell(km, "print('again')") == "again\n"  # said once
    # A restart with nothing to install waited for nothing, and says nothing.
    await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="{}")
    assert await run_cell(km, "print('restarted')") == "restarted\n"


async def test_console_scripts_run_in_the_kernel_with_its_interpreter(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    # Started before the install: `current/bin` is on its PATH, and follows the switch.
    km = jp_serverapp.kernel_manager.get_kernel(await start_kernel(jp_fetch))
    kernel_python = (await run_cell(km, "import sys; print(sys.executable)")).strip()
    await install(jp_fetch, "bfscript")
    out = await run_cell(km, "!bfscript --version")
    assert out.splitlines() == [f"bfscript 1.0 {kernel_python}"], out
    # The script finds its package without the kernel's PYTHONPATH (as in a terminal).
    out = await run_cell(km, "!env -u PYTHONPATH bfscript --version")
    assert out.splitlines() == [f"bfscript 1.0 {kernel_python}"], out


class TestRestartAfterAChangeNoEventAnnounced:
    """No Redis anywhere: nothing tells this server of another server's save."""

    @pytest.fixture
    def database_url(self, pg_url: str) -> str:
        return pg_url

    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any]) -> dict[str, Any]:
        return {**bifrost_config, "redis_url": None}

    async def test_a_restarted_kernel_gets_what_the_database_holds_now(
        self,
        jp_fetch: Any,
        jp_serverapp: Any,
        database_url: str,
        tmp_path: Path,
        wheelhouse: Path,
    ) -> None:
        """Mutant: a restart reuses the package path prepared at the kernel's first start
        (``pre_launch`` skips the preparation when it already has one)."""
        status, body = await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]})
        assert status == 200, body
        kernel = await served_kernel(jp_fetch, jp_serverapp)
        assert (await run_cell(kernel, IMPORT_BFDEMO)).startswith("1.0\n")

        other = make_service(database_url, "", tmp_path / "other-site", wheelhouse)
        try:
            await other.install(["bfdemo==2.0"])
        finally:
            await stopped(other)
        active = (
            await jp_serverapp.web_app.settings[SERVICE_SETTING].package_dir()
        ).active_record()
        assert "bfdemo==1.0" in active.content, "this server was told; the test needs it not to"

        await jp_fetch("api", "kernels", kernel.kernel_id, "restart", method="POST", body="{}")
        # It waited for the other server's change to be installed here, and says so first.
        notice, version, _ = (await run_cell(kernel, IMPORT_BFDEMO)).splitlines()
        assert notice.startswith("bifrost: installed 1 package for workspace 'default' in")
        assert version == "2.0"
