"""Session identifiers and the mapping from an id to its folder on disk.

Ids arrive from URLs and form fields, so they are validated before any
filesystem access: a strict ASCII pattern rules out traversal (``..``, ``/``,
NUL) and look-alike unicode digits.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

# Legacy deployments created 6-hex suffixes; new ids use 12. Accept 6..32 so
# every id ever issued keeps working. Legacy ids are lowercase, so uppercase is
# rejected (one canonical spelling per session folder).
_SESSION_ID_RE = re.compile(r"session_\d{8}_\d{6}_[0-9a-f]{6,32}", re.ASCII)


def new_session_id(now: datetime | None = None) -> str:
    """Return a fresh id ``session_YYYYMMDD_HHMMSS_<12 hex>``.

    The timestamp keeps folders sortable by creation time; the random suffix
    keeps ids unguessable and unique within the same second. A naive ``now`` is
    taken to be UTC already.
    """
    moment = now or datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"session_{moment:%Y%m%d_%H%M%S}_{secrets.token_hex(6)}"


def is_valid_session_id(value: str) -> bool:
    """True only for well-formed ids; safe to call on any untrusted input."""
    return isinstance(value, str) and _SESSION_ID_RE.fullmatch(value) is not None


def session_dir(sessions_root: Path, session_id: str) -> Path:
    """Return ``sessions_root / session_id``, refusing bad ids and paths outside the root."""
    if not is_valid_session_id(session_id):
        raise ValueError(f"Invalid session id: {session_id!r}")
    root = Path(sessions_root)
    candidate = root / session_id
    resolved_root = root.resolve()
    resolved = candidate.resolve()
    # Defence in depth: a symlinked session folder must not lead outside the root.
    if resolved == resolved_root or not resolved.is_relative_to(resolved_root):
        raise ValueError(f"Session path escapes the sessions root: {session_id!r}")
    return candidate
