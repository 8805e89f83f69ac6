"""Session id format, validation and the id-to-folder mapping."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from council_app.session_ids import is_valid_session_id, new_session_id, session_dir

NEW_ID_RE = re.compile(r"session_\d{8}_\d{6}_[0-9a-f]{12}", re.ASCII)


def test_new_id_uses_given_utc_time_and_12_hex_suffix() -> None:
    sid = new_session_id(datetime(2025, 12, 10, 16, 7, 42, tzinfo=UTC))
    assert sid.startswith("session_20251210_160742_")
    assert NEW_ID_RE.fullmatch(sid)
    assert is_valid_session_id(sid)


def test_new_id_converts_aware_times_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    sid = new_session_id(datetime(2025, 12, 10, 1, 0, 0, tzinfo=plus_two))
    assert sid.startswith("session_20251209_230000_")


def test_new_id_defaults_to_now_and_is_random() -> None:
    before = datetime.now(UTC).strftime("%Y%m%d")
    ids = {new_session_id() for _ in range(200)}
    assert len(ids) == 200
    for sid in ids:
        assert NEW_ID_RE.fullmatch(sid)
        assert sid[8:16] >= before


@pytest.mark.parametrize(
    "value",
    [
        "session_20251210_160742_5b86ea",  # legacy 6-hex id
        "session_20251210_160742_0123456789ab",  # new 12-hex id
        "session_20251210_160742_" + "f" * 32,  # longest accepted
    ],
)
def test_valid_ids(value: str) -> None:
    assert is_valid_session_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "session_20251210_160742_5b86e",  # 5 hex
        "session_20251210_160742_" + "f" * 33,  # too long
        "session_20251210_160742_5B86EA",  # uppercase: legacy ids are lowercase
        "session_20251210_160742_5b86eg",  # not hex
        "session_2025121_160742_5b86ea",  # short date
        "Session_20251210_160742_5b86ea",
        "session_20251210_160742_5b86ea\n",  # `$` would let this through
        "session_20251210_160742_5b86ea\x00",
        " session_20251210_160742_5b86ea",
        "../session_20251210_160742_5b86ea",
        "session_20251210_160742_5b86ea/../../etc",
        "session_20251210_160742_5b86ea/..",
        "..",
        "/etc/passwd",
        "session_\u0662\u0660\u0662\u0665\u0661\u0662\u0661\u0660_160742_5b86ea",  # Arabic digits
        "session_" + "".join(chr(0xFF10 + int(d)) for d in "20251210") + "_160742_5b86ea",
    ],
)
def test_invalid_ids(value: str) -> None:
    assert not is_valid_session_id(value)


@pytest.mark.parametrize("value", [None, 123, b"session_20251210_160742_5b86ea"])
def test_non_strings_are_invalid(value: object) -> None:
    assert not is_valid_session_id(value)  # type: ignore[arg-type]


def test_session_dir_returns_child_of_root(tmp_path: Path) -> None:
    sid = "session_20251210_160742_5b86ea"
    assert session_dir(tmp_path, sid) == tmp_path / sid


@pytest.mark.parametrize("bad", ["..", "../x", "session_20251210_160742_5b86ea/../.."])
def test_session_dir_rejects_invalid_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        session_dir(tmp_path, bad)


def test_session_dir_refuses_symlink_escaping_root(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    sid = "session_20251210_160742_5b86ea"
    os.symlink(outside, root / sid)
    with pytest.raises(ValueError, match="escapes"):
        session_dir(root, sid)
