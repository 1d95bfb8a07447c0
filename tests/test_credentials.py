"""Kernels' scoped secrets on their own: issued, recognised, replaced, forgotten.

What they open and refuse through a real server is in ``test_magic`` (``TestScopedCredential``)
and ``test_mutants``.
"""

from __future__ import annotations

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
