"""The error family: what the user can fix versus what is a bug.

The CLI prints a `UserError` as one line (and exits non-zero); anything else is a bug in ctxsynth or
a library and is shown with its traceback. `BackendUnavailable` is the infrastructure branch: the
endpoint is down, refuses our key, or does not know the model. It stops a stage without marking it
complete, so rerunning the same command retries exactly the failed work.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input the user can fix (config, file, path, missing key). One line, no traceback."""


class BackendUnavailable(UserError):
    """An LLM endpoint cannot serve requests (unreachable, 401/403, unknown model, every request
    failing). Raised to stop a run; the stage stays incomplete so a rerun resumes it."""

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None, cause: str = "outage") -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.cause = cause  # "outage" | "auth" | "not_found" | "rate_limit"
