"""The error family: what the user can fix versus what is a bug.

The CLI prints a `UserError` as one line (and exits non-zero); anything else is a bug in ctxsynth or
a library and is shown with its traceback and a request to report it. Each subclass also derives
from the builtin it used to be (ValueError, KeyError, ...), so `except ValueError` in a caller keeps
working. `BackendUnavailable` is the infrastructure branch: the endpoint is down, refuses our key, or
does not know the model. It stops a stage without marking it complete, so rerunning the same
command retries exactly the failed work.
"""

from __future__ import annotations

import re

REPORT_HINT = ("this is a bug in ctxsynth, not in your input: please report it with the traceback above, "
               "the command you ran and the output of `ctxsynth --version`")


class UserError(Exception):
    """Bad input the user can fix (config, file, path, missing key). One line, no traceback."""


class ConfigError(UserError, ValueError):
    """A config key, value or combination of values is wrong; the message names the key."""


class InputError(UserError, ValueError):
    """A user-supplied file (seeds, templates, corpus, eval set, mix file) has bad content."""


class PathNotFound(UserError, FileNotFoundError):
    """A path the user named does not exist; the message says what it was resolved against."""


class SeedError(InputError):
    """Bad seed input or configuration; the message names the file, line, field and a fix."""


class RegistryError(UserError, KeyError):
    """An unknown name (backend, task, format, filter, ...) with a "did you mean"."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


class AssetMissing(UserError, FileNotFoundError):
    """An offline asset package (model, data) is not installed; the message gives the pip command."""


class MissingDependency(UserError, ImportError):
    """An optional dependency of the chosen component is not installed; the message says what to install."""


def missing_module(exc: ModuleNotFoundError) -> MissingDependency | None:
    """A third-party module that is not installed, as a MissingDependency naming the ctxsynth extra
    that brings it (from the installed package's metadata) or the module to install; None for a
    ctxsynth module (that is a bug). The name survives a worker process: it is read from the message
    when the pickled exception lost `name`."""
    name = exc.name or (m.group(1) if (m := re.search(r"No module named '([^']+)'", str(exc))) else None)
    if not name:
        return None
    top = name.split(".")[0]
    if top == "ctxsynth":
        return None
    extra = _extra_for(top)
    fix = f"pip install 'ctxsynth[{extra}]'" if extra else f"install the package that provides {top!r}"
    return MissingDependency(f"the library {top!r} is not installed but this run needs it: {fix}")


class OutOfDeviceMemory(UserError, RuntimeError):
    """The GPU ran out of memory: other processes on it, or a setting too large for it."""


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError, or CUDA's "out of memory" from a kernel launch (torch raises that as an
    AcceleratorError, a RuntimeError). By name and message: no torch import where torch is absent."""
    return type(exc).__name__ == "OutOfMemoryError" or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


def out_of_memory(exc: BaseException) -> OutOfDeviceMemory | None:
    """The one-line user error for a device out-of-memory error (None for anything else): what ran out,
    and what to change. It is not a bug: another process on the GPU or a size the card cannot hold."""
    if isinstance(exc, OutOfDeviceMemory):
        return exc
    if not is_out_of_memory(exc):
        return None
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return OutOfDeviceMemory(
        f"out of GPU memory ({first.split('. See documentation')[0][:400]}); if other processes share the GPU, "
        "run fewer at a time (or give an evaluation a smaller model.options.memory_fraction), else lower "
        "data.max_length or the batch size; then rerun the same command (checkpoints and finished shards are kept)")


def _extra_for(module: str) -> str | None:
    """The optional-dependency group of ctxsynth whose requirement provides `module`, if any."""
    import importlib.metadata

    try:
        requires = importlib.metadata.requires("ctxsynth") or []
    except importlib.metadata.PackageNotFoundError:  # run from a source tree (PYTHONPATH=src)
        return None
    for req in requires:
        m = re.match(r"\s*([A-Za-z0-9_.\-]+).*extra\s*==\s*['\"]([^'\"]+)['\"]", req)
        if m and m.group(1).lower().replace("-", "_").replace(".", "_") == module.lower():
            return m.group(2)
    return None


class MissingAPIKeyError(UserError, RuntimeError):
    """The API key's environment variable is unset and the endpoint is not local."""


class BackendUnavailable(UserError):
    """An LLM endpoint cannot serve requests (unreachable, 401/403, unknown model, every request
    failing). Raised to stop a run; the stage stays incomplete so a rerun resumes it."""

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None, cause: str = "outage") -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.cause = cause  # "outage" | "auth" | "not_found" | "rate_limit"
