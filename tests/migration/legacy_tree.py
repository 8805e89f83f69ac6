"""Generate legacy ``sessions/<id>/state.json`` trees (and a legacy SQLite database).

Shared by the migration tests and ``bench/bench_migration.py``, so both exercise the same
shapes the real files have (see /work/shared/LEGACY_STATE.md): naive timestamps, older
files without ``status``/``user_id``, string proposal ids, unknown keys.
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

BASE_TIME = datetime(2025, 12, 10, 16, 7, 42, 881056)  # naive, like the legacy files

_WORDS = [
    "council",
    "agent",
    "proposal",
    "risk",
    "review",
    "verdict",
    "budget",
    "market",
    "evidence",
    "latency",
    "cost",
    "migration",
    "strategy",
    "customer",
    "revenue",
    "tradeoff",
    "roadmap",
    "chairman",
    "critique",
    "score",
]


def session_id(index: int, when: datetime | None = None) -> str:
    """A legacy-looking id (6 hex digits) that is unique per index."""
    moment = when or BASE_TIME + timedelta(seconds=index)
    return f"session_{moment:%Y%m%d_%H%M%S}_{index % 0xFFFFFF:06x}"


def _text(rng: random.Random, n_chars: int) -> str:
    words: list[str] = []
    length = 0
    while length < n_chars:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:n_chars]


def make_state(
    sid: str,
    *,
    size: int = 20_000,
    seed: int = 0,
    naive: bool = True,
    status: bool = True,
    user: str | None = "alice@example.com",
    created: datetime | None = None,
) -> dict[str, Any]:
    """A completed session of roughly ``size`` bytes of JSON (most of it in agent answers)."""
    rng = random.Random(f"{sid}:{seed}")
    created = created or BASE_TIME
    updated = created + timedelta(minutes=7, microseconds=rng.randrange(1_000_000))
    if not naive:
        created, updated = created.replace(tzinfo=UTC), updated.replace(tzinfo=UTC)
    agents = [f"Agent {i}" for i in range(1, 4)]
    state: dict[str, Any] = {
        "session_id": sid,
        "created_at": created.isoformat(),
        "updated_at": updated.isoformat(),
        "current_step": "complete",
        "question": f"Should we {_text(rng, 60)}?",
        "context_files": [],
        "council_config": {
            "council_name": "Strategy Council",
            "strategy_summary": _text(rng, 200),
            "agents": [
                {"name": a, "persona": _text(rng, 80), "reasoning_effort": "medium"} for a in agents
            ],
        },
        "execution_results": {
            "council_name": "Strategy Council",
            "execution_results": [
                {
                    "agent_name": a,
                    "response": "",
                    "tldr": _text(rng, 80),
                    "status": "success",
                    "tools_used": [],
                    "proposal_id": i + 1,
                }
                for i, a in enumerate(agents)
            ],
        },
        "execution_status": {"ALL": "Done", **dict.fromkeys(agents, "Done")},
        "peer_reviews": [
            {"reviewer": a, "critique": _text(rng, 300), "tldr": _text(rng, 60)} for a in agents
        ],
        "review_status": dict.fromkeys(agents, "Critique Complete"),
        "aggregated_scores": {
            str(i + 1): {"scores": [rng.randint(1, 5) for _ in agents], "comments": ["ok"]}
            for i in range(len(agents))
        },
        "chairman_verdict": "## Verdict\n" + _text(rng, 400),
        "tokens": {
            "input_tokens": rng.randrange(10_000),
            "output_tokens": rng.randrange(10_000),
            "total_tokens": rng.randrange(20_000),
            "total_cost_usd": round(rng.random(), 6),
        },
        "x_future_key": {"kept": [1, 2.5, None, True, {"nested": "yes"}]},
    }
    if status:
        state["status"] = "verdict_complete"
    if user is not None:
        state["user_id"] = user
    # Spread the remaining bytes over the agents' answers.
    missing = max(0, size - len(orjson.dumps(state)))
    results = state["execution_results"]["execution_results"]
    for i, result in enumerate(results):
        result["response"] = _text(rng, missing // len(results) + (i < missing % len(results)))
    return state


def write_state_file(sessions_dir: Path, sid: str, payload: bytes | dict[str, Any]) -> Path:
    """Write a state file as the legacy server did (indented JSON), or raw bytes as given."""
    path = Path(sessions_dir) / sid / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    return path


def write_tree(
    sessions_dir: Path, count: int, size: int, *, start: int = 0, seed: int = 0
) -> list[str]:
    """``count`` good sessions of about ``size`` bytes each; returns their ids."""
    ids = []
    for i in range(start, start + count):
        sid = session_id(i)
        write_state_file(sessions_dir, sid, make_state(sid, size=size, seed=seed))
        ids.append(sid)
    return ids


@dataclass
class MixedTree:
    """What ``write_mixed_tree`` made, by the outcome the migration should report."""

    sessions_dir: Path
    sqlite_path: Path
    good: list[str] = field(default_factory=list)  # migrate as-is
    failing: dict[str, str] = field(default_factory=dict)  # id -> expected words in the reason
    legacy_only: list[str] = field(default_factory=list)  # only in the legacy SQLite db
    legacy_metadata_only: list[str] = field(default_factory=list)  # SQLite row, no state at all
    old_style: str = ""  # no status, no user_id (its owner is in the SQLite row), unicode
    only_question: str = ""  # {"question": ...} and nothing else: owner is the default user
    huge: str = ""  # 5 MB
    legacy_deleted: str = ""  # only a SQLite row, with deleted_at (epoch seconds) set

    @property
    def migratable(self) -> list[str]:
        return self.good + self.legacy_only + self.legacy_metadata_only


def write_mixed_tree(root: Path, good: int = 6) -> MixedTree:
    """Every kind of file the migration meets, plus a legacy SQLite database."""
    tree = MixedTree(root / "sessions", root / "agent_council.db")
    sdir = tree.sessions_dir
    sdir.mkdir(parents=True, exist_ok=True)
    n = 0

    def next_id() -> str:
        nonlocal n
        n += 1
        return session_id(n)

    for _ in range(good):
        sid = next_id()
        write_state_file(sdir, sid, make_state(sid, size=5_000))
        tree.good.append(sid)
    # An older file: no status, no user, naive timestamps, compact JSON, unicode.
    sid = next_id()
    old = make_state(sid, size=3_000, status=False, user=None)
    old["question"] = 'Façade or 建筑? Ünïcödé ✓ 🚀 \u2028 "quotes" \\ back'
    write_state_file(sdir, sid, orjson.dumps(old))
    tree.good.append(sid)
    tree.old_style = sid
    # Timezone-aware timestamps and a state with only a question.
    sid = next_id()
    write_state_file(sdir, sid, make_state(sid, size=2_000, naive=False))
    tree.good.append(sid)
    sid = next_id()
    write_state_file(sdir, sid, {"question": "Only a question"})
    tree.good.append(sid)
    tree.only_question = sid
    # Huge: 5 MB.
    sid = next_id()
    write_state_file(sdir, sid, make_state(sid, size=5_000_000))
    tree.good.append(sid)
    tree.huge = sid

    failing = [
        ("empty", b""),
        ("empty", b"  \n"),
        ("invalid JSON", b'{"question": "cut off'),
        ("not a JSON object", b"[1, 2, 3]"),
        ("not UTF-8", b'{"question": "caf\xe9"}'),
        ("differs from the folder", orjson.dumps({"session_id": "session_20990101_000000_ffffff"})),
        ("missing fields", orjson.dumps({"tokens": {"total_tokens": 3}})),
        ("\\u0000", b'{"question": "a\\u0000b"}'),
        ("status is not a string", orjson.dumps({"question": "q", "status": ["done"]})),
    ]
    for reason, payload in failing:
        sid = next_id()
        write_state_file(sdir, sid, payload)
        tree.failing[sid] = reason
    # Unreadable (unless running as root, which reads anything: then it migrates).
    sid = next_id()
    path = write_state_file(sdir, sid, {"question": "locked"})
    path.chmod(0)
    if os.access(path, os.R_OK):
        tree.good.append(sid)
    else:
        tree.failing[sid] = "unreadable"

    # Noise the migration must ignore: not session folders.
    (sdir / "not_a_session").mkdir()
    (sdir / "README.txt").write_text("notes")
    (sdir / next_id()).mkdir()  # a session folder without state.json (uploads only)

    rows: list[tuple[Any, ...]] = []
    # Legacy SQLite: a row for a file session (owner from the row), legacy-only sessions.
    rows.append((tree.old_style, "bob@example.com", "from sqlite", None, None, None, None, None))
    for _ in range(2):
        sid = next_id()
        state = make_state(sid, size=4_000, user=None, status=False)
        rows.append(
            (sid, "carol@example.com", state["question"], "verdict_complete", "complete",
             "2025-12-10 16:07:42.000000", "2025-12-10 17:00:00", orjson.dumps(state).decode())
        )  # fmt: skip
        tree.legacy_only.append(sid)
    sid = next_id()
    rows.append((sid, None, "metadata only", "idle", "input", "2025-12-11T09:00:00", None, None))
    tree.failing[sid] = "no state"  # metadata with no state anywhere is never "migrated"
    sid = next_id()
    rows.append((sid, "dave", "bad legacy", None, None, None, None, "{not json"))
    tree.failing[sid] = "invalid JSON"
    sid = next_id()  # hard-deleted by the embedded backend: its row stays as a tombstone
    rows.append((sid, "erin", "gone", "idle", "input", 1765443600, None, None, 1765447200.5))
    tree.legacy_metadata_only.append(sid)
    tree.legacy_deleted = sid
    write_legacy_sqlite(tree.sqlite_path, rows)
    return tree


def write_legacy_sqlite(path: Path, rows: Iterable[tuple[Any, ...]]) -> None:
    """A pre-PostgreSQL database: the server's own ``sessions`` table, state as TEXT."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id TEXT, question TEXT, "
            "status TEXT, current_step TEXT, created_at DATETIME, updated_at DATETIME, "
            "state TEXT, deleted_at DATETIME, extra_column TEXT)"
        )
        conn.executemany(
            "INSERT INTO sessions (id, user_id, question, status, current_step, created_at, "
            "updated_at, state, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row, None)[:9] for row in rows],
        )
        conn.commit()
    finally:
        conn.close()
