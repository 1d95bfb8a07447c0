"""The operator's policy: what the operator protects stays at the kernel's versions (the
kernel's own runtime: tests/test_protected.py), and denied names are refused before anything
runs."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from bifrost_ext.storage.store import RequirementsStore
from tests.servers import ServerProcess
from tests.wheels import build_wheel


@pytest.fixture(scope="module")
def breaker_house(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheelhouse of the module's own, for the wheels its tests add (a runtime package's
    breaking release: tests/test_protected.py proves the kernel's own runtime held)."""
    return tmp_path_factory.mktemp("breaker")


def start(
    tmp_path: Path, name: str, sqlite_url: str, wheels: list[Path], **env: str
) -> ServerProcess:
    variables = {
        "BIFROST_DATABASE_URL": sqlite_url,
        "BIFROST_REDIS_URL": "",
        "BIFROST_SITE_DIR": str(tmp_path / f"site-{name}"),
        "BIFROST_FIND_LINKS": " ".join(str(w) for w in wheels),
        "BIFROST_NO_INDEX": "1",
        **env,
    }
    return ServerProcess(tmp_path / name, variables).start()


def test_the_operator_protects_more_than_the_kernel_runtime(
    tmp_path: Path, sqlite_url: str, wheelhouse: Path, breaker_house: Path
) -> None:
    # protected_packages adds to the kernel's runtime, which stays protected: it cannot be
    # turned off. filelock is installed where the kernel runs, but ipykernel does not need it.
    build_wheel(breaker_house, "filelock", "0.1")
    server = start(
        tmp_path,
        "more",
        sqlite_url,
        [wheelhouse, breaker_house],
        BIFROST_PROTECTED_PACKAGES="filelock",
    )
    try:
        status, body = server.request(
            "POST", "/api/packages/install", {"packages": ["filelock==0.1"]}
        )
        assert status == 422, body
        version = importlib.metadata.version("filelock")
        assert f"filelock is held at {version}" in body["message"]
        assert "protected by the operator" in body["message"]
        store = RequirementsStore(url=sqlite_url)
        assert store.get("default").version == 0
        store.close()
    finally:
        server.stop()


class TestDeniedPackages:
    @pytest.fixture
    def bifrost_config(self, bifrost_config: dict[str, Any]) -> dict[str, Any]:
        return {**bifrost_config, "denied_packages": ["BFDemo"]}

    @pytest.mark.usefixtures("jp_serverapp")
    async def test_a_denied_name_is_400_and_changes_nothing(
        self, jp_fetch: Any, store: RequirementsStore
    ) -> None:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(
                "api",
                "packages",
                "install",
                method="POST",
                body=json.dumps({"packages": ["bfdep", "BFDemo==1.0"]}),
            )
        assert info.value.code == 400
        assert info.value.response is not None
        body = json.loads(info.value.response.body)
        assert body["spec"] == "bfdemo==1.0"
        assert body["reason"] == "this package is not allowed here (policy)"
        assert store.get("default").version == 0
