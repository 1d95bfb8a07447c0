"""Property-based and fuzz tests for spec validation, merging and rendering.

Hypothesis generates plain PEP 508 requirements (names spelled with any case and any run of
``.``, ``_``, ``-``; extras; version specifiers; environment markers) and checks that the
validator accepts every one of them under its canonical name, that parse → merge → render
→ parse round-trips, and that mutated specs carrying installer options, URLs, paths,
``${VAR}`` or control characters are either refused or come out as a plain requirement.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bifrost_ext.requirements import (
    MAX_SPEC_LENGTH,
    MAX_SPECS,
    InvalidSpec,
    Requirements,
    content_hash,
    merge,
    parse_content,
    parse_name,
    parse_spec,
    parse_specs,
    remove,
    render,
    saved_error,
)

# Modest example counts and no per-example deadline: the file runs in a few seconds on two
# cores, and a slow CI machine cannot make it flaky. No example database is kept (Hypothesis
# still creates its self-ignoring .hypothesis/ folder for other caches).
SETTINGS = settings(max_examples=200, deadline=None, database=None)
LIST_SETTINGS = settings(max_examples=75, deadline=None, database=None)
FUZZ_SETTINGS = settings(max_examples=300, deadline=None, database=None)

# Names ending like an archive are refused on purpose (see requirements.py), so the strategy
# of valid specs does not produce them.
ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz")

# -- strategies -----------------------------------------------------------------------------

LOWER_ALNUM = string.ascii_lowercase + string.digits
ALNUM = string.ascii_letters + string.digits

# Strategies are built once here, not inside the composites: building them on every draw
# costs more than the tests themselves.
SPACE = st.sampled_from(["", " ", "  "])
SEPARATOR_RUNS = st.text("._-", min_size=1, max_size=2)
CASE_MASKS = st.integers(0, 2**24 - 1)
RELEASES = st.lists(st.integers(0, 30), min_size=1, max_size=3).map(lambda r: ".".join(map(str, r)))
SUFFIXES = st.sampled_from(["", "", "rc1", "a2", "b3", ".post1", ".dev2", ".post1.dev3"])
OPERATORS = st.sampled_from(["==", ">=", "<", "!=", "~=", "<=", ">"])
QUOTES = st.sampled_from(["'", '"'])
MARKER_ATOMS = st.sampled_from(
    [
        *[
            ("python_version", op, v)
            for op in ("==", "!=", ">=", "<", "<=", ">")
            for v in ("3.8", "3.10", "3.12", "4")
        ],
        *[("sys_platform", op, v) for op in ("==", "!=") for v in ("linux", "win32", "darwin")],
        *[("os_name", op, v) for op in ("==", "!=") for v in ("posix", "nt")],
        *[("platform_machine", op, v) for op in ("==", "!=") for v in ("x86_64", "aarch64")],
        *[("implementation_name", op, v) for op in ("==", "!=") for v in ("cpython", "pypy")],
    ]
)
BOOLEAN_OPERATORS = st.sampled_from([" and ", " or "])
LIST_SEPARATORS = st.sampled_from([",", ", ", " , "])
EXTRAS = st.lists(st.text(LOWER_ALNUM, min_size=1, max_size=6), max_size=3, unique=True)

name_parts = st.lists(st.text(LOWER_ALNUM, min_size=1, max_size=8), min_size=1, max_size=3)


@st.composite
def spellings(draw: st.DrawFn, parts: list[str]) -> str:
    """One way to write the project whose canonical name is ``"-".join(parts)``."""
    mask = draw(CASE_MASKS)
    name = ""
    for index, part in enumerate(parts):
        if index:
            name += draw(SEPARATOR_RUNS)
        name += part
    name = "".join(c.upper() if mask >> (i % 24) & 1 else c for i, c in enumerate(name))
    # "x.zip" is refused as an archive name on purpose; "x-zip" is the same project.
    return "-".join(parts) if name.lower().endswith(ARCHIVE_SUFFIXES) else name


@st.composite
def clauses(draw: st.DrawFn) -> str:
    """One version specifier: ``==1.2``, ``~=1.0rc1``, ``!=2.*``, ``>= 2.0.post1``..."""
    operator = draw(OPERATORS)
    version = draw(RELEASES)
    if operator in ("==", "!=") and draw(st.booleans()):
        version += ".*"
    else:
        if operator == "~=" and "." not in version:
            version += ".0"  # ~= needs at least two release segments
        version += draw(SUFFIXES)
    return operator + draw(SPACE) + version


@st.composite
def markers(draw: st.DrawFn) -> str:
    """An environment marker of one or two comparisons, quoted either way."""
    marker = ""
    for index in range(draw(st.integers(1, 2))):
        variable, operator, value = draw(MARKER_ATOMS)
        quote = draw(QUOTES)
        if index:
            marker += draw(BOOLEAN_OPERATORS)
        marker += variable + draw(SPACE) + operator + draw(SPACE) + quote + value + quote
    return marker


@dataclass(frozen=True)
class Spec:
    """A generated valid spec: the canonical name's parts, its spelling, and the rest."""

    parts: tuple[str, ...]
    name: str
    rest: str

    @property
    def canonical(self) -> str:
        return "-".join(self.parts)

    @property
    def text(self) -> str:
        return self.name + self.rest


@st.composite
def rests(draw: st.DrawFn) -> str:
    """Everything after the name: extras, specifiers and a marker, each optional."""
    rest = draw(SPACE)
    extras = draw(EXTRAS)
    if extras:
        rest += "[" + ("," + draw(SPACE)).join(extras) + "]" + draw(SPACE)
    specifiers = [draw(clauses()) for _ in range(draw(st.integers(0, 3)))]
    if specifiers:
        rest += draw(LIST_SEPARATORS).join(specifiers)
    if draw(st.booleans()):
        rest += draw(SPACE) + ";" + draw(SPACE) + draw(markers())
    return rest + draw(SPACE)


@st.composite
def specs_for(draw: st.DrawFn, parts: list[str]) -> Spec:
    return Spec(tuple(parts), draw(spellings(parts)), draw(rests()))


@st.composite
def valid_specs(draw: st.DrawFn) -> Spec:
    return draw(specs_for(draw(name_parts)))


def distinct_specs(max_size: int = 6) -> st.SearchStrategy[list[Spec]]:
    """Valid specs whose canonical names all differ."""
    return st.lists(valid_specs(), min_size=1, max_size=max_size, unique_by=lambda s: s.canonical)


# -- helpers --------------------------------------------------------------------------------

# A valid project name (PEP 508) in canonical form.
CANONICAL_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Everything in a requirement's text before its marker, once normalised by the validator:
# canonical name, optional extras, specifiers. No whitespace, quotes, '@', '/', ':', '$' or
# ';' can appear, so nothing in it can be read as an option, a URL or a path.
PLAIN_HEAD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*(?:\[[A-Za-z0-9._,-]+\])?[A-Za-z0-9.+*!_<>=~,-]*")


def assert_plain_requirement(req: Requirement) -> None:
    """The oracle: an accepted spec is a plain, normalised, name-based PEP 508 requirement."""
    text = str(req)
    assert req.url is None, text
    assert text.isprintable(), text
    assert not text.startswith("-"), text
    assert "$" not in text, text
    head, separator, marker = text.partition("; ")
    assert PLAIN_HEAD.fullmatch(head), text
    assert CANONICAL_NAME.fullmatch(req.name), f"{text!r}: {req.name!r} is no valid project name"
    assert head.startswith(req.name), text
    if req.marker is None:
        assert separator == "", text
    else:
        assert marker == str(req.marker), text
    again = parse_spec(text)
    assert again == req, text
    assert str(again) == text


def lines_of(content: str) -> list[str]:
    assert content == "" or content.endswith("\n")
    return content.splitlines()


def merge_one_by_one(specs: list[str], current: Requirements | None = None) -> Requirements:
    """Merge each spec as its own request, in order (the way successive installs do)."""
    return reduce(lambda acc, spec: merge(acc, parse_specs([spec])), specs, current or {})


# -- valid specs ------------------------------------------------------------------------------


@SETTINGS
@given(valid_specs())
def test_every_generated_valid_spec_is_accepted_under_its_canonical_name(spec: Spec) -> None:
    req = parse_spec(spec.text)
    assert req.name == canonicalize_name(spec.name) == spec.canonical
    assert req == Requirement(spec.text.strip())
    assert_plain_requirement(req)
    # Room for the fuzz tests below to insert their payloads without hitting the length limit.
    assert len(spec.text) <= MAX_SPEC_LENGTH - 40


@LIST_SETTINGS
@given(distinct_specs())
def test_render_then_parse_content_round_trips(specs: list[Spec]) -> None:
    requirements = parse_specs([s.text for s in specs])
    assert parse_content(render(requirements)) == requirements


@LIST_SETTINGS
@given(st.lists(valid_specs(), min_size=1, max_size=6))
def test_render_is_idempotent(specs: list[Spec]) -> None:
    rendered = render(merge_one_by_one([s.text for s in specs]))
    assert render(parse_content(rendered)) == rendered


@LIST_SETTINGS
@given(distinct_specs(), st.data())
def test_merge_is_order_independent_for_distinct_names(
    specs: list[Spec], data: st.DataObject
) -> None:
    texts = [s.text for s in specs]
    shuffled = data.draw(st.permutations(texts))
    assert render(merge_one_by_one(texts)) == render(merge_one_by_one(shuffled))
    assert render(merge_one_by_one(texts)) == render(parse_specs(shuffled))
    if len(texts) >= 2:
        split = data.draw(st.integers(1, len(texts) - 1))
        first, second = parse_specs(shuffled[:split]), parse_specs(shuffled[split:])
        assert merge(first, second) == merge(second, first) == parse_specs(texts)
        assert render(merge(first, second)) == render(merge(second, first))


@LIST_SETTINGS
@given(name_parts, st.data(), distinct_specs(max_size=4))
def test_repeating_a_name_in_several_spellings_leaves_one_line_the_last(
    parts: list[str], data: st.DataObject, others: list[Spec]
) -> None:
    canonical = "-".join(parts)
    others = [s for s in others if s.canonical != canonical]
    repeats = data.draw(st.lists(specs_for(parts), min_size=1, max_size=5))
    repeats.append(Spec(tuple(parts), canonical, data.draw(rests())))
    texts = [r.text for r in repeats]
    last = parse_spec(texts[-1])

    current = parse_specs([s.text for s in others]) if others else {}
    merged = merge_one_by_one(texts, current)
    assert merged[canonical] == last
    assert merged == {**current, canonical: last}
    names = [parse_spec(line).name for line in lines_of(render(merged))]
    assert names.count(canonical) == 1

    # A stored file that holds the name twice was written past bifrost (render never writes
    # one): it fails validation like the request would, and is named as such.
    stored = "".join(f"{text.strip()}\n" for text in texts)
    with pytest.raises(InvalidSpec, match="more than once"):
        parse_content(stored)
    assert "more than once" in (saved_error(stored) or "")
    # One request naming the project twice is refused outright.
    with pytest.raises(InvalidSpec, match="more than once"):
        parse_specs(texts)


@LIST_SETTINGS
@given(st.lists(valid_specs(), min_size=1, max_size=8))
def test_render_has_one_sorted_line_per_canonical_name(specs: list[Spec]) -> None:
    rendered = render(merge_one_by_one([s.text for s in specs]))
    lines = lines_of(rendered)
    names = [parse_spec(line).name for line in lines]
    assert names == sorted({s.canonical for s in specs})
    assert all(line == line.strip() and line for line in lines)


@LIST_SETTINGS
@given(distinct_specs(), st.data())
def test_content_hash_ignores_order_case_and_separators(
    specs: list[Spec], data: st.DataObject
) -> None:
    respelled = [
        Spec(s.parts, data.draw(spellings(list(s.parts))), s.rest)
        for s in data.draw(st.permutations(specs))
    ]
    one = render(parse_specs([s.text for s in specs]))
    two = render(parse_specs([s.text for s in respelled]))
    assert one == two
    assert content_hash(one) == content_hash(two)
    # ... and a real difference (one project fewer) changes the hash.
    fewer = render(remove(parse_content(one), [specs[0].canonical]))
    assert content_hash(fewer) != content_hash(one)


@LIST_SETTINGS
@given(distinct_specs(), st.data())
def test_remove_by_any_spelling_drops_exactly_that_line(
    specs: list[Spec], data: st.DataObject
) -> None:
    requirements = parse_specs([s.text for s in specs])
    victim = data.draw(st.sampled_from(specs))
    name = parse_name(data.draw(spellings(list(victim.parts))))
    assert name == victim.canonical
    left = remove(requirements, [name])
    assert set(left) == {s.canonical for s in specs} - {victim.canonical}
    assert all(left[n] == requirements[n] for n in left)


# -- fuzzing the validator --------------------------------------------------------------------

OPTIONS = [
    "-e .",
    "-e x",
    "-r x",
    "-c x",
    "--index-url http://x",
    "--index-url=http://x",
    "--extra-index-url http://x",
    "-f x",
    "--find-links x",
    "--trusted-host x",
    "--pre",
    "--no-deps",
    "-ihttp://x",
]
DANGEROUS = [
    *OPTIONS,
    " @ https://x/y.whl",
    "@https://x/y.whl",
    "git+https://github.com/x/y",
    "git+ssh://git@github.com/x/y.git",
    "https://x/y.tar.gz",
    "./x",
    "/tmp/x.whl",
    "../x.tar.gz",
    "x.whl",
    "file:///x",
    "~/x",
    "C:\\x\\y.whl",
    "${HOME}",
    "$HOME",
    "\r",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\u2028",
    "\x00",
]
HIDING_PLACES = ["", " ", ";", "; ", "\n", "\t", "\x00", "\r\n"]


@FUZZ_SETTINGS
@given(
    st.one_of(valid_specs(), name_parts.map(lambda p: Spec(tuple(p), "-".join(p), ""))),
    st.sampled_from(HIDING_PLACES),
    st.sampled_from(DANGEROUS),
    st.data(),
)
def test_mutated_specs_are_refused_or_come_out_plain(
    spec: Spec, hiding_place: str, dangerous: str, data: st.DataObject
) -> None:
    text = spec.text
    # Anywhere, but often where a payload does most harm: at either end, right after the name
    # and its extras, just before the marker.
    seams = [0, len(text), len(spec.name), len(text.rstrip())]
    seams += [match.start() for match in re.finditer(r"[\];]", text)]
    seams += [match.end() for match in re.finditer(r"\]", text)]
    position = data.draw(st.one_of(st.sampled_from(seams), st.integers(0, len(text))))
    mutated = spec.text[:position] + hiding_place + dangerous + spec.text[position:]

    stripped = mutated.strip()
    if (
        not stripped.isprintable()
        or stripped.startswith("-")
        or "$" in stripped
        or len(stripped) > MAX_SPEC_LENGTH
    ):
        # What the validator must refuse whatever the rest of the spec says.
        with pytest.raises(InvalidSpec):
            parse_spec(mutated)
        return
    try:
        req = parse_spec(mutated)
    except InvalidSpec:
        return
    # Accepted: the dangerous text was absorbed harmlessly, say "--pre" inside an extra's name
    # ("foo[x--pre]") or a marker's string literal (os_name == "nt --pre"), which may hold any
    # printable text and reaches the installer inside a single argument after "--".
    assert_plain_requirement(req)


@FUZZ_SETTINGS
@given(st.text(string.printable + "\x00\x1b\x7f\x85\u2028\u00e9", max_size=80))
def test_arbitrary_text_is_refused_or_comes_out_plain(text: str) -> None:
    try:
        req = parse_spec(text)
    except InvalidSpec:
        return
    assert_plain_requirement(req)


@SETTINGS
@given(valid_specs(), st.sampled_from(OPTIONS))
def test_installer_options_before_a_spec_are_refused(spec: Spec, option: str) -> None:
    with pytest.raises(InvalidSpec, match="installer options"):
        parse_spec(f"{option} {spec.text}")


@SETTINGS
@given(valid_specs(), st.sampled_from(["\n", "\r", "\t", "\x00", "\x1b", "\u2028"]), st.data())
def test_control_characters_inside_a_spec_are_refused(
    spec: Spec, control: str, data: st.DataObject
) -> None:
    text = spec.text.strip()
    position = data.draw(st.integers(1, len(text)))
    with pytest.raises(InvalidSpec, match="control characters"):
        parse_spec(text[:position] + control + text[position:] + "x")


@SETTINGS
@given(name_parts, st.text("._-", min_size=1, max_size=2), rests())
def test_names_ending_in_a_separator_are_refused(parts: list[str], end: str, rest: str) -> None:
    # PEP 508 names end with a letter or digit; "foo_" would be stored as "foo-", which
    # neither parse_name, pip nor uv accepts.
    with pytest.raises(InvalidSpec):
        parse_spec("-".join(parts) + end + rest)


@SETTINGS
@given(name_parts, st.sampled_from(["https://x/y.whl", "file:///tmp/x.whl", "git+https://x/y"]))
def test_direct_references_are_refused(parts: list[str], url: str) -> None:
    with pytest.raises(InvalidSpec, match="direct URLs are not allowed"):
        parse_spec(f"{'-'.join(parts)} @ {url}")


# -- limits and types -------------------------------------------------------------------------


@SETTINGS
@given(st.text(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029\u3000\u2003\xa0", max_size=20))
def test_empty_and_whitespace_only_specs_are_refused(blank: str) -> None:
    with pytest.raises(InvalidSpec):
        parse_spec(blank)
    with pytest.raises(InvalidSpec):
        parse_name(blank)


NON_STRINGS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.binary(max_size=10),
    st.lists(st.text(LOWER_ALNUM, min_size=1, max_size=5), max_size=3),
    st.dictionaries(st.text(LOWER_ALNUM, max_size=3), st.integers(), max_size=2),
)


@SETTINGS
@given(NON_STRINGS)
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidSpec, match="must be a string"):
        parse_spec(value)
    with pytest.raises(InvalidSpec):
        parse_name(value)
    if not isinstance(value, list):
        with pytest.raises(InvalidSpec, match="non-empty list"):
            parse_specs(value)


@SETTINGS
@given(st.integers(1, 3 * MAX_SPEC_LENGTH), st.data())
def test_specs_longer_than_the_limit_are_refused(length: int, data: st.DataObject) -> None:
    name = data.draw(st.text(ALNUM, min_size=length, max_size=length))
    padded = data.draw(SPACE) + name + data.draw(SPACE)
    if length <= MAX_SPEC_LENGTH:
        assert parse_spec(padded).name == canonicalize_name(name)
    else:
        with pytest.raises(InvalidSpec, match="longer than"):
            parse_spec(padded)


@SETTINGS
@given(st.integers(1, MAX_SPECS + 50))
def test_requests_with_more_than_max_specs_are_refused(count: int) -> None:
    specs = [f"p{i}" for i in range(count)]
    if count <= MAX_SPECS:
        assert len(parse_specs(specs)) == count
    else:
        with pytest.raises(InvalidSpec, match=f"at most {MAX_SPECS}"):
            parse_specs(specs)
