"""The offline provider: deterministic, varied, and always parseable by the workflow."""

from __future__ import annotations

import re

import pytest

from council_app.providers import OfflineProvider
from council_app.workflow.parsing import (
    aggregate_scores,
    parse_council,
    parse_review,
    split_tldr,
)
from council_app.workflow.prompts import (
    agent_messages,
    build_council_messages,
    chairman_messages,
    review_messages,
)

QUESTION = "Should our startup migrate its Django monolith to microservices before the Series A?"
OTHER_QUESTION = "How should a city reduce traffic congestion without raising local taxes?"
CONTEXT = "The platform serves 40k daily users. The team has six engineers and one SRE."
ARCHITECT = {"name": "Systems Architect", "persona": "You are a systems architect."}
SKEPTIC = {"name": "Devil's Advocate", "persona": "You are a professional sceptic."}


@pytest.fixture
def offline() -> OfflineProvider:
    return OfflineProvider()


def _run(provider, messages, task):
    return provider.complete(messages, model="gpt-5.1", task=task)


def _review_prompt(reviewer=ARCHITECT, ids=(2, 5, 7)):
    proposals = [(pid, f"Answer number {pid} about microservices.\n\nTL;DR: go") for pid in ids]
    return review_messages(reviewer, QUESTION, proposals)


ALL_TASKS = [
    ("build", build_council_messages(QUESTION, CONTEXT)),
    ("execute", agent_messages(ARCHITECT, QUESTION, CONTEXT)),
    ("review", _review_prompt()),
    (
        "synthesize",
        chairman_messages(
            QUESTION, [{"agent_name": "A", "proposal_id": 1, "response": "x"}], [], {}
        ),
    ),
]


@pytest.mark.parametrize(("task", "messages"), ALL_TASKS, ids=[t for t, _ in ALL_TASKS])
def test_same_input_gives_same_output(offline, task, messages):
    first = _run(offline, messages, task)
    second = _run(OfflineProvider(), messages, task)

    assert first.text == second.text
    assert (first.input_tokens, first.output_tokens) == (second.input_tokens, second.output_tokens)
    assert first.input_tokens > 0 and first.output_tokens > 0
    assert first.provider == "offline"
    assert first.model == "gpt-5.1"


def test_build_output_is_a_valid_council_relevant_to_the_question(offline):
    text = _run(offline, build_council_messages(QUESTION, CONTEXT), "build").text

    council = parse_council(text)

    names = [a["name"] for a in council["agents"]]
    assert 3 <= len(names) <= 5
    assert len(set(names)) == len(names)
    assert len({a["persona"] for a in council["agents"]}) == len(names)
    assert any(word in text.lower() for word in ("django", "monolith", "microservices"))
    assert all(
        a["reasoning_effort"] in {"none", "low", "medium", "high"} for a in council["agents"]
    )


def test_build_differs_across_questions(offline):
    first = _run(offline, build_council_messages(QUESTION, ""), "build").text
    second = _run(offline, build_council_messages(OTHER_QUESTION, ""), "build").text

    assert first != second
    assert "congestion" in second.lower() or "traffic" in second.lower()


def test_execute_answer_is_markdown_in_the_personas_voice(offline):
    text = _run(offline, agent_messages(ARCHITECT, QUESTION, CONTEXT), "execute").text

    response, tldr = split_tldr(text)
    assert response == text
    assert tldr.startswith(("Cautiously", "In favour", "Sceptical"))
    assert text.rstrip().splitlines()[-1].startswith("TL;DR:")
    assert re.search(r"^#{2,3} ", text, re.MULTILINE)
    assert re.search(r"^- ", text, re.MULTILINE)
    assert "systems architect" in text.lower()
    assert "40k daily users" in text  # quotes the uploaded context


def test_execute_differs_across_personas(offline):
    architect = _run(offline, agent_messages(ARCHITECT, QUESTION, ""), "execute").text
    skeptic = _run(offline, agent_messages(SKEPTIC, QUESTION, ""), "execute").text

    assert architect != skeptic
    assert "Devil's Advocate" in skeptic and "Devil's Advocate" not in architect


def test_review_scores_every_proposal_in_the_prompt(offline):
    text = _run(offline, _review_prompt(ids=(2, 5, 7)), "review").text

    parsed = parse_review(text, [2, 5, 7])

    assert sorted(e["proposal_id"] for e in parsed["per_proposal"]) == [2, 5, 7]
    assert all(1 <= e["score"] <= 5 for e in parsed["per_proposal"])
    assert sorted(parsed["overall_ranking"]) == [2, 5, 7]
    assert all(e["strengths"] and e["weaknesses"] and e["tldr"] for e in parsed["per_proposal"])


def test_review_scores_vary(offline):
    reviewers = [{"name": f"R{i}", "persona": f"You are reviewer {i}."} for i in range(6)]
    scores = set()
    for reviewer in reviewers:
        text = _run(offline, _review_prompt(reviewer, ids=range(1, 6)), "review").text
        scores.update(e["score"] for e in parse_review(text, list(range(1, 6)))["per_proposal"])

    assert len(scores) >= 3


def test_whole_council_round_trip_offline(offline):
    council = parse_council(_run(offline, build_council_messages(QUESTION, CONTEXT), "build").text)
    proposals = []
    for pid, agent in enumerate(council["agents"], start=1):
        text = _run(offline, agent_messages(agent, QUESTION, CONTEXT), "execute").text
        proposals.append({"agent_name": agent["name"], "proposal_id": pid, "response": text})
    ids = [p["proposal_id"] for p in proposals]
    reviews = []
    for agent in council["agents"]:
        prompt = review_messages(
            agent, QUESTION, [(p["proposal_id"], p["response"]) for p in proposals]
        )
        parsed = parse_review(_run(offline, prompt, "review").text, ids)
        reviews.append({"reviewer": agent["name"], "critique": "", "tldr": "", "parsed": parsed})
    scores = aggregate_scores(reviews)

    verdict = _run(offline, chairman_messages(QUESTION, proposals, reviews, scores), "synthesize")

    assert verdict.text.startswith("## Verdict")
    assert split_tldr(verdict.text)[1]
    assert any(p["agent_name"] in verdict.text for p in proposals)
    assert "| Proposal | Member | Average score |" in verdict.text


def test_latency_is_simulated():
    result = OfflineProvider(latency_ms=30).complete(
        agent_messages(ARCHITECT, QUESTION, ""), model="m", task="execute"
    )

    assert result.duration_ms >= 30
