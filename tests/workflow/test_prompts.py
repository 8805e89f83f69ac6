"""Prompt builders: anonymity, truncation and the formats the parsers expect."""

from __future__ import annotations

from council_app.workflow.prompts import (
    DEFAULT_MAX_CONTEXT_CHARS,
    agent_messages,
    build_council_messages,
    chairman_messages,
    review_messages,
    truncate,
)

AGENT = {"name": "Zed the Architect", "persona": "You are a meticulous architect."}


def _roles(messages):
    return [m["role"] for m in messages]


def test_build_prompt_asks_for_the_council_json():
    messages = build_council_messages("Which database?", "")

    assert _roles(messages) == ["system", "user"]
    user = messages[1]["content"]
    assert "<question>\nWhich database?\n</question>" in user
    assert "3 to 6" in user
    for key in ("council_name", "strategy_summary", "reasoning_effort", "enable_web_search"):
        assert f'"{key}"' in user
    assert "<context>" not in user  # no uploads, no empty section


def test_long_context_is_truncated_with_a_marker():
    context = "x" * (DEFAULT_MAX_CONTEXT_CHARS + 5_000)

    user = build_council_messages("Q?", context)[1]["content"]

    assert "context truncated: 5,000 of 25,000 characters omitted" in user
    assert user.count("x") <= DEFAULT_MAX_CONTEXT_CHARS + 50


def test_context_limit_is_configurable():
    user = agent_messages(AGENT, "Q?", "abcdefghij" * 10, max_context_chars=25)[1]["content"]

    assert "abcdefghijabcdefghijabcde\n\n[... context truncated: 75 of 100" in user


def test_short_text_is_not_truncated():
    assert truncate("  short  ", 100) == "short"


def test_agent_prompt_uses_persona_as_system_and_asks_for_tldr():
    messages = agent_messages(AGENT, "Which database?", "Our data is relational.")

    system, user = messages[0]["content"], messages[1]["content"]
    assert system.startswith("You are a meticulous architect.")
    assert "Zed the Architect" in system
    assert "<context>\nOur data is relational.\n</context>" in user
    assert user.rstrip().splitlines()[-1].startswith("TL;DR:")


def test_review_prompt_is_anonymous():
    proposals = [(3, "Use Postgres."), (8, "Use SQLite.")]

    messages = review_messages(AGENT, "Which database?", proposals)

    user = messages[1]["content"]
    assert "=== PROPOSAL #3 ===\nUse Postgres.\n=== END OF PROPOSAL #3 ===" in user
    assert "PROPOSAL #8" in user
    assert "Score each of these proposal ids: 3, 8." in user
    assert '"per_proposal"' in user and '"overall_ranking"' in user
    assert "Zed" not in user


def test_chairman_prompt_includes_names_scores_and_usable_reviews():
    proposals = [
        {"agent_name": "Ann", "proposal_id": 1, "response": "Postgres.\nTL;DR: Postgres"},
        {"agent_name": "Bob", "proposal_id": 2, "response": "SQLite."},
    ]
    reviews = [
        {
            "reviewer": "Ann",
            "parsed": {
                "overall_tldr": "Postgres wins.",
                "per_proposal": [{"proposal_id": 2, "score": 2, "tldr": "too small"}],
            },
        },
        {"reviewer": "Bob", "error": "HTTP 500"},
    ]
    scores = {"1": {"scores": [5, 4], "comments": []}, "2": {"scores": [2], "comments": []}}

    user = chairman_messages("Which database?", proposals, reviews, scores)[1]["content"]

    assert "=== PROPOSAL #1 — Ann ===" in user
    assert "- PROPOSAL #1 (Ann): average 4.50 from 2 review(s) (scores: 5, 4)" in user
    assert "- Ann: Postgres wins." in user
    assert "PROPOSAL #2: 2/5 too small" in user
    assert "HTTP 500" not in user
    assert "## Verdict" in user
