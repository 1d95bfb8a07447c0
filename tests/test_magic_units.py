"""The magic's pieces that need no kernel: hints, spec joining, error wording, loading."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bifrost_ext.kernel.client import ApiError
from bifrost_ext.kernel.magic import _explain, join_specs, pip_hint


def test_pip_hint_recognises_the_usual_spellings() -> None:
    assert pip_hint("%pip install pandas") is not None
    assert pip_hint("!pip3 install -U pandas requests") == (
        "bifrost: pip installs last until the kernel restarts;"
        " `%bifrost install pandas requests` keeps them"
    )
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
    ("output", "expected"),
    [
        (
            "ERROR: No matching distribution found for nothere\n",
            "✗ 'nothere' not found in the package index; nothing was saved",
        ),
        (
            "  cause: Because nothere was not found in the package registry and ...",
            "✗ 'nothere' not found in the package index; nothing was saved",
        ),
        (
            "  cause: Because bfapp==1.0 depends on bfdep>=9 and ...",
            "✗ the installer failed (exit code 1); nothing was saved",
        ),
    ],
)
def test_installer_failures_are_explained_for_uv_and_pip(output: str, expected: str) -> None:
    body = {"message": "the installer failed (exit code 1); nothing was saved", "output": output}
    assert _explain(ApiError(422, body)) == expected


def test_load_ext_registers_the_magic_anywhere(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.delenv("BIFROST_SERVER_URL", raising=False)
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "bifrost_ext")
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
print(sorted(m for m in set(sys.modules) - before if m.startswith("bifrost_ext")))
shell.run_cell("y = 'no pip here'")
shell.run_line_magic("bifrost", "")
print("bifrost_ext.kernel.magic" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert out.splitlines()[0] == "['bifrost_ext', 'bifrost_ext.kernel', 'bifrost_ext.kernel.env']"
    assert "%bifrost install [--restart] SPEC..." in out
    assert out.splitlines()[-1] == "True"
