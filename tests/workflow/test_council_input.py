"""The council's rules (workflow/council_input.py) on their own: what a clean council looks
like, and which mistakes are a 400 (not a council) or a 422 naming each field."""

from __future__ import annotations

from typing import Any

import pytest

from council_app.workflow.council_input import check_council, field_name
from council_app.workflow.errors import CouncilInvalid, WorkflowError


def _agent(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "persona": f"You are {name}.", **extra}


def test_a_clean_council_is_trimmed_defaulted_and_keeps_only_known_members() -> None:
    council = check_council(
        {
            "council_name": "  Board ",
            "agents": [
                {**_agent("  Ada "), "reasoning_effort": None, "colour": "blue"},
                _agent("Bob", model=" gpt-5.1 ", enable_web_search=True),
            ],
        }
    )
    assert council == {
        "council_name": "Board",
        "agents": [
            {
                "name": "Ada",
                "persona": "You are   Ada .",
                "reasoning_effort": "medium",
                "enable_web_search": False,
            },
            {
                "name": "Bob",
                "persona": "You are Bob.",
                "reasoning_effort": "medium",
                "enable_web_search": True,
                "model": "gpt-5.1",
            },
        ],
    }


@pytest.mark.parametrize(
    "payload",
    [None, [], "agents", {}, {"agents": "x"}, {"agents": [_agent("A")], "council_name": 7}],
)
def test_what_is_not_a_council_is_a_400(payload: Any) -> None:
    with pytest.raises(WorkflowError) as info:
        check_council(payload)
    assert info.value.status_code == 400 and not isinstance(info.value, CouncilInvalid)


def test_deployment_rules_name_each_field() -> None:
    served = {"gpt-5.1"}
    with pytest.raises(CouncilInvalid) as info:
        check_council(
            {
                "chairman_model": "gpt-9",
                "agents": [_agent("A"), _agent(" a", model="typo"), _agent("C")],
            },
            max_agents=2,
            known_model=lambda model: model in served,
        )
    fields = {e["field"]: e["message"] for e in info.value.extra["errors"]}
    assert set(fields) == {"agents", "agents[1].name", "agents[1].model", "chairman_model"}
    assert "1 to 2 agents" in fields["agents"] and "used twice" in fields["agents[1].name"]
    assert info.value.status_code == 422


def test_no_model_list_refuses_no_model() -> None:
    council = check_council({"agents": [_agent("A", model="anything")]}, known_model=lambda m: None)
    assert council["agents"][0]["model"] == "anything"


def test_field_names_read_like_the_ui_shows_them() -> None:
    assert field_name(("agents", 1, "name")) == "agents[1].name"
    assert field_name(("chairman_model",)) == "chairman_model"
    assert field_name(()) == ""
