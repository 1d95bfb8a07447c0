"""Spec validation, merging and rendering."""

from __future__ import annotations

import pytest

from bifrost_ext.requirements import (
    MAX_SPEC_LENGTH,
    MAX_SPECS,
    InvalidSpec,
    content_hash,
    merge,
    parse_content,
    parse_name,
    parse_spec,
    parse_specs,
    remove,
    render,
)


@pytest.mark.parametrize(
    ("spec", "normalised"),
    [
        ("bfdemo", "bfdemo"),
        ("BFDemo==1.0", "bfdemo==1.0"),
        ("  pandas >= 2.2 , <3 ", "pandas<3,>=2.2"),
        ("requests[socks,security]>=2.31", "requests[security,socks]>=2.31"),
        ('tomli; python_version < "3.11"', 'tomli; python_version < "3.11"'),
        ("Zope.Interface~=6.0", "zope-interface~=6.0"),
    ],
)
def test_valid_specs_are_normalised(spec: str, normalised: str) -> None:
    assert str(parse_spec(spec)) == normalised


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-e .", "installer options"),
        ("--index-url=https://evil.example/simple", "installer options"),
        ("-r /etc/passwd", "installer options"),
        ("pandas --index-url https://evil.example", "not a valid requirement"),
        ("pandas; --pre", "not a valid requirement"),
        ("pandas\n--extra-index-url https://evil.example", "control characters"),
        ("pan\rdas", "control characters"),
        ("bfdemo\x00", "control characters"),
        ("pkg @ https://evil.example/pkg.whl", "direct URLs are not allowed"),
        ("pkg @ file:///tmp/pkg.whl", "direct URLs are not allowed"),
        ("git+https://github.com/x/y", "direct URLs are not allowed"),
        ("./local/path", "not a valid requirement"),
        ("/abs/path", "not a valid requirement"),
        ("bfdemo-1.0-py3-none-any.whl", "archives"),
        ("pkg.tar.gz", "archives"),
        ("foo===${SECRET}", "'$'"),
        ("foo===1.0", "'==='"),
        ('foo; os_name == "${HOME}"', "'$'"),
        ("x" * (MAX_SPEC_LENGTH + 1), "longer than"),
        ("pandas==2.2 # comment", "not a valid requirement"),
    ],
)
def test_invalid_specs_are_refused_with_a_reason(spec: str, reason: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(spec)
    assert reason in info.value.reason


def test_non_string_spec_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="must be a string"):
        parse_spec(["bfdemo"])


def test_parse_specs_refuses_duplicates_empty_and_too_many() -> None:
    with pytest.raises(InvalidSpec, match="more than once"):
        parse_specs(["bfdemo==1", "BFDemo>=2"])
    with pytest.raises(InvalidSpec, match="non-empty list"):
        parse_specs([])
    with pytest.raises(InvalidSpec, match="non-empty list"):
        parse_specs("bfdemo")
    with pytest.raises(InvalidSpec, match=f"at most {MAX_SPECS}"):
        parse_specs([f"p{i}" for i in range(MAX_SPECS + 1)])


def test_merge_replaces_by_canonical_name_and_renders_sorted() -> None:
    current = parse_content("attrs>=23\nbfdemo==1.0\n")
    merged = merge(current, parse_specs(["BFDemo>=2", "Zeta", "aaa"]))
    assert render(merged) == "aaa\nattrs>=23\nbfdemo>=2\nzeta\n"


def test_render_is_stable_whatever_the_input_order() -> None:
    one = render(parse_specs(["b", "a==1", "c[x,y]"]))
    two = render(parse_specs(["c[y,x]", "b", "a==1"]))
    assert one == two
    assert content_hash(one) == content_hash(two)
    assert parse_content(one) == parse_specs(["a==1", "b", "c[x,y]"])


def test_remove_and_names() -> None:
    current = parse_content("attrs\nbfdemo==1.0\n")
    assert render(remove(current, [parse_name("BFDemo")])) == "attrs\n"
    with pytest.raises(InvalidSpec, match="not a valid project name"):
        parse_name("-rf")
    assert render({}) == ""


@pytest.mark.parametrize(
    "spec", ["foo_", "foo_[x]>=1", "foo==1.0+x.zip", "foo>=1,==1.0+local.tar.gz", "foo.whl"]
)
def test_specs_an_installer_would_misread_are_refused(spec: str) -> None:
    with pytest.raises(InvalidSpec):
        parse_spec(spec)


def test_extras_are_normalised_like_names() -> None:
    assert str(parse_spec("Foo[A_b, C.D]>=1")) == str(parse_spec("foo[c-d,a-b]>=1"))


def test_also_changed_is_every_version_change_the_change_did_not_name() -> None:
    """Decided once, on the server: the magic, the CLI and the panel each only word it."""
    from bifrost_ext.records import moved_unasked, version_changes

    changes = version_changes(
        {"numpy": "2.4.6", "pandas": "3.1.1", "tzdata": "2025.1"},
        {"numpy": "1.26.4", "pandas": "3.0.6", "six": "1.17.0"},
    )
    assert moved_unasked(changes, ["NumPy"]) == [
        {"name": "pandas", "old": "3.1.1", "new": "3.0.6"},
        {"name": "six", "old": None, "new": "1.17.0"},
        {"name": "tzdata", "old": "2025.1", "new": None},
    ]
    assert moved_unasked(changes, []) == changes  # a rollback names nothing
