"""state.json writes are atomic: a concurrent reader sees the old or the new file, whole."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson

from council_app.store.legacy_files import write_json_atomic

ROUNDS = 300


def test_reader_never_sees_a_torn_file(tmp_path: Path) -> None:
    path = tmp_path / "session_20251210_160742_5b86ea" / "state.json"
    write_json_atomic(path, {"n": -1, "pad": ""})
    done = threading.Event()
    seen: list[int] = []
    problems: list[str] = []

    def read() -> None:
        while not done.is_set():
            try:
                seen.append(orjson.loads(path.read_bytes())["n"])
            except (ValueError, KeyError) as e:  # a torn or partial file
                problems.append(repr(e))

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(ROUNDS):
        write_json_atomic(path, {"n": n, "pad": "x" * (50_000 + n)})  # big enough to tear
    done.set()
    reader.join(10)
    assert problems == []
    assert seen and seen == sorted(seen)  # never goes back to an older version
    assert orjson.loads(path.read_bytes())["n"] == ROUNDS - 1
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temp files left
