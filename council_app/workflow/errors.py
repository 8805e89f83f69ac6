"""Domain errors of the council steps; the API maps each to one status code."""

from __future__ import annotations


class WorkflowError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class StepConflict(WorkflowError):
    """Another step is running, or the state moved on (409)."""

    status_code = 409
    code = "conflict"


class PrerequisiteMissing(WorkflowError):
    """A step was asked for before the step it needs (400)."""

    status_code = 400
    code = "prerequisite_missing"


class NotReady(WorkflowError):
    """The thing asked for does not exist yet (404)."""

    status_code = 404
    code = "not_found"


class CouncilInvalid(WorkflowError):
    """A council edit failed validation (422); ``extra['errors']`` lists per-field errors."""

    status_code = 422
    code = "validation_error"


class UpstreamFailed(WorkflowError):
    """The LLM provider failed after its retries (502)."""

    status_code = 502
    code = "llm_provider_error"
