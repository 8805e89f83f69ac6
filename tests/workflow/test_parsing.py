"""Parsers: tolerant of fences and chatter, strict about unusable output."""

from __future__ import annotations

import json

import pytest

from council_app.workflow.parsing import (
    ParseError,
    aggregate_scores,
    parse_council,
    parse_review,
    split_tldr,
)

COUNCIL = {
    "council_name": "  Migration Council ",
    "strategy_summary": " Mix builders and sceptics. ",
    "agents": [
        {"name": " Architect ", "persona": " You are an architect. ", "reasoning_effort": "HIGH"},
        {
            "name": "Sceptic",
            "persona": "You doubt.",
            "enable_web_search": "true",
            "model": "gpt-4o",
        },
        {"name": "Operator", "persona": "You ship.", "reasoning_effort": "extreme"},
    ],
}


def test_parse_council_normalises_fields():
    council = parse_council(json.dumps(COUNCIL))

    assert council["council_name"] == "Migration Council"
    assert council["strategy_summary"] == "Mix builders and sceptics."
    architect, sceptic, operator = council["agents"]
    assert architect == {
        "name": "Architect",
        "persona": "You are an architect.",
        "reasoning_effort": "high",
        "enable_web_search": False,
    }
    assert sceptic["enable_web_search"] is True
    assert sceptic["reasoning_effort"] == "medium"
    assert sceptic["model"] == "gpt-4o"
    assert operator["reasoning_effort"] == "medium"  # unknown effort falls back
    assert "model" not in operator


@pytest.mark.parametrize(
    "wrap",
    [
        "```json\n{}\n```",
        "Here is the council you asked for:\n```\n{}\n```\nGood luck!",
        "Sure! {} Hope this helps.",
        "{}\n\nNote: {{ braces }} in the epilogue.",
    ],
)
def test_parse_council_tolerates_fences_and_prose(wrap):
    text = wrap.replace("{}", json.dumps(COUNCIL, indent=2), 1)

    assert [a["name"] for a in parse_council(text)["agents"]] == [
        "Architect",
        "Sceptic",
        "Operator",
    ]


def test_parse_council_makes_duplicate_names_unique():
    agents = [{"name": "Expert", "persona": "p"}, {"name": "expert", "persona": "q"}]

    names = [a["name"] for a in parse_council(json.dumps({"agents": agents}))["agents"]]

    assert names == ["Expert", "expert 2"]


def test_parse_council_defaults_missing_council_fields():
    council = parse_council('{"agents": [{"name": "A", "persona": "p"}]}')

    assert council["council_name"] == "Agent Council"
    assert council["strategy_summary"] == ""


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("I would pick three experts: an architect, a sceptic and an operator.", "no JSON object"),
        ('{"council_name": "x"}', "no agents"),
        ('{"agents": []}', "no agents"),
        ('{"agents": "architect, sceptic"}', "no agents"),
        ('{"agents": ["architect"]}', "agent #1 is not an object"),
        ('{"agents": [{"name": "A", "persona": "p"}, {"persona": "q"}]}', "agent #2 has no name"),
        ('{"agents": [{"name": "A", "persona": "  "}]}', r'agent #1 \("A"\) has no persona'),
    ],
)
def test_parse_council_rejects_unusable_output(text, reason):
    with pytest.raises(ParseError, match=reason):
        parse_council(text)


def test_parse_error_is_a_value_error():
    assert issubclass(ParseError, ValueError)


@pytest.mark.parametrize(
    ("text", "tldr"),
    [
        ("Body.\n\nTL;DR: Do it.", "Do it."),
        ("TL;DR: first\n\nMore text.\ntl;dr: second and last", "second and last"),
        ("Body\n**TL;DR:** Ship the pilot.", "Ship the pilot."),
        ("Body\n**TL;DR**: Ship it", "Ship it"),
        ("Body\nTLDR: no semicolon", "no semicolon"),
        ("Body\nTL;DR:\n  Summary on the next line.", "Summary on the next line."),
        ("No summary here. The TL;DR: is mid-sentence.", ""),
        ("", ""),
    ],
)
def test_split_tldr(text, tldr):
    response, found = split_tldr(text)

    assert found == tldr
    assert response == text


def _review(entries, ranking=None, **extra):
    payload = {"overall_tldr": " Mixed bag. ", "per_proposal": entries, **extra}
    if ranking is not None:
        payload["overall_ranking"] = ranking
    return json.dumps(payload)


def _entry(pid, score, **fields):
    return {"proposal_id": pid, "score": score, "strengths": "s", "tldr": "t", **fields}


def test_parse_review_coerces_ids_and_scores():
    text = _review(
        [_entry("#1", "4/5"), _entry("2", 7), _entry(3, 0), _entry("Proposal #4", 3.6)],
        ranking=["#2", 1, "4", 3],
    )

    parsed = parse_review(text, [1, 2, 3, 4])

    assert [(e["proposal_id"], e["score"]) for e in parsed["per_proposal"]] == [
        (1, 4),
        (2, 5),
        (3, 1),
        (4, 4),
    ]
    assert parsed["overall_ranking"] == [2, 1, 4, 3]
    assert parsed["overall_tldr"] == "Mixed bag."
    assert parsed["per_proposal"][0] == {
        "proposal_id": 1,
        "score": 4,
        "strengths": "s",
        "weaknesses": "",
        "gaps_risks": "",
        "tldr": "t",
    }


def test_parse_review_drops_unknown_and_duplicate_ids():
    text = _review([_entry(1, 3), _entry(9, 5), _entry(1, 1), _entry("n/a", 2)], ranking=[9, 1])

    parsed = parse_review(text, [1, 2])

    assert [(e["proposal_id"], e["score"]) for e in parsed["per_proposal"]] == [(1, 3)]
    assert parsed["overall_ranking"] == [1]


def test_parse_review_derives_missing_ranking_from_scores():
    text = _review([_entry(1, 2), _entry(2, 5), _entry(3, 2)])

    assert parse_review(f"```json\n{text}\n```", [1, 2, 3])["overall_ranking"] == [2, 1, 3]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Proposal 1 is great, 5/5.", "no JSON object"),
        ('{"overall_tldr": "fine"}', "per_proposal"),
        ('{"per_proposal": {"1": 4}}', "per_proposal"),
        (_review([_entry(1, "excellent")]), "not a number"),
        (_review([_entry(1, None)]), "not a number"),
        (_review([_entry(1, True)]), "not a number"),
        (_review([_entry(7, 4)]), "none of the proposals"),
        (_review(["proposal 1: 4"]), "not an object"),
    ],
)
def test_parse_review_rejects_malformed_output(text, reason):
    with pytest.raises(ParseError, match=reason):
        parse_review(text, [1, 2])


def test_aggregate_scores_skips_failed_reviews():
    reviews = [
        {
            "reviewer": "Architect",
            "critique": "...",
            "tldr": "...",
            "parsed": {
                "per_proposal": [
                    {"proposal_id": 1, "score": 4, "strengths": "clear", "tldr": "good plan"},
                    {"proposal_id": 2, "score": 2, "strengths": "brief", "tldr": ""},
                ]
            },
        },
        {"reviewer": "Sceptic", "error": "timed out"},
        {
            "reviewer": "Operator",
            "parsed": {"per_proposal": [{"proposal_id": 1, "score": 5, "tldr": "ship it"}]},
        },
    ]

    assert aggregate_scores(reviews) == {
        "1": {"scores": [4, 5], "comments": ["Architect: good plan", "Operator: ship it"]},
        "2": {"scores": [2], "comments": ["Architect: brief"]},
    }


def test_aggregate_scores_of_nothing_is_empty():
    assert aggregate_scores([{"reviewer": "A", "error": "boom"}]) == {}
