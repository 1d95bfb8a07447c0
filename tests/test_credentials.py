"""Kernels' scoped secrets: issued, recognised, replaced, forgotten; on their own, then through
a real server (pytest-jupyter's) and real kernels: a kernel restarts only itself, and its
secret dies with it. What they open and refuse otherwise is in ``test_magic``
(``TestScopedCredential``); the Host check they never lift is in ``test_auth``.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from jupyter_server.auth.identity import IdentityProvider, User
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from bifrost_ext.server.credentials import (
    KernelCredentials,
    KernelGrant,
    KernelIdentityProvider,
)
from bifrost_kernel.env import ENV_KERNEL_TOKEN
from tests.api import status_of
from tests.kernels import run_cell, served_kernel
from tests.servers import wait_until_async

ALICE = User(username="alice")


def test_a_secret_stands_for_its_kernel_and_the_user_who_started_it() -> None:
    credentials = KernelCredentials()
    secret = credentials.issue("k1", ALICE)
    assert len(secret) >= 40
    assert credentials.grant_for(f"bifrost-kernel {secret}") == KernelGrant("k1", ALICE)


@pytest.mark.parametrize(
    "header",
    ["BIFROST-KERNEL {secret}", "  Bifrost-Kernel \t{secret}  ", "bifrost-kernel {secret}"],
)
def test_the_scheme_is_case_insensitive_and_space_tolerant(header: str) -> None:
    credentials = KernelCredentials()
    secret = credentials.issue("k1", ALICE)
    assert credentials.grant_for(header.format(secret=secret)) == KernelGrant("k1", ALICE)


@pytest.mark.parametrize(
    "header",
    [
        "token {secret}",
        "Bearer {secret}",
        "{secret}",
        "bifrost-kernel",
        "bifrost-kernel ",
        "",
        "bifrost-kernel {secret} {secret}",
        "bifrost-kernel {secret}x",
        "bifrost-kernel {prefix}",
        "bifrost-kernel{secret}",
    ],
)
def test_anything_else_is_no_grant(header: str) -> None:
    credentials = KernelCredentials()
    secret = credentials.issue("k1", ALICE)
    assert credentials.grant_for(header.format(secret=secret, prefix=secret[:-1])) is None


def test_each_kernel_gets_its_own_secret() -> None:
    credentials = KernelCredentials()
    one, two = credentials.issue("k1", ALICE), credentials.issue("k2", None)
    assert one != two
    assert credentials.grant_for(f"bifrost-kernel {one}") == KernelGrant("k1", ALICE)
    assert credentials.grant_for(f"bifrost-kernel {two}") == KernelGrant("k2", None)


def test_a_new_secret_replaces_the_kernels_old_one_only() -> None:
    credentials = KernelCredentials()
    old = credentials.issue("k1", ALICE)
    other = credentials.issue("k2", ALICE)
    new = credentials.issue("k1", ALICE)
    assert credentials.grant_for(f"bifrost-kernel {old}") is None
    assert credentials.grant_for(f"bifrost-kernel {new}") == KernelGrant("k1", ALICE)
    assert credentials.grant_for(f"bifrost-kernel {other}") == KernelGrant("k2", ALICE)


def test_a_revoked_secret_is_forgotten_and_the_others_kept() -> None:
    credentials = KernelCredentials()
    one, two = credentials.issue("k1", ALICE), credentials.issue("k2", ALICE)
    credentials.revoke("k1")
    credentials.revoke("k1")  # twice, or a kernel never issued one: nothing to do
    credentials.revoke("never-issued")
    assert credentials.grant_for(f"bifrost-kernel {one}") is None
    assert credentials.grant_for(f"bifrost-kernel {two}") == KernelGrant("k2", ALICE)


def test_secrets_are_kept_only_as_digests() -> None:
    credentials = KernelCredentials()
    secret = credentials.issue("k1", ALICE)
    assert secret not in repr(vars(credentials))


def handler_with(authorization: str | None) -> Any:
    """A handler as far as an identity provider looks at one, before it authenticated anyone."""
    headers = HTTPHeaders({"Host": "localhost"})
    if authorization is not None:
        headers["Authorization"] = authorization
    start = RequestStartLine("GET", "/api/packages", "HTTP/1.1")
    request = HTTPServerRequest(start_line=start, headers=headers)
    return SimpleNamespace(request=request, current_user=None)


class TestIdentityProvider:
    @pytest.fixture
    def credentials(self) -> KernelCredentials:
        return KernelCredentials()

    @pytest.fixture
    def provider(self, credentials: KernelCredentials) -> KernelIdentityProvider:
        return KernelIdentityProvider(IdentityProvider(token="server-token"), credentials)

    def test_a_kernels_secret_acts_as_its_launching_user(
        self, provider: KernelIdentityProvider, credentials: KernelCredentials
    ) -> None:
        handler = handler_with(f"bifrost-kernel {credentials.issue('k1', ALICE)}")
        assert provider.grant_of(handler) == KernelGrant("k1", ALICE)
        assert provider.get_user(handler) is ALICE
        # A secret in a header cannot come from another site's page: like a token.
        assert provider.is_token_authenticated(handler)
        assert not provider.should_check_origin(handler)

    def test_a_kernel_no_request_started_acts_as_itself(
        self, provider: KernelIdentityProvider, credentials: KernelCredentials
    ) -> None:
        handler = handler_with(f"bifrost-kernel {credentials.issue('k1', None)}")
        assert provider.get_user(handler).username == "kernel-k1"

    def test_everything_else_is_the_servers_provider(
        self, provider: KernelIdentityProvider, credentials: KernelCredentials
    ) -> None:
        credentials.issue("k1", ALICE)
        handler = handler_with("bifrost-kernel not-a-secret-of-ours")
        assert provider.grant_of(handler) is None
        assert not provider.is_token_authenticated(handler)
        assert provider.should_check_origin(handler)
        assert provider.token == "server-token"
        assert provider.auth_enabled


async def test_a_kernel_can_restart_itself_and_no_other_kernel(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    """Mutant: ``api/packages/kernel/restart`` takes the kernel id from the request."""
    a = await served_kernel(jp_fetch, jp_serverapp)
    b = await served_kernel(jp_fetch, jp_serverapp)
    for kernel in (a, b):
        assert await run_cell(kernel, "marker = 1") == ""
    pids = {a.kernel_id: a.provisioner.pid, b.kernel_id: b.provisioner.pid}
    secret_a = a.provisioner.kernel_env[ENV_KERNEL_TOKEN]

    response = await jp_fetch(
        "api",
        "packages",
        "kernel",
        "restart",
        method="POST",
        body=json.dumps({"kernel_id": b.kernel_id, "kernel": b.kernel_id}),
        params={"kernel_id": b.kernel_id},
        headers={"Authorization": f"bifrost-kernel {secret_a}"},
    )
    assert response.code == 202
    answer = json.loads(response.body)

    def restarted(kernel: Any) -> bool:
        return bool(kernel.provisioner.pid != pids[kernel.kernel_id])

    await wait_until_async(
        lambda: restarted(a) or restarted(b), timeout=60, what="a kernel to restart"
    )
    # Asked once each is ready again: a variable that survived means no restart.
    survived = {k.kernel_id: await run_cell(k, "print('marker' in dir())") for k in (a, b)}
    assert not restarted(b), "kernel A's credential restarted kernel B"
    assert survived == {a.kernel_id: "False\n", b.kernel_id: "True\n"}
    assert answer == {"kernel_id": a.kernel_id, "restarting": True}


async def test_a_kernels_credential_is_forgotten_when_it_shuts_down(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    """Mutant: the provisioner's ``cleanup`` never revokes the kernel's credential (only
    ``KernelCredentials.revoke`` itself was tested, not that a shutdown calls it)."""
    kernel = await served_kernel(jp_fetch, jp_serverapp)
    assert await run_cell(kernel, "pass") == ""
    secret = kernel.provisioner.kernel_env[ENV_KERNEL_TOKEN]
    auth = {"Authorization": f"bifrost-kernel {secret}"}
    assert await status_of(jp_fetch, "api", "packages", headers=auth) == 200
    restarted = await jp_fetch(
        "api", "kernels", kernel.kernel_id, "restart", method="POST", body="{}"
    )
    assert restarted.code == 200
    # A restart keeps it: the same kernel, the same secret.
    assert await status_of(jp_fetch, "api", "packages", headers=auth) == 200
    await jp_fetch("api", "kernels", kernel.kernel_id, method="DELETE")
    assert await status_of(jp_fetch, "api", "packages", headers=auth) in (401, 403)
    install = {"method": "POST", "body": json.dumps({"packages": ["bfdemo==1.0"]})}
    assert await status_of(jp_fetch, "api", "packages", "install", headers=auth, **install) in (
        401,
        403,
    )
