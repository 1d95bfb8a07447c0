"""``GET api/packages/distribution``: the server's answer to "what installs this module", the
only name the panel's missing-import button installs (issue 22: never a name an output
carries)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from bifrost_kernel.distributions import MODULE_TO_DISTRIBUTION
from tests.api import call, saved_rows

pytestmark = pytest.mark.usefixtures("jp_serverapp")


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite is enough: the answer reads no store."""
    return sqlite_url


@pytest.mark.parametrize(
    ("module", "distribution"),
    [("sklearn", "scikit-learn"), ("yaml", "PyYAML"), ("bfdemo", "bfdemo")],
)
async def test_the_kernels_table_names_the_distribution(
    jp_fetch: Any, module: str, distribution: str
) -> None:
    assert MODULE_TO_DISTRIBUTION.get(module, module) == distribution
    response = await jp_fetch("api", "packages", "distribution", params={"module": module})
    assert response.code == 200
    assert json.loads(response.body) == {
        "module": module,
        "distribution": distribution,
        "workspace": "default",
    }


@pytest.mark.parametrize(
    "module",
    [
        "",
        "sklearn.svm",
        "<img src=x onerror=alert(1)>",
        "--index-url=http://evil/",
        "bfapp @ https://evil/bfapp.whl",
        "_private",  # an identifier no distribution can be named
        "class",
        "modulé",
        "x" * 101,
    ],
)
async def test_anything_but_a_module_name_is_a_400_and_changes_nothing(
    jp_fetch: Any, database_url: str, module: str
) -> None:
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch("api", "packages", "distribution", params={"module": module})
    assert raised.value.code == 400
    assert saved_rows(database_url) == []
    status, body = await call(jp_fetch)
    assert (status, body["requirements"]) == (200, [])
