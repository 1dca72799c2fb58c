"""Run evaluation items through a backend and write the results of one run.

Greedy decoding (temperature 0), the user prompt sent as one chat message (the backend applies the
model's chat template), each prompt first fitted to the model window exactly in tokens
(ctxsynth.eval.truncation). Batching and concurrency belong to the backend; pass a
`CachedBackend` (or `cache=`) and a rerun only sends what is missing.

A run folder holds predictions.jsonl (one row per item: id, prediction, references, score, prompt
token count, truncated tokens, ...), scores.json (ctxsynth.eval.scores.summarize plus run facts),
scores.md (the markdown tables), plots/niah_<variant>.png when the items form a NIAH grid, and
longbench_pred/<task>.jsonl (LongBench's prediction format, for `ctxsynth score` or LongBench's
eval.py) for LongBench items prompted in official mode.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctxsynth import io
from ctxsynth.errors import ConfigError
from ctxsynth.eval import metrics, plots, scores, tables
from ctxsynth.eval.longbench_official import truncate_middle
from ctxsynth.eval.longbench_score import write_prediction_files
from ctxsynth.eval.truncation import FittedPrompt, Truncation, fit_prompts
from ctxsynth.llm.base import RAW_ROLE, Backend, ChatRequest, ChatResult, SamplingParams
from ctxsynth.llm.cache import CachedBackend, RequestCache
from ctxsynth.progress import NullProgress, Progress
from ctxsynth.records import EvalItem
from ctxsynth.tokenize import Tokenizer, load_tokenizer, shared_encodings

log = logging.getLogger(__name__)


def is_official(item: EvalItem) -> bool:
    return item.meta.get("prompting") == "official"


def _fit_all(items: Sequence[EvalItem], tokenizer: Tokenizer | None, max_model_len: int | None,
             truncation: Truncation, official_max_length: int | None) -> list[FittedPrompt | None]:
    """Fit each prompt: LongBench's middle cut to `official_max_length` for official items, none for
    items built to fit the window (meta fitted: RULER's), our exact fit of the rendered chat plus
    the output budget for the rest."""
    official = [is_official(item) for item in items]
    if any(official) and (official_max_length is None or not hasattr(tokenizer, "hf")):
        raise ValueError("LongBench's official mode needs the model's Hugging Face tokenizer (model.tokenizer) "
                         "and a maximum length (longbench_max_length or model.max_model_len)")
    if tokenizer is None:
        if max_model_len is not None and truncation != "none":
            raise ConfigError("truncation to max_model_len needs the model's tokenizer")
        return [None] * len(items)
    out: list[FittedPrompt | None] = [None] * len(items)
    prefitted = [k for k, item in enumerate(items) if not official[k] and item.meta.get("fitted")]
    rest = [k for k, item in enumerate(items) if not official[k] and not item.meta.get("fitted")]
    for k, ids in zip(prefitted, tokenizer.encode_batch([items[k].prompt for k in prefitted]), strict=True):
        out[k] = FittedPrompt(items[k].prompt, len(ids), 0)
    fits = fit_prompts([items[k].prompt for k in rest], tokenizer, max_model_len=max_model_len,
                       max_new_tokens=[items[k].max_new_tokens for k in rest], truncation=truncation)
    for k, fit in zip(rest, fits, strict=True):
        out[k] = fit
    for k, item in enumerate(items):
        if official[k]:
            out[k] = truncate_middle(tokenizer.hf, item.prompt, official_max_length)  # type: ignore[attr-defined,arg-type]
    return out


def prepare_requests(items: Sequence[EvalItem], tokenizer: Tokenizer | None, max_model_len: int | None,
                     truncation: Truncation = "middle", system_prompt: str | None = None,
                     official_max_length: int | None = None) -> tuple[list[FittedPrompt | None], list[ChatRequest]]:
    """Each item's fitted prompt and its greedy request, as `evaluate` sends them."""
    fitted = _fit_all(items, tokenizer, max_model_len, truncation, official_max_length or max_model_len)
    return fitted, [_request(item, fit, system_prompt) for item, fit in zip(items, fitted, strict=True)]


def _request(item: EvalItem, fit: FittedPrompt | None, system_prompt: str | None) -> ChatRequest:
    """Greedy request of one item; official items without the chat format go as plain text."""
    prompt = fit.prompt if fit else item.prompt
    params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=item.max_new_tokens, seed=0)
    if item.meta.get("chat") is False:
        return ChatRequest(messages=[{"role": RAW_ROLE, "content": prompt}], params=params, id=item.id)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt and not is_official(item) else []
    messages.append({"role": "user", "content": prompt})
    return ChatRequest(messages=messages, params=params, id=item.id)


def _check_raw_support(items: Sequence[EvalItem], backend: Backend) -> None:
    raw_tasks = sorted({item.task for item in items if item.meta.get("chat") is False})
    if raw_tasks and not backend.raw_prompts:
        raise ValueError(
            f"this eval sends {', '.join(raw_tasks)} as plain text without the chat template (LongBench's official "
            f"mode; RULER, whose prompts carry their own template), which the {backend.name} backend cannot do (it "
            "only takes chat messages); use the transformers backend for these tasks or leave them out")


def prediction_row(item: EvalItem, fitted: FittedPrompt | None, result: ChatResult) -> dict[str, Any]:
    text = result.text or ""
    scored = text.lstrip("\n").split("\n")[0] if item.meta.get("first_line") else text
    return {
        "id": item.id,
        "task": item.task,
        "metric": item.metric,
        "prediction": text,
        "references": list(item.answers),
        "score": metrics.score(item.metric, scored, item.answers, item.meta) if result.answered else 0.0,  # a reply cut at max_new_tokens is scored as is
        "prompt_tokens": fitted.prompt_tokens if fitted else result.usage.get("prompt_tokens"),
        "truncated_tokens": fitted.truncated_tokens if fitted else 0,
        "backend_prompt_tokens": result.usage.get("prompt_tokens"),  # as the backend counted them
        "completion_tokens": result.usage.get("completion_tokens"),
        "finish_reason": result.finish_reason,
        "error": result.error,
        "cached": result.cached,
        "meta": item.meta,
    }


def _run_facts(backend: Backend, tokenizer: Tokenizer | None, max_model_len: int | None,
               truncation: str, rows: Sequence[dict[str, Any]], seconds: float) -> dict[str, Any]:
    prompting = sorted({str(r["meta"]["prompting"]) for r in rows if r["meta"].get("prompting")})
    return {
        "longbench_prompting": prompting,  # "official" and/or "ctxsynth" (our wording)
        "backend": backend.identity(),
        "tokenizer": tokenizer.name if tokenizer else None,
        "max_model_len": max_model_len,
        "truncation": truncation,
        "decoding": "greedy (temperature 0)",
        "wall_seconds": round(seconds, 2),
        "n_errors": sum(1 for r in rows if r["error"]),
        "n_truncated": sum(1 for r in rows if r["truncated_tokens"]),
        "n_cached": sum(1 for r in rows if r["cached"]),
        "heldout": sorted({str(r["meta"]["heldout"]) for r in rows if r["meta"].get("heldout")}),
    }


def write_run(out_dir: Path, rows: Sequence[dict[str, Any]], run: dict[str, Any], name: str) -> dict[str, Any]:
    """Write predictions, scores and tables (and NIAH heatmaps) of one run; returns the scores."""
    summary = scores.summarize(rows)
    summary["run"] = {"name": name, **run}
    io.write_jsonl(out_dir / "predictions.jsonl", rows)
    io.atomic_write_text(out_dir / "scores.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    text = tables.markdown({name: summary}, title=f"Evaluation: {name}")
    for note in summary["run"]["heldout"]:
        text += f"\nHeld-out: {note}\n"
    io.atomic_write_text(out_dir / "scores.md", text)
    if summary.get("niah"):
        plots.run_plots(summary["niah"], out_dir / "plots", name)
    write_prediction_files(rows, out_dir / "longbench_pred")  # official mode: pred.py's files for eval.py
    return summary


def evaluate(
    items: Sequence[EvalItem],
    backend: Backend,
    *,
    tokenizer: Tokenizer | str | None,
    max_model_len: int | None,
    truncation: Truncation = "middle",
    out_dir: Path,
    name: str | None = None,
    system_prompt: str | None = None,
    cache: Path | None = None,
    progress: Progress | None = None,
    official_max_length: int | None = None,
) -> dict[str, Any]:
    """Generate greedily for every item, score, and write the run folder; returns scores.json's dict.

    `tokenizer` (the model's, or a spec for load_tokenizer) is needed to count and truncate prompts;
    without it prompts are sent as they are. `system_prompt`, when set, is sent before every user
    message (it is not counted by the truncation, so leave room for it in max_model_len). `cache`
    (an SQLite path) puts the request cache under the backend here. LongBench items in official
    mode (meta prompting "official") follow LongBench's pred.py: cut in the middle to
    `official_max_length` tokens (default `max_model_len`) with nothing reserved, no system prompt,
    and plain text without the chat template where meta chat is False.
    """
    _check_raw_support(items, backend)
    if cache is not None:
        backend = CachedBackend(backend, RequestCache(Path(cache)))
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    out_dir = Path(out_dir)
    started = time.monotonic()
    progress = progress or NullProgress()
    # a backend that tokenizes locally takes the ids the fit measured (same tokenizer, same text); for the
    # others nothing is kept (the ids of every prompt would only hold memory)
    with shared_encodings() if backend.reuses_prompt_ids else contextlib.nullcontext():
        fitted, requests = prepare_requests(items, tok, max_model_len, truncation, system_prompt,
                                            official_max_length or max_model_len)
        n_cut = sum(1 for f in fitted if f and f.truncated_tokens)
        log.info("evaluating %d items (%d truncated) with %s", len(items), n_cut, backend.identity())
        progress.start(f"eval {name or out_dir.name}", len(requests))
        try:
            results = backend.generate(requests, on_result=lambda i, r: progress.advance())
        finally:
            progress.finish()
    rows = [prediction_row(item, fit, res) for item, fit, res in zip(items, fitted, results, strict=True)]
    for row in rows:
        if row["error"]:
            log.warning("item %s failed: %s", row["id"], row["error"])
    run = _run_facts(backend, tok, max_model_len, truncation, rows, time.monotonic() - started)
    return write_run(out_dir, rows, run, name or out_dir.name)
