"""Issue 22: bad input to ``jupyter bifrost`` ended in a Python traceback and exit 1 (which the
docs say means "the installer failed"). Each is one line and exit 2, and changes nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bifrost_ext.storage.store import RequirementsStore
from tests.api import package_dirs
from tests.cli import JUPYTER, cli_env

EXIT_USAGE = 2
SECRET = "s3cret-pw"


@pytest.fixture
def env(
    sqlite_url: str, redis_url: str, site_dir: Path, wheelhouse: Path, tmp_path: Path
) -> dict[str, str]:
    return cli_env(sqlite_url, redis_url, site_dir, wheelhouse, tmp_path)


def _refused(env: dict[str, str], *args: str) -> str:
    """Run the command; it must exit 2 with one line on stderr and nothing on stdout."""
    done = subprocess.run(
        [JUPYTER, "bifrost", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout) == (EXIT_USAGE, ""), done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert SECRET not in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--database-url", "not a url", "list"], "database_url"),
        (
            ["--database-url", "mysql://bob@db.example/jupyter", "list"],
            "sqlite:/// or postgresql://",
        ),
        (["--database-url", f"postgresql://bob:{SECRET}@[::1/db", "list"], "database_url"),
        (["--database-url", f"postgresql://bob:{SECRET}@db:99999999/db", "list"], "database_url"),
        (["--redis-url", "garbage", "list"], "redis_url"),
        (["--redis-url", f"redis://bob:{SECRET}@[::1", "list"], "redis_url"),
        (["history", "--limit", "99999999999999999999999"], "--limit"),
        (["history", "--limit", "0"], "--limit"),
    ],
)
def test_a_bad_setting_or_argument_is_one_line_and_exit_2(
    env: dict[str, str], sqlite_url: str, args: list[str], said: str
) -> None:
    assert said in _refused(env, *args)
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # not even created


def test_importing_a_file_that_is_not_utf8_changes_nothing(
    env: dict[str, str], sqlite_url: str, tmp_path: Path
) -> None:
    store = RequirementsStore(url=sqlite_url)
    try:
        store.save("default", "bfdemo==1.0\n", 0)
        latin1 = tmp_path / "requirements.txt"
        latin1.write_bytes("bfdemo\n# café\n".encode("latin-1"))
        assert "is not UTF-8 text" in _refused(env, "import", str(latin1))
        assert (store.get("default").content, store.get("default").version) == ("bfdemo==1.0\n", 1)
    finally:
        store.close()


@pytest.mark.parametrize("command", [["sync"], ["install", "bfdemo"]])
def test_a_site_dir_that_names_a_file_changes_nothing(
    env: dict[str, str], sqlite_url: str, tmp_path: Path, command: list[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("the operator's\n")
    for site in (a_file, a_file / "below"):
        said = _refused({**env, "BIFROST_SITE_DIR": str(site)}, *command)
        assert "site_dir" in said
        assert "not a folder" in said
    assert a_file.read_text() == "the operator's\n"
    assert package_dirs(tmp_path / "site") == {}
    store = RequirementsStore(url=sqlite_url)
    try:
        assert store.get("default").version == 0
    finally:
        store.close()
