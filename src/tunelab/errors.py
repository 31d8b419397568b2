"""One error type for the whole studio.

Every failure a user can cause or fix is a ``TunelabError`` carrying a stable
``code``, a ``message`` saying what was wrong and a ``hint`` saying how to fix
it. The CLI prints message and hint; the API answers
``{"error": {"code", "message", "hint"}}`` with the status from ``HTTP_STATUS``.
"""

from __future__ import annotations

from typing import Any


class TunelabError(Exception):
    """A failure with a code, a message and a hint for the user."""

    code: str = "error"

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.details:
            body["details"] = self.details
        return body

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InvalidInput(TunelabError):
    code = "invalid_input"


class NotFound(TunelabError):
    code = "not_found"


class Conflict(TunelabError):
    code = "conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class Unauthorized(TunelabError):
    code = "unauthorized"


class Forbidden(TunelabError):
    code = "forbidden"


class PayloadTooLarge(TunelabError):
    code = "payload_too_large"


class DatasetError(InvalidInput):
    code = "dataset_invalid"


class ModelUnavailable(TunelabError):
    code = "model_unavailable"


class PreflightFailed(InvalidInput):
    code = "preflight_failed"


class ConfigError(InvalidInput):
    code = "config_invalid"


class DatabaseUnavailable(TunelabError):
    """The store cannot be opened: a wrong URL, a server that is down, a missing folder."""

    code = "database_unavailable"


class DatabaseBusy(DatabaseUnavailable):
    """No store connection came free in time (every pooled connection in use): retry shortly."""

    code = "database_busy"


class HomeUnwritable(TunelabError):
    """The tunelab home (or a folder in it) cannot be created or written: set TUNELAB_HOME elsewhere."""

    code = "home_unwritable"


class ServiceUnhealthy(TunelabError):
    """``/api/health`` found a part of the service down (an embedded worker gone or stalled)."""

    code = "unhealthy"


class PromptTooLong(TunelabError):
    """A chat prompt longer than the model's context or the server's cap (400, with the numbers)."""

    code = "prompt_too_long"


class ModelBusy(TunelabError):
    """Every place in a model's chat queue is taken: 503, retry after ``Retry-After``."""

    code = "model_busy"


class DiskFull(TunelabError):
    """Not enough disk for a checkpoint or the output (checked before the write, or ENOSPC during it)."""

    code = "disk_full"


HTTP_STATUS: dict[str, int] = {
    "error": 500,
    "invalid_input": 422,
    "dataset_invalid": 422,
    "config_invalid": 422,
    "preflight_failed": 422,
    "not_found": 404,
    "conflict": 409,
    "illegal_transition": 409,
    "unauthorized": 401,
    "forbidden": 403,
    "payload_too_large": 413,
    "file_too_large": 413,
    "model_unavailable": 424,
    "prompt_too_long": 400,
    "model_busy": 503,
    "disk_full": 507,
    "database_unavailable": 503,
    "database_busy": 503,
    "home_unwritable": 503,
    "storage_unavailable": 503,
    "unhealthy": 503,
}


def http_status(error: TunelabError) -> int:
    """The HTTP status for an error, by code, then by class, then 500."""
    if error.code in HTTP_STATUS:
        return HTTP_STATUS[error.code]
    for cls in type(error).__mro__:
        code = getattr(cls, "code", None)
        if code in HTTP_STATUS:
            return HTTP_STATUS[code]
    return 500
