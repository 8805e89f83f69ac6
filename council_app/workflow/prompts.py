"""Chat messages for each stage of a council run.

Every stage's prompt lives here so that wording changes are reviewed in one place and the
parsers in ``parsing.py`` can rely on the formats these prompts ask for. User-supplied text
is wrapped in XML-like tags so the model can tell instructions from material.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Messages = list[dict[str, str]]

DEFAULT_MAX_CONTEXT_CHARS = 20_000
DEFAULT_MAX_PROPOSAL_CHARS = 12_000
REASONING_EFFORTS = ("none", "low", "medium", "high")

_COUNCIL_SCHEMA = """{
  "council_name": "<short name for this council>",
  "strategy_summary": "<one or two sentences: why this mix of experts fits the question>",
  "agents": [
    {
      "name": "<distinct role-like name>",
      "persona": "<system prompt in the second person: expertise, priorities, method>",
      "reasoning_effort": "none" | "low" | "medium" | "high",
      "enable_web_search": true | false
    }
  ]
}"""

_REVIEW_SCHEMA = """{
  "overall_tldr": "<one sentence summing up your review>",
  "per_proposal": [
    {
      "proposal_id": <integer id>,
      "score": <integer 1-5>,
      "strengths": "<what it gets right>",
      "weaknesses": "<what it gets wrong or argues poorly>",
      "gaps_risks": "<what it misses, and risks of following it>",
      "tldr": "<one sentence verdict on this proposal>"
    }
  ],
  "overall_ranking": [<proposal ids, best first>]
}"""


def truncate(text: str, max_chars: int, what: str = "context") -> str:
    """Cut ``text`` to ``max_chars`` with a visible marker, so the model knows text is missing."""
    text = (text or "").strip()
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    omitted = len(text) - max_chars
    return (
        text[:max_chars].rstrip()
        + f"\n\n[... {what} truncated: {omitted:,} of {len(text):,} characters omitted ...]"
    )


def _tagged(tag: str, body: str) -> str:
    return f"<{tag}>\n{body}\n</{tag}>"


def _context_block(context: str, max_chars: int) -> str:
    body = truncate(context, max_chars)
    if not body:
        return ""
    return (
        "Documents uploaded by the user (may be truncated):\n" + _tagged("context", body) + "\n\n"
    )


def build_council_messages(
    question: str, context: str, *, max_context_chars: int = DEFAULT_MAX_CONTEXT_CHARS
) -> Messages:
    """Ask the model to design the council (3-6 personas) as JSON for ``parse_council``."""
    system = (
        "You design advisory councils of AI experts. Given a user's question you choose a "
        "small set of distinct expert personas whose combined, independent perspectives will "
        "produce the best possible answer. Reply with a single JSON object and nothing else."
    )
    user = (
        "Design a council of 3 to 6 experts to answer this question.\n\n"
        + _tagged("question", question.strip())
        + "\n\n"
        + _context_block(context, max_context_chars)
        + "Guidelines:\n"
        "- Each agent brings a genuinely different discipline, stakeholder view or method; "
        "no near-duplicates.\n"
        '- "persona" is the agent\'s system prompt, written as "You are ...": 2-4 sentences on '
        "expertise, priorities and how the agent reasons.\n"
        '- "reasoning_effort" is one of "none", "low", "medium", "high"; give more effort to '
        "agents whose job needs careful multi-step reasoning.\n"
        '- "enable_web_search" is true only when the agent needs fresh facts from the web.\n\n'
        "Return exactly this JSON shape:\n" + _COUNCIL_SCHEMA
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def agent_messages(
    agent: Mapping[str, Any],
    question: str,
    context: str,
    *,
    max_context_chars: int = DEFAULT_MAX_CONTEXT_CHARS,
) -> Messages:
    """One council member's answer; the persona is the system prompt."""
    name = str(agent.get("name") or "Council member").strip()
    persona = str(agent.get("persona") or "").strip()
    system = (f"{persona}\n\n" if persona else "") + (
        f'You are speaking as "{name}", one member of an advisory council whose other '
        "members answer the same question independently."
    )
    user = (
        "Answer the question below from your own expertise and point of view.\n\n"
        + _tagged("question", question.strip())
        + "\n\n"
        + _context_block(context, max_context_chars)
        + "Write a thorough, well-structured answer in Markdown: your position, the reasoning "
        "and evidence behind it, concrete recommendations, and the main risks or caveats. If "
        "the uploaded documents are relevant, use them and say which part you rely on. Be "
        "specific rather than generic.\n\n"
        "End with a final line of the form:\n"
        "TL;DR: <one or two sentences summarising your answer>"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def review_messages(
    reviewer: Mapping[str, Any],
    question: str,
    proposals: Sequence[tuple[int, str]],
    *,
    max_proposal_chars: int = DEFAULT_MAX_PROPOSAL_CHARS,
) -> Messages:
    """Anonymous peer review: proposals appear only as ``PROPOSAL #<id>``, never by author."""
    persona = str(reviewer.get("persona") or "").strip()
    system = (f"{persona}\n\n" if persona else "") + (
        "You are now acting as an impartial reviewer on an advisory council. Judge each "
        "proposal on its merits; do not try to guess its author and do not favour a proposal "
        "just because it agrees with your own view. Reply with a single JSON object only."
    )
    ids = [int(pid) for pid, _ in proposals]
    blocks = "\n\n".join(
        f"=== PROPOSAL #{int(pid)} ===\n"
        f"{truncate(text, max_proposal_chars, 'proposal')}\n"
        f"=== END OF PROPOSAL #{int(pid)} ==="
        for pid, text in proposals
    )
    user = (
        "Council members answered the question below independently. Their answers are "
        "anonymised as PROPOSAL #<id>.\n\n"
        + _tagged("question", question.strip())
        + "\n\n"
        + blocks
        + "\n\nFor every proposal give a score from 1 (poor) to 5 (excellent) for correctness, "
        "depth and usefulness, with its strengths, weaknesses, gaps or risks, and a one-line "
        f"verdict. Score each of these proposal ids: {', '.join(str(i) for i in ids)}.\n\n"
        "Reply with exactly this JSON shape (integer ids, no other text):\n" + _REVIEW_SCHEMA
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def chairman_messages(
    question: str,
    proposals: Sequence[Mapping[str, Any]],
    reviews: Sequence[Mapping[str, Any]],
    aggregated_scores: Mapping[str, Mapping[str, Any]],
    *,
    max_proposal_chars: int = DEFAULT_MAX_PROPOSAL_CHARS,
) -> Messages:
    """The chairman weighs named proposals, peer reviews and scores into a Markdown verdict."""
    system = (
        "You are the chairman of an advisory council. Council members answered a question "
        "independently and then reviewed each other's answers anonymously. Your job is to "
        "write the council's final verdict: weigh arguments on their merits, use peer scores "
        "as a signal rather than a vote, and never invent facts the members did not provide."
    )
    names = {str(p.get("proposal_id")): str(p.get("agent_name") or "unknown") for p in proposals}
    proposal_blocks = "\n\n".join(
        f"=== PROPOSAL #{p.get('proposal_id')} — {names[str(p.get('proposal_id'))]} ===\n"
        f"{truncate(str(p.get('response') or ''), max_proposal_chars, 'proposal')}\n"
        f"=== END OF PROPOSAL #{p.get('proposal_id')} ==="
        for p in proposals
    )
    user = (
        _tagged("question", question.strip())
        + "\n\nThe council members' answers:\n\n"
        + proposal_blocks
        + "\n\nPeer-review scores (1-5):\n"
        + _score_lines(aggregated_scores, names)
        + "\n\nReviewer summaries:\n"
        + _review_lines(reviews)
        + "\n\nWrite the verdict in Markdown with these sections:\n"
        "## Verdict: the direct answer to the question, in a few sentences.\n"
        "## Where the council agreed\n"
        "## Disagreements and how you resolved them\n"
        "## Recommended next steps\n"
        "## Risks and open questions\n\n"
        "End with a final line of the form:\n"
        "TL;DR: <one or two sentences>"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _score_lines(aggregated: Mapping[str, Mapping[str, Any]], names: Mapping[str, str]) -> str:
    lines = []
    for pid in sorted(aggregated, key=_id_sort_key):
        scores = [int(s) for s in aggregated[pid].get("scores") or []]
        who = names.get(str(pid), "unknown")
        if scores:
            mean = sum(scores) / len(scores)
            joined = ", ".join(str(s) for s in scores)
            lines.append(
                f"- PROPOSAL #{pid} ({who}): average {mean:.2f} from {len(scores)} "
                f"review(s) (scores: {joined})"
            )
        else:
            lines.append(f"- PROPOSAL #{pid} ({who}): no scores")
    return "\n".join(lines) if lines else "- (no scores: every review failed)"


def _review_lines(reviews: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for review in reviews:
        reviewer = str(review.get("reviewer") or "reviewer")
        parsed = review.get("parsed")
        if review.get("error") or not isinstance(parsed, Mapping):
            continue
        overall = str(parsed.get("overall_tldr") or review.get("tldr") or "").strip()
        lines.append(f"- {reviewer}: {overall or '(no summary)'}")
        for entry in parsed.get("per_proposal") or []:
            detail = entry.get("tldr") or entry.get("weaknesses") or ""
            lines.append(
                f"  - PROPOSAL #{entry.get('proposal_id')}: {entry.get('score')}/5 {detail}"
            )
    return "\n".join(lines) if lines else "- (no usable reviews)"


def _id_sort_key(pid: object) -> tuple[int, str]:
    text = str(pid)
    return (int(text), "") if text.isdigit() else (10**9, text)
