"""Authentication and authorization of the packages API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

from bifrost_ext.storage.store import RequirementsStore

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
