"""One set of traits: variables, flags, components and README all come from them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from bifrost_ext.cli.main import build_parser
from bifrost_ext.settings import SETTING_TRAITS, Settings, env_variable, readme_table

README = Path(__file__).resolve().parent.parent / "README.md"


def bifrost_app(serverapp: Any) -> Any:
    (app,) = serverapp.extension_manager.extension_apps["bifrost_ext"]
    return app


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        ([], {}, 600.0),
        ([], {"BIFROST_INSTALL_TIMEOUT": "30"}, 30.0),
        (["--BifrostApp.install_timeout=40"], {"BIFROST_INSTALL_TIMEOUT": "30"}, 40.0),
        (["--Installer.timeout=50"], {"BIFROST_INSTALL_TIMEOUT": "30"}, 50.0),
        (["--Installer.timeout=50", "--BifrostApp.install_timeout=40"], {}, 50.0),
    ],
)
def test_the_installer_timeout_reaches_the_installer_from_every_place(
    jp_configurable_serverapp: Any,
    jp_server_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    environ: dict[str, str],
    expected: float,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    app = jp_configurable_serverapp(config=jp_server_config, argv=argv)
    service = bifrost_app(app).service
    assert service.installer.timeout == expected


def test_components_read_their_own_sections(
    jp_configurable_serverapp: Any, jp_server_config: dict[str, Any], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'own.db'}"
    config = {**jp_server_config, "RequirementsStore": {"url": url}, "Installer": {"tool": "pip"}}
    service = bifrost_app(jp_configurable_serverapp(config=config)).service
    assert service.store.url == url
    assert service.installer.tool == "pip"
    assert service.cache.url == jp_server_config["BifrostApp"]["redis_url"]


def test_every_setting_is_a_trait_a_variable_and_a_field() -> None:
    from bifrost_ext.server.app import BifrostApp

    names = list(SETTING_TRAITS)
    assert names == [field.name for field in dataclasses.fields(Settings)]
    traits = BifrostApp.class_traits(config=True)
    for name, setting in SETTING_TRAITS.items():
        assert name in traits
        assert traits[name].help == setting.help
        assert setting.metadata["env"].startswith("BIFROST_")
    assert len({s.metadata["env"] for s in SETTING_TRAITS.values()}) == len(SETTING_TRAITS)


def test_the_kernel_side_reads_the_variables_the_settings_are_read_from() -> None:
    """bifrost_kernel names two of the variables itself (it imports nothing of
    bifrost_ext): they must be the ones the settings derive, ``BIFROST_<NAME>``."""
    from bifrost_kernel.env import ENV_RECYCLE, ENV_WORKSPACE

    assert env_variable("workspace") == ENV_WORKSPACE
    assert env_variable("recycle") == ENV_RECYCLE


def test_the_cli_flags_are_the_flagged_settings() -> None:
    flags = {
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert flags == {
        "--" + name.replace("_", "-")
        for name, s in SETTING_TRAITS.items()
        if s.metadata.get("flag")
    }


def test_readme_shows_the_table() -> None:
    text = README.read_text()
    start = text.index("| setting | environment |")
    assert text[start : start + len(readme_table())] == readme_table(), (
        "README's configuration table is out of date: paste `python -m bifrost_ext.settings`"
    )


def test_variables_are_read_and_bad_values_named() -> None:
    settings = Settings.from_env(
        {
            "BIFROST_FIND_LINKS": "/a /b",
            "BIFROST_NO_INDEX": "yes",
            "BIFROST_PROTECTED_PACKAGES": "IPyKernel, Jupyter_Client",
            "BIFROST_REDIS_URL": "",
            "JUPYTERHUB_USER": "alice",
        }
    )
    assert settings.find_links == ("/a", "/b")
    assert settings.no_index is True
    assert settings.protected_packages == ("ipykernel", "jupyter-client")
    assert settings.redis_url is None
    assert settings.workspace == "alice"
    assert Settings.from_env({"BIFROST_PROTECTED_PACKAGES": ""}).protected_packages == ()
    with pytest.raises(ValueError, match=re.escape("$BIFROST_INSTALL_TIMEOUT must be a number")):
        Settings.from_env({"BIFROST_INSTALL_TIMEOUT": "soon"})
    with pytest.raises(ValueError, match="recycle must be one of"):
        Settings.from_values({"recycle": "sometimes"}, environ={})


@pytest.mark.parametrize("name", ["alice\n", "", "-x", "a/b", "x" * 129])
def test_a_workspace_name_must_be_whole_and_safe(name: str) -> None:
    with pytest.raises(ValueError, match="invalid workspace name"):
        Settings.from_values({"workspace": name}, environ={})


def test_a_component_alone_reads_the_variables_of_the_settings_it_refines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bifrost_ext.engine.installer import Installer
    from bifrost_ext.storage.cache import RequirementsCache
    from bifrost_ext.storage.store import RequirementsStore

    monkeypatch.setenv("BIFROST_INSTALL_TIMEOUT", "30")
    monkeypatch.setenv("BIFROST_REDIS_URL", "redis://cache.example")
    monkeypatch.setenv("BIFROST_DATABASE_LOCK_TIMEOUT", "3")
    assert Installer().timeout == 30.0
    assert Installer(timeout=5).timeout == 5.0
    assert RequirementsCache().url == "redis://cache.example"
    assert RequirementsStore().lock_timeout == 3.0
    for component in (Installer, RequirementsStore, RequirementsCache):
        owned = component.class_traits(setting=lambda tag: tag is not None)
        assert owned, component
        for trait in owned.values():
            assert trait.help == SETTING_TRAITS[trait.metadata["setting"]].help
