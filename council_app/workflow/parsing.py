"""Turn model output into data the workflow can trust.

Models wrap JSON in fences, add chatter around it, write ``"#2"`` for an id or ``"4/5"``
for a score. These parsers accept that noise but refuse output that cannot be used,
raising ``ParseError`` with a reason a user can act on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from council_app.domain import EFFORTS

REASONING_EFFORTS = EFFORTS
DEFAULT_REASONING_EFFORT = "medium"
MIN_SCORE, MAX_SCORE = 1, 5

_FENCE_RE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)
_TLDR_RE = re.compile(r"^[\s>*_#-]*TL\s*;?\s*DR[\s*_]*:[\s*_]*(.*?)[\s*_]*$", re.IGNORECASE)
_ID_RE = re.compile(r"^\s*(?:proposal\s*)?#?\s*(\d+)\s*$", re.IGNORECASE)
_SCORE_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*5)?\s*$")
_TRUE = {"true", "yes", "1", "on"}


class ParseError(ValueError):
    """Model output is not usable; ``str()`` says why."""


def extract_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text``, tolerating code fences and prose around it."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError("model output is empty")
    candidates = [text.strip(), *(m.group(1).strip() for m in _FENCE_RE.finditer(text))]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ParseError("model output contains no JSON object")


def parse_council(text: str) -> dict[str, Any]:
    """Normalised council config from the builder's output.

    Returns ``{"council_name", "strategy_summary", "agents": [{"name", "persona",
    "reasoning_effort", "enable_web_search"[, "model"]}]}``.
    """
    data = extract_json_object(text)
    raw_agents = data.get("agents")
    if not isinstance(raw_agents, list) or not raw_agents:
        raise ParseError('council has no agents (expected a non-empty "agents" list)')
    agents = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_agents, start=1):
        if not isinstance(raw, dict):
            raise ParseError(f"agent #{index} is not an object")
        name = _text(raw.get("name"))
        persona = _text(raw.get("persona"))
        if not name:
            raise ParseError(f"agent #{index} has no name")
        if not persona:
            raise ParseError(f'agent #{index} ("{name}") has no persona')
        name = _unique(name, seen)
        agent: dict[str, Any] = {
            "name": name,
            "persona": persona,
            "reasoning_effort": _effort(raw.get("reasoning_effort")),
            "enable_web_search": _flag(raw.get("enable_web_search")),
        }
        model = _text(raw.get("model"))
        if model:
            agent["model"] = model
        agents.append(agent)
    return {
        "council_name": _text(data.get("council_name")) or "Agent Council",
        "strategy_summary": _text(data.get("strategy_summary")),
        "agents": agents,
    }


def split_tldr(text: str) -> tuple[str, str]:
    """``(response, tldr)``: the response is the full text; the tldr is the last TL;DR line."""
    text = text or ""
    lines = text.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        match = _TLDR_RE.match(lines[index])
        if not match:
            continue
        tldr = match.group(1).strip()
        if not tldr:  # "TL;DR:" alone on its line, summary on the next one
            tldr = next((ln.strip() for ln in lines[index + 1 :] if ln.strip()), "")
        return text, tldr
    return text, ""


def parse_review(text: str, valid_ids: Iterable[int]) -> dict[str, Any]:
    """Validated review; entries for ids outside ``valid_ids`` are dropped."""
    valid = [int(i) for i in valid_ids]
    data = extract_json_object(text)
    raw_entries = data.get("per_proposal")
    if not isinstance(raw_entries, list):
        raise ParseError('review has no "per_proposal" list')
    entries: list[dict[str, Any]] = []
    for raw in raw_entries:
        if not isinstance(raw, dict):
            raise ParseError("review entry is not an object")
        pid = _proposal_id(raw.get("proposal_id"))
        if pid is None or pid not in valid or any(e["proposal_id"] == pid for e in entries):
            continue
        entries.append(
            {
                "proposal_id": pid,
                "score": _score(raw.get("score"), pid),
                "strengths": _text(raw.get("strengths")),
                "weaknesses": _text(raw.get("weaknesses")),
                "gaps_risks": _text(raw.get("gaps_risks")),
                "tldr": _text(raw.get("tldr")),
            }
        )
    if valid and not entries:
        raise ParseError(f"review scores none of the proposals {valid}")
    return {
        "overall_tldr": _text(data.get("overall_tldr")),
        "per_proposal": entries,
        "overall_ranking": _ranking(data.get("overall_ranking"), entries),
    }


def aggregate_scores(reviews: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, list[Any]]]:
    """Per proposal id (as str): all scores and one comment per reviewer; failed reviews skipped."""
    result: dict[str, dict[str, list[Any]]] = {}
    for review in reviews:
        parsed = review.get("parsed")
        if review.get("error") or not isinstance(parsed, Mapping):
            continue
        reviewer = _text(review.get("reviewer")) or "reviewer"
        for entry in parsed.get("per_proposal") or []:
            bucket = result.setdefault(str(entry["proposal_id"]), {"scores": [], "comments": []})
            bucket["scores"].append(int(entry["score"]))
            comment = _text(entry.get("tldr")) or _text(entry.get("strengths"))
            if comment:
                bucket["comments"].append(f"{reviewer}: {comment}")
    return result


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value if _text(v))
    return str(value).strip()


def _unique(name: str, seen: set[str]) -> str:
    """Agent names key results downstream, so duplicates get a numeric suffix."""
    candidate, n = name, 2
    while candidate.lower() in seen:
        candidate, n = f"{name} {n}", n + 1
    seen.add(candidate.lower())
    return candidate


def _effort(value: Any) -> str:
    effort = _text(value).lower()
    return effort if effort in REASONING_EFFORTS else DEFAULT_REASONING_EFFORT


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value) if isinstance(value, bool | int) else False


def _proposal_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        match = _ID_RE.match(value)
        if match:
            return int(match.group(1))
    return None


def _score(value: Any, pid: int) -> int:
    if isinstance(value, bool):
        raise ParseError(f"score for proposal #{pid} is not a number: {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _SCORE_RE.match(str(value)) if value is not None else None
        if not match:
            raise ParseError(f"score for proposal #{pid} is not a number: {value!r}")
        number = float(match.group(1))
    if not math.isfinite(number):
        raise ParseError(f"score for proposal #{pid} is not a number: {value!r}")
    return int(min(MAX_SCORE, max(MIN_SCORE, round(number))))


def _ranking(value: Any, entries: list[dict[str, Any]]) -> list[int]:
    """The reviewer's order restricted to scored ids, then any unranked ids by score."""
    scored = {e["proposal_id"]: e["score"] for e in entries}
    ranking: list[int] = []
    for item in value if isinstance(value, list) else []:
        pid = _proposal_id(item)
        if pid is not None and pid in scored and pid not in ranking:
            ranking.append(pid)
    rest = sorted((p for p in scored if p not in ranking), key=lambda p: (-scored[p], p))
    return ranking + rest
