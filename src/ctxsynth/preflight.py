"""Preflight: check a whole run config before paid work, in seconds (`ctxsynth run`, skipped with
`--no-preflight`).

Only the stages still to run are checked: every model spec they use (backend, option names and
types, the API key), the tokenizer, the input paths (said resolved against what), and one cheap
probe per HTTP endpoint (GET /models: reachable, key accepted, model served). A typo in a backend
name or a bad tokenizer used to surface only after the seeds stage or after synthesis.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ctxsynth.errors import BackendUnavailable, PathNotFound
from ctxsynth.llm.spec import ModelSpec

if TYPE_CHECKING:
    from ctxsynth.runner import Run

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 15.0


def pending_stages(run: Run, force: str | None = None) -> list[str]:
    from ctxsynth.rerun import stages_from

    forced = stages_from(force) if force else []
    return [s for s in run.config.stages if s in forced or not run.markers(s).stage_done()]


def preflight(run: Run, probe: bool = True, force: str | None = None) -> list[str]:
    """Raise a UserError for the first problem; return warnings (as `validate` does)."""
    from ctxsynth.runner import model_specs, validate_run

    warnings = validate_run(run)  # names, options, formats, task files
    pending = pending_stages(run, force)
    specs = {where: spec for where, spec in model_specs(run.config).items()
             if ("synthesize" if where == "llm" else "filter") in pending}
    for where, spec in specs.items():
        spec.check(where, need_key=True)
    _check_paths(run, pending)
    if {"assemble", "export"} & set(pending):
        from ctxsynth.tokenize import load_tokenizer

        load_tokenizer(run.config.assemble.tokenizer)  # a bad tokenizer fails now, not after synthesis
    if {"train", "eval"} & set(pending):
        from ctxsynth.model_stages import preflight_checks

        warnings += preflight_checks(run, pending)  # model and tokenizer paths, eval files, the eval model's key
    if probe:
        probed: set[tuple[str, str]] = set()
        for where, spec in specs.items():
            if spec.key_variable() is not None and (spec.endpoint(), spec.model) not in probed:
                probed.add((spec.endpoint(), spec.model))
                warnings.append(probe_endpoint(spec, where) or "")
    return [w for w in warnings if w and "needs an API key" not in w]


def _resolved(run: Run, value: str, key: str) -> Path:
    path = Path(value)
    full = path if path.is_absolute() else run.base_dir / path
    if not full.exists():
        against = "" if path.is_absolute() else f" (relative paths resolve against the directory you ran from, {run.base_dir})"
        raise PathNotFound(f"{key}: {full} does not exist{against}")
    return full


def _check_paths(run: Run, pending: list[str]) -> None:
    from ctxsynth.seeds.sources import FILE_SOURCES

    c = run.config
    if "seeds" in pending and c.seeds.source in FILE_SOURCES and c.seeds.path:
        _resolved(run, c.seeds.path, "seeds.path")
    if "export" in pending and c.export.mix_path:
        _resolved(run, c.export.mix_path, "export.mix_path")
    if "filter" in pending and c.filters.decontam.enabled:
        for i, path in enumerate(c.filters.decontam.eval_files):
            _resolved(run, path, f"filters.decontam.eval_files[{i}]")


def probe_endpoint(spec: ModelSpec, where: str) -> str | None:
    """One GET /models: the endpoint answers and accepts the key (else BackendUnavailable); a warning
    when it does not list the model."""
    import openai

    endpoint = spec.endpoint()
    key_var = spec.key_variable() or "OPENAI_API_KEY"
    base_url = spec.options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or None
    key = os.environ.get(key_var) or "sk-local-no-key"  # a local server needs none (checked above)
    client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=1, timeout=PROBE_TIMEOUT_S)
    try:
        served = [m.id for m in client.models.list()]
    except openai.AuthenticationError:
        raise BackendUnavailable(f"{where}: {endpoint} refused the API key in {key_var} (HTTP 401) during preflight; "
                                 "check the key", endpoint=endpoint, status=401, cause="auth") from None
    except openai.PermissionDeniedError:
        raise BackendUnavailable(f"{where}: {endpoint} refused the API key in {key_var} (HTTP 403) during preflight; "
                                 "check the key's permissions", endpoint=endpoint, status=403, cause="auth") from None
    except openai.NotFoundError:
        log.info("%s: %s has no /models route; the model is checked by the first request", where, endpoint)
        return None
    except (openai.APIConnectionError, openai.APITimeoutError):
        raise BackendUnavailable(f"{where}: cannot reach {endpoint} during preflight; check that the server is up "
                                 "and base_url is right (or pass --no-preflight)", endpoint=endpoint,
                                 cause="outage") from None
    except openai.APIStatusError as e:
        raise BackendUnavailable(f"{where}: {endpoint} answered HTTP {e.status_code} during preflight; "
                                 "retry later or pass --no-preflight", endpoint=endpoint, status=e.status_code,
                                 cause="outage") from None
    finally:
        client.close()
    if served and spec.model not in served:  # some servers answer any name: the first request decides
        shown = ", ".join(served[:8]) + (", ..." if len(served) > 8 else "")
        return (f"{where}.model: {endpoint} does not list model {spec.model!r} (it lists: {shown}); if the first "
                "request answers 404 the run stops at once")
    return None
