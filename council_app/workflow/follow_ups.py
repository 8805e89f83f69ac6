"""Follow-up sessions: a new question asked in the light of a finished session.

The new session carries its parent's question, verdict and uploads as context, so the
council sees what was already decided; both sessions name each other (``follow_up_of``
on the child, ``follow_ups`` on the parent), so either page links to the other.
Uploads are carried as their extracted text (``content``), not as copied files: the
context builder reads ``content`` when the session's folder has no extracted file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from council_app.session_ids import session_dir
from council_app.workflow.uploads import load_context_text

#: The name the parent's question and verdict go under in the child's context.
EARLIER_SESSION_FILE = "earlier-session.md"


def earlier_session_text(parent: dict[str, Any]) -> str:
    """The parent's question and verdict, as the first context document of the child."""
    raw = parent.get("question")
    question = raw if isinstance(raw, str) else ""
    verdict = parent.get("chairman_verdict")
    verdict_text = verdict.strip() if isinstance(verdict, str) and verdict.strip() else ""
    parts = [
        "This question follows up an earlier council session.",
        "",
        "## The earlier question",
        question.strip() or "(none recorded)",
        "",
        "## The earlier verdict",
        verdict_text or "(the earlier session had no verdict yet)",
    ]
    return "\n".join(parts)


def carried_context(
    sessions_root: Path, parent_id: str, parent: dict[str, Any]
) -> list[dict[str, Any]]:
    """``ingested_data`` items for the child: the earlier session, then each parent upload."""
    folder = session_dir(sessions_root, parent_id)
    items: list[dict[str, Any]] = [
        {
            "metadata": {"filename": EARLIER_SESSION_FILE, "extension": ".md", "carried": True},
            "content": earlier_session_text(parent),
        }
    ]
    for item in parent.get("ingested_data") or []:
        if not isinstance(item, dict):
            continue
        meta = dict(item.get("metadata") or {})
        one = {**meta, **({"content": item["content"]} if "content" in item else {})}
        text = load_context_text(folder, [one])
        if not text:
            continue  # the parent's file is gone; nothing to carry
        # load_context_text put a "### File:" header on it; the child adds its own.
        body = text.split("\n", 1)[1] if text.startswith("### File:") else text
        # A distinct name: a same-named upload of the child must not shadow this text.
        meta["filename"] = f"earlier-{meta.get('filename') or 'upload'}"
        meta.update(carried_from=parent_id, carried=True)
        meta.pop("path", None)  # the file stays in the parent's folder
        items.append({"metadata": meta, "content": body})
    return items


def add_follow_up(parent: dict[str, Any], child_id: str) -> None:
    """Record the child on the parent (idempotent; run inside a compare-and-set update)."""
    follow_ups = parent.get("follow_ups")
    if not isinstance(follow_ups, list):
        follow_ups = []
    if child_id not in follow_ups:
        follow_ups.append(child_id)
    parent["follow_ups"] = follow_ups
