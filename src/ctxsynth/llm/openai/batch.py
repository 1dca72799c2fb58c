"""The `openai-batch` backend: the provider's Batch API (half the price, results within 24 h).

All requests of a `generate` call go into one or more batch files (at most `max_batch_requests`
lines each). A line's `custom_id` is a hash of its request body, so results are matched by id,
never by order, and two identical requests travel once. Each submitted batch is written to a small
state file (under `state_dir`, keyed by the model and the set of ids) before polling starts: a
process killed while waiting resumes polling the same batch when it is run again with the same
requests, instead of paying for a second batch. The state file goes once the results are read.

A batch that failed or was cancelled is submitted again; lines missing from an expired batch, and
lines in its error file, come back as failed results (a rerun sends only those, since answers are
cached). If `max_wait_s` passes first, every request of the unfinished batch fails with a message
naming the batch id, and the state stays for the next run. Leave `max_wait_s` unset (wait until
the batch ends) inside `ctxsynth run`: there a failed request counts as a failed synthesis attempt,
which may be regenerated with a new seed, i.e. in a new batch. To stop waiting, stop the process:
the rerun resumes the same batch.

Options and the API key come as in the `openai` backend (key from the environment only; a local
server needs none); `poll_interval_s` sets how often the batch status is read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctxsynth.errors import ConfigError
from ctxsynth.llm.base import Backend, ChatRequest, ChatResult, ResultCallback
from ctxsynth.llm.openai.backend import OpenAIBackend
from ctxsynth.llm.openai.replies import Failure, scrub, to_result

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


class OpenAIBatchBackend(OpenAIBackend):
    """Chat completions through the Batch API; see the module docstring."""

    name = "openai-batch"
    batch = True  # answers within the completion window, not as they are generated

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        poll_interval_s: float = 30.0,
        max_wait_s: float | None = None,
        completion_window: str = "24h",
        max_batch_requests: int = 50_000,
        state_dir: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 6,
        extra_body: dict[str, Any] | None = None,
        max_tokens_field: str = "max_tokens",
    ) -> None:
        super().__init__(model, base_url=base_url, api_key_env=api_key_env, timeout_s=timeout_s,
                         max_retries=max_retries, extra_body=extra_body, max_tokens_field=max_tokens_field)
        if poll_interval_s <= 0 or max_batch_requests < 1:
            raise ConfigError("need poll_interval_s > 0 and max_batch_requests >= 1")
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s
        self.completion_window = completion_window
        self.max_batch_requests = max_batch_requests
        if state_dir is None:
            from ctxsynth.models import cache_root

            state_dir = str(cache_root() / "batches")
        self.state_dir = Path(state_dir)

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The chat-completions body of one request (what the openai backend sends, as JSON)."""
        return {"model": self.model, "messages": list(request.messages), **self.sampling_fields(request),
                **self.extra_body}

    stream = Backend.stream  # one batch per round of queued requests, not the openai backend's streaming

    def generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None) -> list[ChatResult]:
        if not requests:
            return []
        key = self._api_key()
        import openai

        client = openai.OpenAI(api_key=key, base_url=self._base_url(), max_retries=self.max_retries,
                               timeout=self.timeout_s)
        bodies: dict[str, dict[str, Any]] = {}
        owners: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            body = self.body(request)
            custom_id = "r-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
            bodies[custom_id] = body
            owners.setdefault(custom_id, []).append(i)
        results: list[ChatResult | None] = [None] * len(requests)
        ids = list(bodies)
        for start in range(0, len(ids), self.max_batch_requests):
            chunk = ids[start:start + self.max_batch_requests]
            try:
                answers = self._run_batch(client, {c: bodies[c] for c in chunk})
            except Exception as exc:  # the batch as a whole broke: each of its requests says why
                reason = scrub(f"batch: {type(exc).__name__}: {exc}", key)[:500]
                answers = {c: ChatResult(None, None, error=reason) for c in chunk}
            for custom_id in chunk:
                for i in owners[custom_id]:
                    results[i] = answers[custom_id]
                    if on_result is not None:
                        on_result(i, answers[custom_id])
        return [r if r is not None else ChatResult(None, None, error="no result") for r in results]

    def _state_file(self, ids: Sequence[str]) -> Path:
        digest = hashlib.sha256("\n".join([self.model, *sorted(ids)]).encode()).hexdigest()[:24]
        return self.state_dir / f"{digest}.json"

    def _run_batch(self, client: Any, bodies: dict[str, dict[str, Any]]) -> dict[str, ChatResult]:
        state_file = self._state_file(list(bodies))
        batch = None
        if state_file.exists():
            batch_id = json.loads(state_file.read_text(encoding="utf-8"))["batch_id"]
            batch = client.batches.retrieve(batch_id)
            if batch.status in ("failed", "cancelled", "cancelling"):
                log.warning("batch %s ended %s: submitting again", batch_id, batch.status)
                batch = None
            else:
                log.info("resuming batch %s (%s)", batch_id, batch.status)
        if batch is None:
            batch = self._submit(client, bodies, state_file)
        batch = self._wait(client, batch)
        if batch.status not in TERMINAL:
            message = (f"batch {batch.id} still {batch.status} after {self.max_wait_s:.0f} s: run again to resume "
                       "it (its id is kept)")
            return {c: ChatResult(None, None, error=message) for c in bodies}
        if batch.status in ("failed", "cancelled"):
            state_file.unlink(missing_ok=True)
            errors = getattr(getattr(batch, "errors", None), "data", None) or []
            detail = "; ".join(str(getattr(e, "message", e)) for e in errors)[:300]
            return {c: ChatResult(None, None, error=f"batch {batch.id} {batch.status}: {detail}") for c in bodies}
        answers = self._read(client, batch.output_file_id) | self._read(client, batch.error_file_id)
        state_file.unlink(missing_ok=True)
        missing = f"not answered: batch {batch.id} ended {batch.status}"
        return {c: answers.get(c, ChatResult(None, None, error=missing)) for c in bodies}

    def _submit(self, client: Any, bodies: dict[str, dict[str, Any]], state_file: Path) -> Any:
        lines = "".join(json.dumps({"custom_id": c, "method": "POST", "url": ENDPOINT, "body": b}) + "\n"
                        for c, b in bodies.items())
        uploaded = client.files.create(file=("ctxsynth-batch.jsonl", lines.encode("utf-8"), "application/jsonl"),
                                       purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=ENDPOINT,
                                      completion_window=self.completion_window,
                                      metadata={"client": "ctxsynth", "requests": str(len(bodies))})
        state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"batch_id": batch.id, "input_file_id": uploaded.id, "model": self.model,
                                   "requests": len(bodies), "created": time.time()}), encoding="utf-8")
        tmp.replace(state_file)
        log.info("submitted batch %s: %d requests (state %s)", batch.id, len(bodies), state_file)
        return batch

    def _wait(self, client: Any, batch: Any) -> Any:
        start = time.monotonic()
        while batch.status not in TERMINAL:
            if self.max_wait_s is not None and time.monotonic() - start >= self.max_wait_s:
                return batch
            time.sleep(self.poll_interval_s)
            batch = client.batches.retrieve(batch.id)
            counts = getattr(batch, "request_counts", None)
            log.info("batch %s: %s (%s of %s done)", batch.id, batch.status, getattr(counts, "completed", "?"),
                     getattr(counts, "total", "?"))
        return batch

    def _read(self, client: Any, file_id: str | None) -> dict[str, ChatResult]:
        """custom_id -> result, from a batch output or error file."""
        if not file_id:
            return {}
        from openai.types.chat import ChatCompletion

        out: dict[str, ChatResult] = {}
        for line in client.files.content(file_id).text.splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            response, error = row.get("response") or {}, row.get("error")
            if error or response.get("status_code") != 200:
                detail = (error or {}).get("message") or (response.get("body") or {}).get("error") or response
                out[row["custom_id"]] = ChatResult(None, None, error=f"batch line failed: {str(detail)[:300]}")
                continue
            result = to_result(ChatCompletion.model_validate(response["body"]))
            out[row["custom_id"]] = result if not isinstance(result, Failure) else ChatResult(None, None, error=result.reason, failure=result.kind)
        return out
