"""``%bifrost`` in real kernels against a real server: what a person sees in the cell."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from bifrost_ext.storage.cache import RequirementsCache
from bifrost_ext.storage.store import RequirementsStore
from tests.kernels import run_cell

pytestmark = pytest.mark.usefixtures("jp_serverapp")


@pytest.fixture
def kernel(jp_fetch: Any, jp_serverapp: Any, jp_asyncio_loop: Any) -> Any:
    """A kernel started over REST, as JupyterLab starts one."""
    start = jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    response = jp_asyncio_loop.run_until_complete(start)
    return jp_serverapp.kernel_manager.get_kernel(json.loads(response.body)["id"])


async def test_install_streams_progress_and_imports_without_restart(kernel: Any) -> None:
    output = await run_cell(kernel, "%bifrost install bfdemo==1.0 bfapp")
    lines = output.splitlines()
    assert lines[-1] == (
        "installed bfapp 1.0, bfdemo 1.0; also changed: bfdep 1.0 added;"
        " saved to workspace 'default'"
    )
    assert len(lines) > 1, "the installer's own output should reach the cell"
    assert (await run_cell(kernel, "import bfdemo, bfapp; print(bfdemo.__version__)")) == "1.0\n"


async def test_history_says_which_kernel_made_a_change(kernel: Any, jp_fetch: Any) -> None:
    await run_cell(kernel, "%bifrost install bfdemo==1.0")
    response = await jp_fetch("api", "packages", "history")
    latest = json.loads(response.body)["revisions"][0]
    # Short: a kernel started without a notebook session (POST api/kernels) has no path.
    assert latest["source"] == f"kernel {kernel.kernel_id[:8]}"
    assert latest["content"] == "bfdemo==1.0\n"


async def test_the_install_api_sends_server_sent_events(
    http_server_client: Any, jp_base_url: str, jp_auth_header: dict[str, str]
) -> None:
    chunks: list[bytes] = []
    response = await http_server_client.fetch(
        f"{jp_base_url}api/packages/install",
        method="POST",
        body=json.dumps({"packages": ["bfdemo==1.0", "bfapp"]}),
        headers={**jp_auth_header, "Accept": "text/event-stream"},
        streaming_callback=chunks.append,
        request_timeout=120,
    )
    assert response.headers["Content-Type"] == "text/event-stream"
    text = b"".join(chunks).decode()
    events = [block for block in text.split("\n\n") if block]
    assert len(chunks) > 1, "events are flushed as they happen, not in one blob"
    assert all(e.startswith("event: output\n") for e in events[:-1])
    assert events[-1].startswith("event: result\n")
    result = json.loads(events[-1].split("data: ", 1)[1])
    assert result["status"] == 200
    assert result["body"]["requirements"] == ["bfapp", "bfdemo==1.0"]


async def test_upgrading_an_imported_package_names_the_stale_modules(kernel: Any) -> None:
    await run_cell(kernel, "%bifrost install bfdemo==1.0")
    await run_cell(kernel, "import bfdemo")
    output = await run_cell(kernel, "%bifrost install bfdemo==2.0")
    assert "installed bfdemo 2.0 (was 1.0); saved to workspace 'default'" in output
    assert (
        "⚠ bfdemo 1.0 (now 2.0) is imported in this kernel; restart the kernel to use the new"
        " versions (Kernel ▸ Restart, or add --restart to the %bifrost command)"
    ) in output.splitlines()


async def test_a_package_not_imported_yet_needs_no_restart(kernel: Any) -> None:
    await run_cell(kernel, "%bifrost install bfdemo==1.0")
    output = await run_cell(kernel, "%bifrost install bfdemo==2.0")
    assert "⚠" not in output
    assert "restart" not in output
    assert (await run_cell(kernel, "import bfdemo; print(bfdemo.__version__)")) == "2.0\n"


async def test_restart_flag_restarts_the_kernel_after_the_install(kernel: Any) -> None:
    await run_cell(kernel, "%bifrost install bfdemo==1.0")
    await run_cell(kernel, "import bfdemo; marker = 'before'")
    # The restart waits for the cell that asked to end: what it does next still runs.
    cell = "%bifrost install --restart bfdemo==2.0\nimport time; time.sleep(1); print('done')"
    output = await run_cell(kernel, cell)
    assert "restarting the kernel…" in output
    assert output.endswith("restarting the kernel…\ndone\n"), output
    for _ in range(200):  # the restart happens just after the answer
        await asyncio.sleep(0.1)
        if kernel.provisioner and kernel.provisioner.process and kernel.ready.done():
            try:
                result = await run_cell(kernel, "print('marker' in dir())", timeout=5)
            except (TimeoutError, RuntimeError):
                continue
            if result == "False\n":
                break
    else:
        pytest.fail("the kernel was not restarted")
    assert (await run_cell(kernel, "import bfdemo; print(bfdemo.__version__)")) == "2.0\n"


async def test_remove_and_list(kernel: Any, store: RequirementsStore, redis_url: str) -> None:
    await run_cell(kernel, "%bifrost install bfdemo==1.0 bfdep")
    listing = (await run_cell(kernel, "%bifrost list")).splitlines()
    assert listing[0].split() == ["package", "saved", "installed", "in", "this", "kernel"]
    assert listing[1].split() == ["bfdemo", "==1.0", "1.0", "-"]
    assert listing[2].split() == ["bfdep", "any", "1.0", "-"]

    # Another server saves a newer pin: this kernel still imports the old one.
    newer = store.save("default", "bfdemo==2.0\nbfdep\n", store.get("default").version)
    cache = RequirementsCache(url=redis_url)
    cache.put(newer)
    cache.close()
    listing = (await run_cell(kernel, "%bifrost list")).splitlines()
    assert listing[1].split() == ["bfdemo", "==2.0", "1.0", "-", "✗", "does", "not", "match"]

    await run_cell(kernel, "import bfdep")
    output = await run_cell(kernel, "%bifrost remove bfdep")
    assert "removed bfdep" in output
    assert "; saved to workspace 'default'" in output
    assert "⚠ bfdep 1.0 (now removed) is imported in this kernel; restart" in output
    assert store.get("default").lines == ["bfdemo==2.0"]


async def test_status_reports_every_place_in_sync(kernel: Any) -> None:
    await run_cell(kernel, "%bifrost install bfdemo==1.0")
    output = await run_cell(kernel, "%bifrost status")
    assert "database      ok     version 1" in output
    assert "cache         ok" in output
    assert output.count("(in sync)") == 2
    assert output.splitlines()[-1] == "all in sync ✓"


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("%bifrost install 'bfdemo --pre'", "✗ invalid requirement 'bfdemo --pre'"),
        (
            "%bifrost install bfdemo @ https://x.example/b.whl",
            "✗ invalid requirement 'bfdemo @ https://x.example/b.whl': direct URLs are not allowed",
        ),
        (
            "%bifrost install not-in-wheelhouse",
            "✗ 'not-in-wheelhouse' not found in the package index; nothing was saved",
        ),
        ("%bifrost remove bfdemo", "✗ not in the workspace requirements: bfdemo"),
        ("%bifrost install", "✗ name at least one package"),
        ("%bifrost frobnicate", "✗ unknown command 'frobnicate'"),
    ],
)
async def test_errors_read_like_a_person_wrote_them(
    kernel: Any, store: RequirementsStore, cell: str, expected: str
) -> None:
    output = await run_cell(kernel, cell)
    assert expected in output
    assert output.count("✗") == 1, output
    assert "Traceback" not in output
    assert store.get("default").version == 0


async def test_an_unreachable_server_is_said_plainly(kernel: Any) -> None:
    cell = "import os; os.environ['BIFROST_SERVER_URL'] = 'http://127.0.0.1:1/'\n%bifrost list"
    output = await run_cell(kernel, cell)
    assert output.startswith("✗ cannot reach the Jupyter server at http://127.0.0.1:1/"), output


async def test_pip_install_in_a_cell_gets_a_one_line_hint(kernel: Any) -> None:
    output = await run_cell(kernel, "if False:\n    %pip install --quiet bfdemo==1.0\n")
    assert output.startswith("bifrost: %pip installs into "), output
    assert output.endswith("`%bifrost install bfdemo==1.0` saves them for the workspace\n")
    assert output.count("\n") == 1
    assert await run_cell(kernel, "x = 1") == ""


class TestScopedCredential:
    async def kernel_secret(self, kernel: Any) -> str:
        code = "import os; print(os.environ['BIFROST_KERNEL_TOKEN'])"
        return (await run_cell(kernel, code)).strip()

    async def test_it_opens_the_packages_api_and_nothing_else(
        self, kernel: Any, jp_fetch: Any, jp_serverapp: Any
    ) -> None:
        secret = await self.kernel_secret(kernel)
        env = await run_cell(kernel, "import os; print(sorted(os.environ.values()))")
        assert jp_serverapp.identity_provider.token not in env

        ok = await jp_fetch(
            "api", "packages", headers={"Authorization": f"bifrost-kernel {secret}"}
        )
        assert ok.code == 200
        for header in (f"bifrost-kernel {secret}", f"token {secret}", f"bearer {secret}"):
            for path in (("api", "contents"), ("api", "kernels"), ("api", "terminals")):
                with pytest.raises(HTTPClientError) as info:
                    await jp_fetch(*path, headers={"Authorization": header})
                assert info.value.code == 403, (path, header)

    async def test_it_is_forgotten_when_the_kernel_shuts_down(
        self, kernel: Any, jp_fetch: Any, jp_serverapp: Any
    ) -> None:
        secret = await self.kernel_secret(kernel)
        await jp_serverapp.kernel_manager.shutdown_kernel(kernel.kernel_id)
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("api", "packages", headers={"Authorization": f"bifrost-kernel {secret}"})
        assert info.value.code == 403

    async def test_a_user_cannot_use_the_kernel_restart_route(self, jp_fetch: Any) -> None:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("api", "packages", "kernel", "restart", method="POST", body="{}")
        assert info.value.code == 403


async def _stream(
    http_server_client: Any, url: str, headers: dict[str, str], body: bytes
) -> tuple[int, str, list[str]]:
    response = await http_server_client.fetch(
        url, method="POST", body=body, headers=headers, raise_error=False, request_timeout=120
    )
    text = response.body.decode()
    return response.code, response.headers.get("Content-Type", ""), text.split("\n\n")[:-1]


@pytest.mark.parametrize(
    ("route", "body", "status", "message"),
    [
        ("install", b'{"packages": ["bfdemo==1.0"]}', 200, None),  # already installed: no output
        ("install", b"not json", 400, "the request body is not valid JSON"),
        ("install", b'{"packages": ["bfdemo --pre"]}', 400, "invalid requirement"),
        ("uninstall", b'{"packages": ["nothere"]}', 404, "not in the workspace requirements"),
        ("rollback", b'{"revision": 999}', 404, "no revision 999"),
    ],
)
async def test_a_client_that_asks_for_a_stream_always_gets_one(
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    route: str,
    body: bytes,
    status: int,
    message: str | None,
) -> None:
    """Also with nothing to install and for early errors: a streaming client never has to
    branch on Content-Type; the real status is in the ``result`` event."""
    url = f"{jp_base_url}api/packages/install"
    await http_server_client.fetch(
        url, method="POST", body=b'{"packages": ["bfdemo==1.0"]}', headers=jp_auth_header
    )
    headers = {**jp_auth_header, "Accept": "text/event-stream"}
    code, kind, events = await _stream(
        http_server_client, f"{jp_base_url}api/packages/{route}", headers, body
    )
    assert (code, kind) == (200, "text/event-stream")
    assert len(events) == 1, events
    assert events[0].startswith("event: result\n")
    result = json.loads(events[0].split("data: ", 1)[1])
    assert result["status"] == status
    if message:
        assert message in result["body"]["message"]
    else:
        assert result["body"]["changed"] is False
