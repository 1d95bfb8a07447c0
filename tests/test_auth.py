"""Authentication and authorization of the packages API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

from bifrost_ext.settings import CREDENTIALS_SETTING
from bifrost_ext.storage.store import RequirementsStore
from tests.api import status_of

INSTALL = {"packages": ["bfdemo==1.0"]}


def nothing_saved(store: RequirementsStore, site_dir: Path) -> bool:
    return store.get("default").version == 0 and not list(site_dir.glob("*/*/envs/*"))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", ("api", "packages"), None),
        ("POST", ("api", "packages", "install"), INSTALL),
        ("POST", ("api", "packages", "uninstall"), {"packages": ["bfdemo"]}),
    ],
)
async def test_unauthenticated_calls_are_403_and_change_nothing(
    jp_fetch: Any,
    store: RequirementsStore,
    site_dir: Path,
    method: str,
    path: tuple[str, ...],
    body: Any,
) -> None:
    kwargs = {} if body is None else {"body": json.dumps(body)}
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(*path, method=method, headers={"Authorization": ""}, **kwargs)
    assert info.value.code == 403
    assert nothing_saved(store, site_dir)


class ReadOnlyPackages(Authorizer):
    """An operator's policy: anyone may look at packages, nobody may change them."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not (resource == "packages" and action == "write")


class TestOperatorAuthorizer:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any]) -> dict[str, Any]:
        return {
            **jp_server_config,
            "ServerApp": {
                **jp_server_config["ServerApp"],
                "authorizer_class": ReadOnlyPackages,
            },
        }

    async def test_write_is_refused_and_read_is_allowed(
        self, jp_fetch: Any, store: RequirementsStore, site_dir: Path
    ) -> None:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("api", "packages", "install", method="POST", body=json.dumps(INSTALL))
        assert info.value.code == 403
        assert nothing_saved(store, site_dir)
        response = await jp_fetch("api", "packages")
        assert response.code == 200
        assert json.loads(response.body)["requirements"] == []


class TestHostHeader:
    """jupyter_server refuses a request whose Host is not this machine (DNS rebinding)."""

    FOREIGN = "attacker.example"

    @pytest.fixture
    def kernel_secret(self, jp_serverapp: Any) -> str:
        secret: str = jp_serverapp.web_app.settings[CREDENTIALS_SETTING].issue("k-host", None)
        return secret

    async def test_a_kernel_credential_does_not_lift_the_host_check(
        self, jp_fetch: Any, kernel_secret: str, store: RequirementsStore
    ) -> None:
        """Mutant: the packages API skips ``check_host`` for a kernel's credential (or at all)."""
        auth = {"Authorization": f"bifrost-kernel {kernel_secret}"}
        install = {"method": "POST", "body": json.dumps({"packages": ["bfdemo==1.0"]})}
        codes = {}
        for host in (self.FOREIGN, f"{self.FOREIGN}:8888"):
            headers = {**auth, "Host": host}
            read = await status_of(jp_fetch, "api", "packages", headers=headers)
            write = await status_of(
                jp_fetch, "api", "packages", "install", headers=headers, **install
            )
            codes[host] = (read, write)
        assert codes == {self.FOREIGN: (403, 403), f"{self.FOREIGN}:8888": (403, 403)}
        assert store.get("default").version == 0
        # The same credential from a local Host is good: only the Host was refused.
        local = {**auth, "Host": "localhost"}
        assert await status_of(jp_fetch, "api", "packages", headers=local) == 200

    async def test_the_servers_token_does_not_lift_it_either(self, jp_fetch: Any) -> None:
        assert await status_of(jp_fetch, "api", "packages", headers={"Host": self.FOREIGN}) == 403
