"""A council edited by a person (PUT /council), described once as pydantic models.

The models hold the shape and the fixed limits (and so also give the OpenAPI document its
schema); ``check_council`` adds the rules that depend on the deployment: the agent cap
(COUNCIL_MAX_AGENTS), unique names, and the models the provider serves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, ValidationError

from council_app.domain import ReasoningEffort
from council_app.workflow.errors import CouncilInvalid, WorkflowError

MAX_AGENTS = 12  # default of COUNCIL_MAX_AGENTS (settings.py)
MAX_PERSONA_CHARS = 4000
MAX_NAME_CHARS = 100

# Leading and trailing blanks are dropped before the length is checked (as before).
Name = Annotated[
    str,
    StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=MAX_NAME_CHARS),
]
Persona = Annotated[
    str,
    StringConstraints(
        strict=True, strip_whitespace=True, min_length=1, max_length=MAX_PERSONA_CHARS
    ),
]
ModelName = Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1)]
Text = Annotated[str, StringConstraints(strict=True, strip_whitespace=True)]

# Errors on these top-level members mean the body is not a council at all: 400, not 422.
_NOT_A_COUNCIL = {(), ("agents",), ("council_name",), ("strategy_summary",)}
_SHAPE_ERRORS = ("model_type", "model_attributes_type", "list_type", "string_type", "missing")


class Agent(BaseModel):
    """One council member; unknown members are ignored (old clients send extra keys)."""

    name: Name
    persona: Persona
    reasoning_effort: ReasoningEffort | None = Field(
        default=ReasoningEffort.MEDIUM, description="null means medium"
    )
    enable_web_search: StrictBool = False
    model: ModelName | None = Field(
        default=None, description="This member's model (GET /api/models); null: the default"
    )


class Council(BaseModel):
    """A council as PUT /council takes it and as the steps answer it."""

    model_config = ConfigDict(json_schema_extra={"description": "A council of personas"})

    council_name: Text | None = None
    strategy_summary: Text | None = None
    chairman_model: ModelName | None = Field(
        default=None, description="This session's chairman (GET /api/models); null: the default"
    )
    # The cap is COUNCIL_MAX_AGENTS (check_council; the document shows this deployment's).
    agents: list[Agent] = Field(min_length=1)


def field_name(loc: tuple[int | str, ...]) -> str:
    """``("agents", 1, "name")`` -> ``agents[1].name``, the field names the UI shows."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: Any) -> str:
    """pydantic's words for the common mistakes, said the way the UI shows them."""
    kind, ctx, given = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "string_too_short":
        return "Must not be empty"
    if kind == "string_too_long" and isinstance(given, str):
        return f"Is {len(given.strip())} characters; the limit is {ctx.get('max_length')}"
    if kind == "enum":
        return f"Must be one of {ctx.get('expected')}"
    if kind == "bool_type":
        return "Must be true or false"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "Must be an object"
    if kind == "missing":
        return "Is required"
    if kind == "too_short" and tuple(error["loc"]) == ("agents",):
        return "A council has at least 1 agent"
    return str(error["msg"]).removeprefix("Value error, ")  # a validator's own words


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """Per-field errors in the shape the 422 has always carried: ``{field, message}``."""
    return [
        {"field": field_name(e["loc"]) or "body", "message": _message(e)}
        for e in error.errors(include_url=False)
    ]


def refuse(error: ValidationError) -> WorkflowError:
    """400 when the body is not a council at all, else 422 listing every field at fault."""
    for e in error.errors(include_url=False):
        if tuple(e["loc"]) in _NOT_A_COUNCIL and e["type"] in _SHAPE_ERRORS:
            where = field_name(e["loc"]) or "body"
            return WorkflowError(
                f"The body must be a JSON object with an 'agents' list ({where}: {_message(e)})"
            )
    return invalid(field_errors(error))


def invalid(errors: list[dict[str, str]]) -> CouncilInvalid:
    return CouncilInvalid(
        f"The council has {len(errors)} problem(s): "
        + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
        errors=errors,
    )


def parse_council(payload: Any) -> Council:
    """The shape check alone (what the API door runs); raises as ``refuse`` says."""
    if isinstance(payload, Council):
        return payload
    try:
        return Council.model_validate(payload)
    except ValidationError as e:
        raise refuse(e) from None


def check_council(
    payload: Any,
    max_agents: int = MAX_AGENTS,
    known_model: Callable[[str], bool | None] | None = None,
) -> dict[str, Any]:
    """A clean council config, or ``CouncilInvalid`` (422) listing every field at fault.

    ``known_model`` (the provider's model list, ``providers/models.py``) refuses a model the
    provider does not serve; it answers None when no list is available, which refuses nothing.
    """
    council = parse_council(payload)
    errors: list[dict[str, str]] = []
    if len(council.agents) > max_agents:
        errors.append(
            {
                "field": "agents",
                "message": f"A council has 1 to {max_agents} agents, not {len(council.agents)}",
            }
        )
    seen: set[str] = set()
    for i, agent in enumerate(council.agents):
        key = agent.name.casefold()
        if key in seen:
            errors.append(
                {"field": f"agents[{i}].name", "message": f"Name '{agent.name}' is used twice"}
            )
        seen.add(key)
        if agent.model is not None:
            _check_served(agent.model, f"agents[{i}].model", known_model, errors)
    if council.chairman_model is not None:
        _check_served(council.chairman_model, "chairman_model", known_model, errors)
    if errors:
        raise invalid(errors)
    clean: dict[str, Any] = council.model_dump(mode="json", exclude_none=True)
    for agent in clean["agents"]:
        agent.setdefault("reasoning_effort", ReasoningEffort.MEDIUM.value)  # null: medium
    return clean


def _check_served(
    model: str,
    field: str,
    known_model: Callable[[str], bool | None] | None,
    errors: list[dict[str, str]],
) -> None:
    if known_model is not None and known_model(model) is False:
        errors.append(
            {
                "field": field,
                "message": f"Model '{model}' is not served by the provider; GET /api/models "
                "lists the ones that are",
            }
        )
