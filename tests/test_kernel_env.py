"""What a kernel inherits from its server: an allowlist, for kernels of any provisioner.

Attacks: a kernelspec naming ``local-provisioner`` inherited ``BIFROST_DATABASE_URL`` and
``BIFROST_REDIS_URL``; any other ``BIFROST_*`` (and any ``MY_SECRET`` the server had) reached
every kernel; renaming a notebook put the server's whole environment back into its kernel's
next restart (jupyter_server's ``update_env``). Each is checked from inside a real ipykernel.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bifrost_ext.server.kernel_env import KernelEnvPolicy, secret_values
from bifrost_ext.settings import DEFAULT_KERNEL_ENV_ALLOW
from tests.kernels import run_cell, run_kernel

INDEX_PASSWORD = "s3cr3t-index-pw"
#: What the server's environment holds besides bifrost's own settings: things a kernel may
#: have (allowed by the default list) and things it may not.
ALLOWED = {"LANG": "C.UTF-8", "TZ": "Europe/Oslo", "LC_PAPER": "nb_NO.UTF-8"}
FORBIDDEN = {
    "BIFROST_INDEX_URL": f"https://user:{INDEX_PASSWORD}@index.example/simple",
    "BIFROST_TEST_UI": "0",
    "BIFROST_SOMETHING_NEW": "whatever",
    "MY_SECRET": "hunter2",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
    "JUPYTER_TOKEN": "server-token-in-env",
}
PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


@pytest.fixture
def server_env(bifrost_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The server process's environment, set before the server starts (as an operator's)."""
    env = {**bifrost_env, **ALLOWED, **FORBIDDEN}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def jp_server_config(server_env: dict[str, str], bifrost_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"bifrost_ext": True}},
        "BifrostApp": bifrost_config,
    }


@pytest.fixture(autouse=True)
def plain_spec(jp_kernel_dir: Path) -> None:
    """A kernelspec that keeps jupyter_client's own provisioner, with an ``env`` of its own."""
    spec_dir = jp_kernel_dir / "plain"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "plain",
        "language": "python",
        "env": {"FROM_THE_SPEC": "kept", "SPEC_SECRET_OK": "the operator's choice"},
        "metadata": {"kernel_provisioner": {"provisioner_name": "local-provisioner"}},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


async def start_session(jp_fetch: Any, kernel: str, path: str = "a.ipynb") -> tuple[str, str]:
    body = {"path": path, "type": "notebook", "kernel": {"name": kernel}}
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    model = json.loads(response.body)
    return model["id"], model["kernel"]["id"]


async def kernel_environ(jp_serverapp: Any, kernel_id: str) -> dict[str, str]:
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    out = await run_cell(km, PRINT_ENV)
    environ: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    return environ


def assert_nothing_secret(environ: dict[str, str], server_env: dict[str, str]) -> None:
    leaked = sorted(set(FORBIDDEN) & set(environ))
    assert not leaked, leaked
    for name in ("BIFROST_DATABASE_URL", "BIFROST_REDIS_URL", "BIFROST_FIND_LINKS"):
        assert name not in environ, name
    # Only what bifrost itself tells a kernel is BIFROST_*: never inherited from the server.
    ours = {
        "BIFROST_KERNEL_TOKEN",
        "BIFROST_NOTICE",
        "BIFROST_PACKAGE_DIR",
        "BIFROST_RECYCLE",
        "BIFROST_SERVER_URL",
        "BIFROST_WORKSPACE",
        "BIFROST_KERNEL_STATE",
        "BIFROST_START_RECORD",
    }
    assert {k for k in environ if k.startswith("BIFROST_")} <= ours
    for value in environ.values():
        assert INDEX_PASSWORD not in value
        assert server_env["BIFROST_REDIS_URL"] not in value


@pytest.mark.parametrize("kernel", ["python3", "plain"])
async def test_no_kernel_of_any_provisioner_inherits_the_servers_secrets(
    jp_fetch: Any, jp_serverapp: Any, server_env: dict[str, str], kernel: str
) -> None:
    _session, kernel_id = await start_session(jp_fetch, kernel)
    environ = await kernel_environ(jp_serverapp, kernel_id)
    assert_nothing_secret(environ, server_env)
    # What a kernel may have, it has: the default list, and jupyter_server's session name.
    for name, value in ALLOWED.items():
        assert environ.get(name) == value, name
    assert environ["HOME"] == server_env.get("HOME", environ["HOME"])
    assert environ["PATH"].endswith(os.environ["PATH"])
    assert environ["JPY_SESSION_NAME"].endswith("a.ipynb")
    if kernel == "plain":  # the kernelspec's own env is the operator's, and stays
        assert environ["FROM_THE_SPEC"] == "kept"
        assert environ["SPEC_SECRET_OK"] == "the operator's choice"
    else:
        assert environ["BIFROST_WORKSPACE"] == "default"


@pytest.mark.parametrize("kernel", ["python3", "plain"])
async def test_a_renamed_notebooks_restarted_kernel_gets_no_secrets_either(
    jp_fetch: Any, jp_serverapp: Any, server_env: dict[str, str], kernel: str
) -> None:
    # Renaming a notebook makes jupyter_server put {**os.environ, JPY_SESSION_NAME} into the
    # kernel's launch arguments, which its next restart uses.
    session, kernel_id = await start_session(jp_fetch, kernel)
    body = json.dumps({"path": "renamed.ipynb"})
    await jp_fetch("api", "sessions", session, method="PATCH", body=body)
    await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="{}")
    environ = await kernel_environ(jp_serverapp, kernel_id)
    assert_nothing_secret(environ, server_env)
    assert environ["JPY_SESSION_NAME"].endswith("renamed.ipynb")
    assert environ["LANG"] == "C.UTF-8"


class TestAnOperatorsOwnAllowlist:
    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any]) -> dict[str, Any]:
        # Even a list that names BIFROST_* lets no store credential through.
        allow = [*DEFAULT_KERNEL_ENV_ALLOW, "MY_*", "BIFROST_*"]
        return {**bifrost_config, "kernel_env_allow": allow}

    @pytest.fixture
    def server_env(
        self, server_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> dict[str, str]:
        extra = {"MY_PLAIN": "fine", "MY_INDEX": FORBIDDEN["BIFROST_INDEX_URL"]}
        for name, value in extra.items():
            monkeypatch.setenv(name, value)
        return {**server_env, **extra}

    @pytest.mark.parametrize("kernel", ["python3", "plain"])
    async def test_names_it_allows_pass_but_secrets_never_do(
        self, jp_fetch: Any, jp_serverapp: Any, server_env: dict[str, str], kernel: str
    ) -> None:
        _session, kernel_id = await start_session(jp_fetch, kernel)
        environ = await kernel_environ(jp_serverapp, kernel_id)
        assert environ["MY_PLAIN"] == "fine"
        assert environ["BIFROST_SOMETHING_NEW"] == "whatever"  # allowed by the operator
        assert "MY_INDEX" not in environ  # an allowed name, but it carries the index password
        assert "MY_SECRET" in environ  # MY_* was asked for, and it holds no store secret
        for name in ("BIFROST_DATABASE_URL", "BIFROST_REDIS_URL", "BIFROST_INDEX_URL"):
            assert name not in environ, name
        for value in environ.values():
            assert INDEX_PASSWORD not in value


class TestASettingThatStopsBifrost:
    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any]) -> dict[str, Any]:
        return {**bifrost_config, "workspace": "José"}  # no workspace key: bifrost stops

    @pytest.mark.parametrize("kernel", ["python3", "plain"])
    async def test_its_kernels_still_inherit_the_allowlist_only(
        self, jp_fetch: Any, jp_serverapp: Any, server_env: dict[str, str], kernel: str
    ) -> None:
        _session, kernel_id = await start_session(jp_fetch, kernel)
        environ = await kernel_environ(jp_serverapp, kernel_id)
        assert_nothing_secret(environ, server_env)
        assert environ["LANG"] == "C.UTF-8"


def test_plain_jupyter_client_kernels_get_the_allowlist_only(
    bifrost_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**bifrost_env, **ALLOWED, **FORBIDDEN}
    lines = run_kernel(env, tmp_path, PRINT_ENV)
    assert lines[0] == "provisioner: BifrostProvisioner"
    environ = json.loads(lines[-1])
    assert_nothing_secret(environ, env)
    for name, value in ALLOWED.items():
        assert environ.get(name) == value, name
    assert "BIFROST_START_RECORD" in environ  # what bifrost tells a kernel outside a server


class TestThePolicy:
    def test_names_are_matched_whole_and_case_sensitively(self) -> None:
        policy = KernelEnvPolicy(allow=("PATH", "LC_*"), secrets=())
        environ = {"PATH": "/bin", "PATHX": "x", "path": "y", "LC_ALL": "C", "XLC_ALL": "z"}
        assert policy.inherited(environ) == {"PATH": "/bin", "LC_ALL": "C"}

    def test_the_kernelspecs_env_stays(self) -> None:
        policy = KernelEnvPolicy(allow=(), secrets=("pw",))
        environ = {"FROM_SPEC": "has pw in it", "OTHER": "x"}
        assert policy.inherited(environ, keep=["FROM_SPEC"]) == {"FROM_SPEC": "has pw in it"}

    def test_secret_values_are_the_passwords_of_the_urls(self) -> None:
        found = secret_values(
            [
                "postgresql://alice:pg%40pw@db/x",
                "redis://:redispw@cache:6379/0",
                "https://tokenonly@index.example/simple",
                "sqlite:////home/alice/bifrost.db",
                "postgresql://postgres@127.0.0.1/db",
                None,
                ["/wheels", "https://u:linkpw@links.example/"],
            ]
        )
        assert set(found) == {"pg%40pw", "pg@pw", "redispw", "tokenonly", "linkpw"}
