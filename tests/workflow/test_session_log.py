"""The per-session JSONL log of LLM calls."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import orjson

from council_app.workflow.session_log import SessionLog, read_log_entries


def test_path_and_folder_created_on_first_append(tmp_path: Path) -> None:
    log = SessionLog(tmp_path)
    assert log.path == tmp_path / "logs" / "llm_calls.jsonl"
    assert not log.path.parent.exists()
    log.append({"step": "draft", "agent": "critic"})
    assert log.path.is_file()


def test_append_writes_one_line_with_utc_timestamp(tmp_path: Path) -> None:
    log = SessionLog(tmp_path)
    entry = {
        "step": "draft",
        "agent": "critic",
        "prompt": [{"role": "user", "content": "line1\nline2"}],
        "response": "ok",
        "cost_usd": 0.0012,
        "error": None,
    }
    log.append(entry)
    raw = log.path.read_bytes()
    assert raw.count(b"\n") == 1 and raw.endswith(b"\n")
    parsed = orjson.loads(raw)
    ts = datetime.fromisoformat(parsed.pop("ts"))
    assert ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0
    assert parsed == entry
    assert "ts" not in entry  # caller's dict is not mutated


def test_read_returns_entries_in_order_and_limit_keeps_last(tmp_path: Path) -> None:
    log = SessionLog(tmp_path)
    for i in range(5):
        log.append({"i": i})
    assert [e["i"] for e in read_log_entries(tmp_path)] == [0, 1, 2, 3, 4]
    assert [e["i"] for e in read_log_entries(tmp_path, limit=2)] == [3, 4]
    assert read_log_entries(tmp_path, limit=0) == []


def test_read_missing_log_is_empty(tmp_path: Path) -> None:
    assert read_log_entries(tmp_path) == []


def test_read_combines_jsonl_files_sorted_by_name(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "b.jsonl").write_text('{"n": "b1"}\n')
    (logs / "a.jsonl").write_text('{"n": "a1"}\n{"n": "a2"}\n')
    (logs / "notes.txt").write_text('{"n": "ignored"}\n')
    assert [e["n"] for e in read_log_entries(tmp_path)] == ["a1", "a2", "b1"]


def test_torn_and_invalid_lines_are_skipped(tmp_path: Path) -> None:
    log = SessionLog(tmp_path)
    log.append({"i": 1})
    with open(log.path, "ab") as fh:
        fh.write(b"not json\n[1, 2]\n\n")
    log.append({"i": 2})
    with open(log.path, "ab") as fh:
        fh.write(b'{"i": 3, "response": "cut off mid')  # crash mid-write
    assert [e["i"] for e in read_log_entries(tmp_path)] == [1, 2]


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    threads_n, per_thread = 8, 200
    barrier = threading.Barrier(threads_n)
    # Large payloads make interleaving likely if writes were not atomic.
    payload = "x" * 3000

    def worker(t: int) -> None:
        log = SessionLog(tmp_path)  # separate instances, like separate requests
        barrier.wait()
        for i in range(per_thread):
            log.append({"t": t, "i": i, "payload": payload})

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()

    lines = (tmp_path / "logs" / "llm_calls.jsonl").read_bytes().splitlines()
    assert len(lines) == threads_n * per_thread
    parsed = [orjson.loads(line) for line in lines]  # raises if any line is torn
    assert all(p["payload"] == payload for p in parsed)
    for t in range(threads_n):
        assert [p["i"] for p in parsed if p["t"] == t] == list(range(per_thread))
