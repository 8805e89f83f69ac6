"""Append-only JSONL log of the LLM calls made for one session.

Several threads (and gunicorn worker processes) may write to the same log, so
each entry is written as one complete line with a single ``os.write`` on a file
opened with ``O_APPEND``: the kernel appends it atomically and lines never
interleave. Readers tolerate a torn last line (e.g. after a crash).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger(__name__)

LOG_DIR_NAME = "logs"
LOG_FILE_NAME = "llm_calls.jsonl"


class SessionLog:
    """Writer for ``<session_dir>/logs/llm_calls.jsonl``."""

    def __init__(self, session_dir: Path) -> None:
        self.path: Path = Path(session_dir) / LOG_DIR_NAME / LOG_FILE_NAME

    def append(self, entry: dict[str, Any]) -> None:
        """Write ``entry`` plus a ``ts`` (ISO UTC) as one JSON line, atomically."""
        record = dict(entry)
        record["ts"] = datetime.now(UTC).isoformat()
        # OPT_NON_STR_KEYS tolerates int keys; default=str keeps odd values
        # (Paths, Decimals) from losing the whole entry.
        line = orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS, default=str) + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
        finally:
            os.close(fd)
        if written != len(line):  # only on a full disk or similar; never silently
            logger.warning("Short write to %s: %d of %d bytes", self.path, written, len(line))


def read_log_entries(session_dir: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Return entries from every ``logs/*.jsonl`` file, in file-name and line order.

    Invalid or torn lines are skipped rather than failing the whole read, so a
    crash mid-write never hides the rest of a session's history. ``limit``
    keeps only the last N entries.
    """
    log_dir = Path(session_dir) / LOG_DIR_NAME
    if not log_dir.is_dir():
        return []
    entries: list[dict[str, Any]] = []
    for file in sorted(log_dir.glob("*.jsonl")):
        try:
            data = file.read_bytes()
        except OSError as exc:
            logger.warning("Cannot read session log %s: %s", file, exc)
            continue
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                logger.debug("Skipping invalid line in %s", file)
                continue
            if isinstance(parsed, dict):
                entries.append(parsed)
    if limit is not None:
        if limit <= 0:
            return []
        entries = entries[-limit:]
    return entries
