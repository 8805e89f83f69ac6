"""Validation of a council edited by a person (PUT /council)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from council_app.domain import EFFORTS
from council_app.workflow.errors import CouncilInvalid, WorkflowError

MAX_AGENTS = 12  # default of COUNCIL_MAX_AGENTS (settings.py)
MAX_PERSONA_CHARS = 4000
MAX_NAME_CHARS = 100


def validate_council(
    payload: Any,
    max_agents: int = MAX_AGENTS,
    known_model: Callable[[str], bool | None] | None = None,
) -> dict[str, Any]:
    """A clean council config, or ``CouncilInvalid`` (422) listing every field at fault.

    Wrong JSON types at the top level are a 400 (the body is not a council at all).
    ``known_model`` (the provider's model list, ``providers/models.py``) refuses a model the
    provider does not serve; it answers None when no list is available, which refuses nothing.
    """
    if not isinstance(payload, dict):
        raise WorkflowError("The body must be a JSON object with an 'agents' list")
    agents = payload.get("agents")
    if not isinstance(agents, list):
        raise WorkflowError("'agents' must be a list of agent objects")
    for key in ("council_name", "strategy_summary"):
        if key in payload and payload[key] is not None and not isinstance(payload[key], str):
            raise WorkflowError(f"'{key}' must be a string")
    errors: list[dict[str, str]] = []
    if not 1 <= len(agents) <= max_agents:
        errors.append(
            {
                "field": "agents",
                "message": f"A council has 1 to {max_agents} agents, not {len(agents)}",
            }
        )
    clean: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, agent in enumerate(agents):
        where = f"agents[{i}]"
        if not isinstance(agent, dict):
            errors.append({"field": where, "message": "Each agent must be an object"})
            continue
        name = agent.get("name")
        persona = agent.get("persona")
        effort = agent.get("reasoning_effort", "medium")
        web = agent.get("enable_web_search", False)
        model = agent.get("model")
        if not isinstance(name, str) or not name.strip():
            errors.append({"field": f"{where}.name", "message": "Name must be a non-empty string"})
        elif len(name.strip()) > MAX_NAME_CHARS:
            errors.append(
                {"field": f"{where}.name", "message": f"Name is over {MAX_NAME_CHARS} characters"}
            )
        elif name.strip().casefold() in seen:
            errors.append(
                {"field": f"{where}.name", "message": f"Name '{name.strip()}' is used twice"}
            )
        else:
            seen.add(name.strip().casefold())
        if not isinstance(persona, str) or not persona.strip():
            errors.append(
                {"field": f"{where}.persona", "message": "Persona must be a non-empty string"}
            )
        elif len(persona.strip()) > MAX_PERSONA_CHARS:
            errors.append(
                {
                    "field": f"{where}.persona",
                    "message": f"Persona is {len(persona.strip())} characters; the limit is "
                    f"{MAX_PERSONA_CHARS}",
                }
            )
        if effort is None:
            effort = "medium"
        if effort not in EFFORTS:
            errors.append(
                {
                    "field": f"{where}.reasoning_effort",
                    "message": f"Reasoning effort must be one of {', '.join(EFFORTS)}",
                }
            )
        if not isinstance(web, bool):
            errors.append(
                {"field": f"{where}.enable_web_search", "message": "Must be true or false"}
            )
        if model is not None and (not isinstance(model, str) or not model.strip()):
            errors.append(
                {"field": f"{where}.model", "message": "Model must be a non-empty string"}
            )
        elif isinstance(model, str):
            _check_served(model.strip(), f"{where}.model", known_model, errors)
        if isinstance(name, str) and isinstance(persona, str):
            entry = {
                "name": name.strip(),
                "persona": persona.strip(),
                "reasoning_effort": effort,
                "enable_web_search": web,
            }
            if isinstance(model, str) and model.strip():
                entry["model"] = model.strip()
            clean.append(entry)
    chairman = payload.get("chairman_model")
    if chairman is not None and (not isinstance(chairman, str) or not chairman.strip()):
        errors.append(
            {"field": "chairman_model", "message": "Model must be a non-empty string or null"}
        )
    elif isinstance(chairman, str):
        _check_served(chairman.strip(), "chairman_model", known_model, errors)
    if errors:
        raise CouncilInvalid(
            f"The council has {len(errors)} problem(s): "
            + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            errors=errors,
        )
    council: dict[str, Any] = {"agents": clean}
    for key in ("council_name", "strategy_summary"):
        if isinstance(payload.get(key), str):
            council[key] = payload[key].strip()
    if isinstance(chairman, str):
        council["chairman_model"] = chairman.strip()  # this session's chairman
    return council


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
