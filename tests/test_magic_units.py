"""The magic's pieces that need no kernel: hints, spec joining, error wording, loading."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bifrost_kernel.client import ApiError
from bifrost_kernel.magic import BifrostError, _explain, join_specs, pip_hint, pip_target


def test_pip_hint_recognises_the_usual_spellings() -> None:
    assert pip_hint("%pip install pandas") is not None
    assert pip_hint("%pip install -U pandas requests") == (
        f"bifrost: %pip installs into {pip_target()} (this kernel's own environment: it lasts"
        " until that is rebuilt, as in a new container), not into the workspace's saved"
        " packages; `%bifrost install pandas requests` saves them for the workspace"
    )
    assert pip_hint("!pip3 install x") is not None
    assert pip_hint("!python -m pip install x") is not None
    assert pip_hint("%pip list") is None
    assert pip_hint("print('pip install x')") is None


def test_specs_typed_with_spaces_are_rejoined() -> None:
    assert join_specs(["pandas", ">=", "2.2,<3", "requests[socks]>=2"]) == [
        "pandas >= 2.2,<3",
        "requests[socks]>=2",
    ]
    assert join_specs(["x", "@", "https://h/x.whl", "y"]) == ["x @ https://h/x.whl", "y"]
    assert join_specs(["a==1", "b"]) == ["a==1", "b"]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("not-found", "'nothere' not found in the package index; nothing was saved"),
        ("no-version", "no version in the package index matches bfdemo==9.9; nothing was saved"),
        ("installer", "the installer failed (exit code 2): boom; nothing was saved"),
    ],
)
def test_an_installer_failure_is_the_servers_one_line(kind: str, message: str) -> None:
    """The server words each kind of failure (bifrost_ext.engine.failures); the magic says that
    line, whatever the output it streamed into the cell already."""
    body = {"message": message, "kind": kind, "output": "Using CPython 3.11.7 interpreter at: x"}
    assert _explain(ApiError(422, body)) == f"✗ {message}"


def test_a_package_directory_the_server_cannot_write_is_not_called_the_database() -> None:
    message = "the server cannot write to its package directory /x: full; nothing was saved"
    body = {"message": message, "kind": "directory-unusable", "output": ""}
    assert _explain(ApiError(503, body)) == f"✗ {message}"
    assert _explain(ApiError(503, {"message": "database x unavailable"})) == (
        "✗ the server cannot reach its database: database x unavailable"
    )


def test_load_ext_registers_the_magic_anywhere(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.delenv("BIFROST_SERVER_URL", raising=False)
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "bifrost_ext")
        with pytest.raises(BifrostError, match=r"^%bifrost list failed$"):
            shell.run_line_magic("bifrost", "list")
    finally:
        InteractiveShell.clear_instance()
    assert capsys.readouterr().out.startswith(
        "✗ this kernel was not started by a Jupyter server with bifrost_ext"
    )


def test_loading_the_extension_imports_nothing_until_the_magic_is_used() -> None:
    # Every kernel bifrost starts loads the extension before its first execution.
    code = """
import sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
before = set(sys.modules)
shell.run_line_magic("load_ext", "bifrost_ext")
shell.run_cell("x = 1")
print(sorted(m for m in set(sys.modules) - before if m.startswith("bifrost")))
shell.run_cell("y = 'no pip here'")
shell.run_line_magic("bifrost", "")
print("bifrost_kernel.magic" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert out.splitlines()[0] == "['bifrost_ext', 'bifrost_kernel', 'bifrost_kernel.env']"
    assert "%bifrost install [--restart] SPEC..." in out
    assert out.splitlines()[-1] == "True"


@pytest.mark.parametrize(
    ("cell", "suggestion"),
    [
        ("%pip install --index-url http://x six 2>/dev/null", "six"),
        ("!pip install -i http://x --extra-index-url=http://y six==1.16 | tail -1", "six==1.16"),
        ("%pip install -r requirements.txt -c constraints.txt pandas", "pandas"),
        ("!pip install -e . ./local/pkg https://h/x.whl git+https://g/r.git six", "six"),
        (
            "%pip install 'pandas>=2' \"requests[socks]\" -q > log.txt",
            "'pandas>=2' 'requests[socks]'",
        ),
        ("!pip install --upgrade --no-deps six; echo done", "six"),
        ("!pip install numpy && pip install scipy", "numpy"),
        ("%pip install {packages}", None),
        ("%pip install -r requirements.txt", None),
        ("!pip install --index-url http://x", None),
    ],
)
def test_the_pip_hint_keeps_only_requirement_specs(cell: str, suggestion: str | None) -> None:
    hint = pip_hint(cell)
    assert hint is not None
    if suggestion is None:
        assert "`%bifrost install NAME...`" in hint
    else:
        assert f"`%bifrost install {suggestion}` " in hint


def test_the_table_of_module_names_knows_the_common_differences() -> None:
    from bifrost_kernel.distributions import MODULE_TO_DISTRIBUTION, distribution_for

    assert len(MODULE_TO_DISTRIBUTION) >= 30
    assert distribution_for("sklearn") == "scikit-learn"
    assert distribution_for("cv2") == "opencv-python"
    assert distribution_for("yaml") == "PyYAML"
    assert distribution_for("PIL") == "pillow"
    assert distribution_for("bs4") == "beautifulsoup4"
    assert distribution_for("pandas") == "pandas"  # the module name itself otherwise
    assert all("." not in module for module in MODULE_TO_DISTRIBUTION)  # top-level only


def test_a_stale_change_names_its_requirements_and_counts_their_dependencies() -> None:
    from bifrost_kernel.stale import StaleDistribution, describe_stale

    req = StaleDistribution("requests", "2.32.3", None, ["requests"])
    deps = [StaleDistribution(n, "1.0", None, [n]) for n in ("certifi", "idna", "urllib3")]
    assert describe_stale([req, *deps], {"requests"}) == (
        "requests 2.32.3 (now removed) and 3 dependencies are imported in this kernel"
    )
    # No requirement among them (a change of another moved a dependency): each is named.
    moved = StaleDistribution("bfbase", "2.0", "1.0", ["bfbase"])
    assert describe_stale([moved], {"bfdown"}) == "bfbase 2.0 (now 1.0) is imported in this kernel"
    assert describe_stale([req, moved], None) == (
        "requests 2.32.3 (now removed), bfbase 2.0 (now 1.0) are imported in this kernel"
    )


def test_an_option_the_magic_does_not_know_is_refused_not_sent_as_a_spec(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bifrost_kernel.magic import BifrostMagics

    monkeypatch.setenv("BIFROST_SERVER_URL", "http://127.0.0.1:1/")
    monkeypatch.setenv("BIFROST_KERNEL_TOKEN", "x")
    with pytest.raises(BifrostError, match=r"^the install failed; nothing was saved$"):
        BifrostMagics(None).bifrost("install --pre bfdemo")
    out = capsys.readouterr().out
    assert out.startswith("✗ unrecognized arguments: --pre bfdemo\n%bifrost install [--restart]")
    assert "cannot reach" not in out  # refused before any request
