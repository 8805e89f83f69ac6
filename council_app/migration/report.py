"""What the operator sees: a progress bar (plain lines when not a terminal) and a summary.

The summary is a fixed table so that scripts can grep it, or JSON with ``--json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

# Rows of the summary table per mode: (counter key, label).
ROWS: dict[str, tuple[tuple[str, str], ...]] = {
    "migrate": (
        ("scanned", "scanned"),
        ("migrated", "migrated"),
        ("updated", "updated"),
        ("unchanged", "unchanged"),
        ("skipped", "skipped (database newer)"),
        ("failed", "failed"),
    ),
    "export": (
        ("scanned", "scanned"),
        ("exported", "exported"),
        ("updated", "updated"),
        ("unchanged", "unchanged"),
        ("skipped", "skipped (file newer)"),
        ("failed", "failed"),
    ),
    "verify": (
        ("scanned", "scanned"),
        ("match", "match"),
        ("mismatch", "mismatch"),
        ("missing", "missing row"),
        ("failed", "failed"),
    ),
}


def label_of(mode: str, outcome: str) -> str:
    """The summary's wording for an outcome ("skipped" says which side was newer)."""
    return dict(ROWS.get(mode, ())).get(outcome, outcome)


LISTED = {"skipped", "mismatch", "missing"}  # outcomes listed by session in the summary


@dataclass
class Summary:
    mode: str  # migrate | export | verify
    target: str
    sessions_dir: str
    dry_run: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str | None]] = field(default_factory=list)
    listed: dict[str, list[str]] = field(default_factory=dict)
    bytes: int = 0
    notes: list[str] = field(default_factory=list)
    # Where each carried session's content came from (source.FROM_*): counts, and by id.
    sources: dict[str, int] = field(default_factory=dict)
    source_of: dict[str, str] = field(default_factory=dict)
    aborted: str | None = None
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0

    def __post_init__(self) -> None:
        for key, _ in ROWS[self.mode]:
            self.counts.setdefault(key, 0)

    def record(
        self, session_id: str, outcome: str, origin: str | None = None, source: str | None = None
    ) -> None:
        self.counts["scanned"] += 1
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if source is not None:
            self.sources[source] = self.sources.get(source, 0) + 1
            self.source_of[session_id] = source
        if outcome in LISTED:
            self.listed.setdefault(outcome, []).append(origin or session_id)

    def fail(self, session_id: str | None, origin: str, reason: str) -> None:
        self.counts["scanned"] += 1
        self.counts["failed"] += 1
        self.failures.append({"session_id": session_id, "file": origin, "reason": reason})

    @property
    def ok(self) -> bool:
        return not (
            self.aborted
            or self.counts["failed"]
            or self.counts.get("mismatch")
            or self.counts.get("missing")
        )

    def finish(self) -> None:
        self.elapsed_s = time.monotonic() - self.started

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "dry_run": self.dry_run,
            "target": self.target,
            "sessions_dir": self.sessions_dir,
            "counts": self.counts,
            "failures": self.failures,
            **{k: v for k, v in self.listed.items()},
            "notes": self.notes,
            "sources": self.sources,
            "source_of": self.source_of,
            "aborted": self.aborted,
            "bytes": self.bytes,
            "elapsed_s": round(self.elapsed_s, 3),
            "ok": self.ok,
        }

    def write_json(self, out: TextIO) -> None:
        out.write(orjson.dumps(self.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")

    def write_table(self, out: TextIO) -> None:
        title = {"migrate": "Migration", "export": "Export", "verify": "Verification"}[self.mode]
        suffix = " (dry run: nothing was written)" if self.dry_run else ""
        arrow = "<-" if self.mode == "export" else "->"
        out.write(f"{title} summary{suffix}: {self.sessions_dir} {arrow} {self.target}\n")
        for key, label in ROWS[self.mode]:
            out.write(f"  {label:<26}{self.counts.get(key, 0):>9}\n")
        rate = self.counts["scanned"] / self.elapsed_s if self.elapsed_s else 0.0
        what = "written" if self.mode == "export" and not self.dry_run else "read"
        out.write(
            f"  {self.bytes} bytes {what} ({self.bytes / 1e6:.1f} MB) in {self.elapsed_s:.1f} s "
            f"({rate:.0f} sessions/s)\n"
        )
        if self.sources:
            out.write("content from:\n")
            for source, n in sorted(self.sources.items()):
                out.write(f"  {source:<40}{n:>9}\n")
            both = sorted((sid, src) for sid, src in self.source_of.items() if "newer than" in src)
            if both:
                out.write("sessions found in both (the newer copy was taken):\n")
                out.writelines(f"  {sid}: {src}\n" for sid, src in both)
        for note in self.notes:
            out.write(f"note: {note}\n")
        for key, label in ROWS[self.mode]:
            if key in self.listed:
                out.write(f"{label}:\n")
                out.writelines(f"  {origin}\n" for origin in self.listed[key])
        if self.failures:
            out.write("failures:\n")
            out.writelines(f"  {f['file']}: {f['reason']}\n" for f in self.failures)


class Progress:
    """A one-line bar redrawn in place on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, out: TextIO | None, total: int, label: str) -> None:
        self.out = out
        self.total = total
        self.label = label
        self.done = 0
        self.bytes = 0
        self.tty = bool(out and out.isatty())
        self.started = time.monotonic()
        self._last = 0.0
        self._interval = 0.1 if self.tty else 2.0

    def advance(self, sessions: int, nbytes: int = 0) -> None:
        self.done += sessions
        self.bytes += nbytes
        now = time.monotonic()
        if self.out and now - self._last >= self._interval:
            self._last = now
            self._draw(now)

    def close(self) -> None:
        if self.out and self.done:
            self._draw(time.monotonic())
            if self.tty:
                self.out.write("\n")
            self.out.flush()

    def _draw(self, now: float) -> None:
        assert self.out is not None
        elapsed = max(now - self.started, 1e-9)
        total = max(self.total, self.done)
        stats = (
            f"{self.done}/{total} sessions  {self.bytes / 1e6:.1f} MB  {self.done / elapsed:.0f}/s"
        )
        if self.tty:
            width = 30
            filled = int(width * self.done / total) if total else width
            bar = "#" * filled + "." * (width - filled)
            self.out.write(f"\r{self.label} [{bar}] {stats}\033[K")
        else:
            self.out.write(f"{self.label}: {stats}\n")
        self.out.flush()
