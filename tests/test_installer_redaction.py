"""Issue 22: with pip, a failed install's output echoed the index URL's user name (pip hides
the password only). The whole userinfo of every URL in installer output is hidden."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bifrost_ext.installer import redact_urls
from tests.api import answer, post_raw
from tests.servers import free_port

USER, PASSWORD = "alice-index-user", "alice-index-password"


@pytest.fixture
def bifrost_config(bifrost_config: dict[str, Any]) -> dict[str, Any]:
    """pip, and an index behind a user name and password that answers nothing (a closed
    port: pip fails at once, without retrying)."""
    index = f"http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/simple"
    return {**bifrost_config, "installer": "pip", "index_url": index, "no_index": False}


@pytest.fixture(autouse=True)
def pip_gives_up_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_RETRIES", "0")


@pytest.mark.usefixtures("jp_serverapp")
@pytest.mark.parametrize("stream", [False, True])
async def test_a_failed_pip_install_names_no_index_user(jp_fetch: Any, stream: bool) -> None:
    status, raw = await post_raw(
        jp_fetch, "install", json.dumps({"packages": ["bfnowhere"]}), stream=stream
    )
    status, body = answer(status, raw)
    assert status == 422
    assert "Looking in indexes: http://***@127.0.0.1:" in body["output"]  # pip said it
    assert USER not in raw.decode()
    assert PASSWORD not in raw.decode()


def test_every_urls_userinfo_is_hidden() -> None:
    line = "from https://u:p@a.example/simple and git+ssh://git@b.example/x, at user@c.example"
    assert redact_urls(line) == (
        "from https://***@a.example/simple and git+ssh://***@b.example/x, at user@c.example"
    )
    assert redact_urls("ERROR: No matching distribution found for bfnowhere") == (
        "ERROR: No matching distribution found for bfnowhere"
    )
