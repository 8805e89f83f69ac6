"""Every request and response body of the API, once, as pydantic models.

``api/contract.py`` hands them to spectree, which validates requests with them and writes
/api/openapi.json from them.  Responses are described, not re-validated at run time: the
tests and schemathesis hold the answers to these shapes.  Schemas are loose where the
workflow stores free-form model output, strict where clients rely on a shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    model_validator,
)

from council_app.domain import MemberState
from council_app.settings import parse_bool
from council_app.workflow.council_input import Agent, Council

__all__ = ["Agent", "Council"]  # the council's models live with its rules

MAX_QUESTION_CHARS = 20_000
MAX_CURSOR_CHARS = 400
MAX_SEARCH_CHARS = 200


# -- query parameters (models named *Query: a refusal is a 400 naming the parameter) --------


def _flag(raw: Any) -> Any:
    """true/false, 1/0, yes/no, on/off in any case; absent or empty is false."""
    if isinstance(raw, bool):
        return raw
    if raw is None or raw == "":
        return False
    value = parse_bool(str(raw))
    if value is None:
        raise ValueError("must be true or false")
    return value


def _whole(raw: Any) -> Any:
    """ASCII digits only: pydantic would also take "1_000", " 5", "+5" and "1.0"."""
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        return int(raw)
    raise ValueError("must be a whole number")


Flag = Annotated[bool, BeforeValidator(_flag)]
Whole = Annotated[int, BeforeValidator(_whole)]


class ForceQuery(BaseModel):
    force: Flag = Field(False, description="Run again even if it already ran")


def _blank_is_none(raw: Any) -> Any:
    return None if raw == "" else raw


class RunQuery(ForceQuery):
    retry: Annotated[Literal["failed"] | None, BeforeValidator(_blank_is_none)] = Field(
        None,
        description="failed: ask only the members whose last answer failed; the others keep "
        "their answers and cost (status nothing_to_retry when none failed; not with force)",
    )

    @model_validator(mode="after")
    def _one_or_the_other(self) -> RunQuery:
        if self.force and self.retry:
            raise ValueError("Use either force (everyone again) or retry=failed, not both")
        return self


class DeleteQuery(BaseModel):
    hard: Flag = Field(False, description="Also remove the stored state and files")


class ListQuery(BaseModel):
    limit: Whole = Field(50, ge=1, le=500, description="Page size")
    offset: Whole = Field(0, ge=0, le=10_000_000, description="Skip (old clients; prefer cursor)")
    cursor: str | None = Field(
        None,
        max_length=MAX_CURSOR_CHARS,
        description="next_cursor of the previous page (opaque); not with offset",
    )
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_SEARCH_CHARS)] = (
        Field("", description="Only sessions whose question contains this (case-insensitive)")
    )

    @model_validator(mode="after")
    def _one_way_to_page(self) -> ListQuery:
        if self.cursor and self.offset:
            raise ValueError("Give either 'cursor' or 'offset', not both")
        return self


class LogsQuery(BaseModel):
    limit: Whole = Field(1000, ge=1, le=100_000, description="Keep the last N entries")


class ModelsQuery(BaseModel):
    # Lenient, as it has always been: anything but a true word means "use the cache".
    refresh: Annotated[bool, BeforeValidator(lambda raw: parse_bool(str(raw)) is True)] = Field(
        False, description="Ask the provider again instead of the cache"
    )


# -- request bodies -------------------------------------------------------------------


class CreateSessionForm(BaseModel):
    """multipart/form-data (with files) or urlencoded (fields only)."""

    question: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION_CHARS)
    ]
    # Read by the view from request.files; described here for the document.
    files: Any = Field(
        default_factory=list,
        json_schema_extra={"type": "array", "items": {"type": "string", "format": "binary"}},
    )
    follow_up_of: str | None = Field(
        None,
        description="A session of yours whose question, verdict and uploads the new one "
        "carries as context",
    )


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _absent_or_object() -> Any:
    """A member that may be left out but, when sent, is an object (never null)."""
    return Field(default=None, validate_default=False, json_schema_extra=_no_default)


class ProgressPatch(BaseModel):
    """Hot keys of a session, deep-merged into what it holds."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    execution_status: dict[str, Any] = _absent_or_object()
    review_status: dict[str, Any] = _absent_or_object()
    progress: dict[str, Any] = _absent_or_object()

    @model_validator(mode="before")
    @classmethod
    def _not_empty(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data:
            raise ValueError("The body must be a non-empty JSON object")
        return data


# -- responses --------------------------------------------------------------------------


class FieldError(BaseModel):
    field: str
    message: str


class Error(BaseModel):
    """Every error: ``error`` a code such as not_found, ``message`` for people, ``detail``
    the same text (FastAPI-style clients); a 422 also lists ``errors`` per field."""

    error: str = Field(description="Machine-readable code, e.g. not_found")
    message: str = Field(description="Human-readable explanation")
    detail: str | None = Field(None, description="Same as message (FastAPI-style clients)")
    errors: list[FieldError] | None = None


class ContextFile(BaseModel):
    filename: str
    extension: str
    size_bytes: int


class SessionCreated(BaseModel):
    session_id: str
    status: str = Field(description="idle: created, no step run yet")
    question: str
    follow_up_of: str | None = Field(None, description="the session this one follows up")
    context_files: list[ContextFile]


class SessionListItem(BaseModel):
    session_id: str
    question: str | None = None
    current_step: str | None
    status: str | None
    created_at: str | None = None
    updated_at: str | None = None
    last_cost_usd: float | None = None
    last_total_tokens: int | None = None


class SessionList(BaseModel):
    sessions: list[SessionListItem]
    limit: int
    offset: int
    next_cursor: str | None = None


class RunStarted(BaseModel):
    status: str = Field(description="accepted (started now) or a word saying why nothing started")


class Member(BaseModel):
    state: MemberState
    text: str | None = None
    preview: str | None = None


class StepProgress(BaseModel):
    execution: Any = None
    review: Any = None


class Status(BaseModel):
    status: str | None
    current_step: str | None
    execution_status: dict[str, Any]
    review_status: dict[str, Any]
    execution_error: Any = None
    review_error: Any = None
    progress: StepProgress
    tokens: dict[str, Any] | None = None
    members: dict[str, dict[str, Member]] = Field(
        default_factory=dict,
        description="Per step (build/execute/review/synthesize), per member: {state, text, "
        "preview}; state is one of " + ", ".join(MemberState),
    )


class Reviews(BaseModel):
    reviews: list[Any]
    aggregated_scores: dict[str, Any]


class Verdict(BaseModel):
    verdict: str | None


class Summary(BaseModel):
    session_id: str
    question: str
    status: str | None
    current_step: str | None
    council_config: dict[str, Any] | None = None
    execution_results: Any = None
    peer_reviews: Any = None
    aggregated_scores: Any = None
    chairman_verdict: str | None = None
    follow_up_of: str | None = None
    follow_ups: list[str] | None = None
    tokens: dict[str, Any] | None = None
    provider: str


class Logs(BaseModel):
    logs: list[dict[str, Any]]


class Deleted(BaseModel):
    session_id: str
    deleted: bool
    hard: bool


class Accepted(BaseModel):
    status: Literal["accepted"]


class DatabaseCheck(BaseModel):
    ok: bool
    latency_ms: float | None = None
    error: str | None = None


class Health(BaseModel):
    """Only ``status`` when OPS_TOKEN / OPS_BIND restrict the detail."""

    status: Literal["ok", "unavailable"]
    backend: str | None = None
    database_url: str | None = None
    database: DatabaseCheck | None = None
    provider: dict[str, Any] | None = Field(
        None, description="{name, offline, base_url, hint, web_search: {available, via}}"
    )
    flusher: dict[str, Any] | None = None


class Me(BaseModel):
    user: str
    auth_mode: str
    day: str | None = Field(None, json_schema_extra={"format": "date"})
    spent_today_usd: float
    daily_budget_usd: float | None
    remaining_usd: float | None = None
    resets_at: str = Field(json_schema_extra={"format": "date-time"})


class WebSearch(BaseModel):
    available: bool
    via: str | None = None


class ProviderInfo(BaseModel):
    name: str
    offline: bool
    base_url: str | None = None
    hint: str | None = None
    web_search: WebSearch


class ModelList(BaseModel):
    models: list[str] | None
    available: bool
    fetched_at: str | None = Field(None, json_schema_extra={"format": "date-time"})
    source: Literal["provider", "offline", "unavailable"] | None = None
    error: str | None = None
    default_model: str
    default_chairman_model: str | None = None
    provider: ProviderInfo


class OpenApiDocument(BaseModel):
    openapi: str
    paths: dict[str, Any]


class Results(RootModel[dict[str, Any]]):
    """The council's answers as the workflow stored them (free-form model output)."""
