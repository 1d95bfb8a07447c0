"""Issue 22: installer output has no size limit per line. A real installer (uv) fails on a
wheel whose metadata holds a line of megabytes, which it echoes twice (the line, and a line of
carets under it); the 422 answer and the event stream stay small and say what was cut."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import redis

from bifrost_ext.engine.process import MAX_LINE_BYTES, MAX_TAIL_CHARS, bounded_lines, bounded_tail
from tests.api import answer, call, post_raw, snapshot
from tests.wheels import build_suite_wheels, build_wheel

#: The length of the one line the installer is made to print (and then to underline).
HUGE = 3_000_000
#: What a line may grow to once cut: the kept bytes and the note of what was cut.
CUT_LINE = MAX_LINE_BYTES + len("… [12345678 bytes cut]".encode())


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's wheels and ``bfhuge`` 1.0, whose dependency is a 3 MB invalid line."""
    house = tmp_path_factory.mktemp("huge-wheelhouse")
    build_suite_wheels(house)
    build_wheel(house, "bfhuge", "1.0", requires=[f"bfdep ({'x' * HUGE})"])
    return house


def _cut_notes(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"… \[(\d+) bytes cut\]", text)]


@pytest.mark.usefixtures("jp_serverapp")
async def test_a_huge_line_is_cut_in_the_answer(
    jp_fetch: Any, database_url: str, redis_client: redis.Redis, site_dir: Path
) -> None:
    assert (await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]}))[0] == 200
    before = snapshot(database_url, redis_client, site_dir)
    status, raw = await post_raw(jp_fetch, "install", json.dumps({"packages": ["bfhuge"]}))
    assert status == 422
    assert len(raw) < MAX_TAIL_CHARS + 2048  # before: 6 MB
    body = json.loads(raw)
    assert body["message"] == (
        "bfhuge==1.0 cannot be installed: its metadata is invalid; nothing was saved"
    )
    assert all(len(line.encode()) <= CUT_LINE for line in body["output"].splitlines())
    notes = _cut_notes(body["output"])
    assert notes
    assert all(n > HUGE - MAX_LINE_BYTES for n in notes)
    assert snapshot(database_url, redis_client, site_dir) == before


@pytest.mark.usefixtures("jp_serverapp")
async def test_a_huge_line_is_cut_in_the_event_stream(
    jp_fetch: Any, database_url: str, redis_client: redis.Redis, site_dir: Path
) -> None:
    assert (await call(jp_fetch, "install", {"packages": ["bfdemo==1.0"]}))[0] == 200
    before = snapshot(database_url, redis_client, site_dir)
    status, raw = await post_raw(
        jp_fetch, "install", json.dumps({"packages": ["bfhuge"]}), stream=True
    )
    assert len(raw) < 2 * MAX_TAIL_CHARS + 16384  # before: 12 MB (each line, then the tail)
    events = [json.loads(data) for data in re.findall(rb"^data: (.*)$", raw, re.MULTILINE)]
    lines = [event for event in events if isinstance(event, str)]
    assert all(len(line.encode()) <= CUT_LINE for line in lines)
    assert len(_cut_notes("\n".join(lines))) == 2  # the line and its carets, each said cut
    assert answer(status, raw)[0] == 422
    assert snapshot(database_url, redis_client, site_dir) == before


def test_the_bounds_hold_at_their_edges(tmp_path: Path) -> None:
    """Exactly the limit is kept whole; one byte more is cut and says so; a last line without
    a newline counts too."""
    text = b"a" * MAX_LINE_BYTES + b"\n" + b"b" * (MAX_LINE_BYTES + 1) + b"\r\nc\n" + b"d" * 99999
    source = tmp_path / "output"
    source.write_bytes(text)
    with source.open("rb") as stream:
        lines = list(bounded_lines(stream))
    assert lines == [
        "a" * MAX_LINE_BYTES,
        "b" * MAX_LINE_BYTES + "… [1 bytes cut]",
        "c",
        "d" * MAX_LINE_BYTES + f"… [{99999 - MAX_LINE_BYTES} bytes cut]",
    ]
    kept = [f"line {n}" for n in range(10000)]
    tail = bounded_tail(kept)
    assert tail.endswith("line 9999")
    assert len(tail) < MAX_TAIL_CHARS + 64
    assert tail.startswith(f"[{len(chr(10).join(kept)) - MAX_TAIL_CHARS} earlier characters cut]")
    assert bounded_tail(["short", "tail"]) == "short\ntail"
