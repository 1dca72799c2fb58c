"""Answer log-probabilities under a local causal LM, batched and cached in SQLite.

`AnswerScorer.mean_logprobs` returns, for each (context, instruction, answer) triple, the mean
log-probability of the answer's tokens when the model reads the chat-formatted prompt (context
and instruction in one user turn, or the instruction alone when context is None) and the answer
is the assistant's reply. The answer tokens are encoded once, on their own, and appended to the
rendered prompt, so the with-context and without-context scores are over the very same tokens.

Rows are left-padded so every answer ends at the last position; the model then only has to
project the last few hidden states onto the vocabulary (`logits_to_keep`), which keeps memory
flat whatever the batch. Results are cached by hash(model identity, scorer settings, inputs):
rerunning a filter or the benchmark costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctxsynth.errors import PathNotFound
from ctxsynth.models import pick_dtype, resolve_model_path, weights_fingerprint
from ctxsynth.sqlite_store import SqliteStore

log = logging.getLogger(__name__)

Triple = tuple[str | None, str, str]  # (context or None, instruction, answer)


@dataclass(frozen=True)
class AnswerScore:
    mean_logprob: float
    answer_tokens: int
    prompt_tokens: int
    context_truncated: bool


class ScoreCache:
    """key -> AnswerScore in one SQLite table (WAL; each batch committed as it finishes)."""

    def __init__(self, path: Path) -> None:
        self._store = SqliteStore(path, "CREATE TABLE IF NOT EXISTS answer_scores (key TEXT PRIMARY KEY, value TEXT);")

    def get(self, key: str) -> AnswerScore | None:
        rows = self._store.query("SELECT value FROM answer_scores WHERE key = ?", (key,))
        return AnswerScore(**json.loads(rows[0][0])) if rows else None

    def put_many(self, items: Sequence[tuple[str, AnswerScore]]) -> None:
        rows = [(k, json.dumps(v.__dict__, sort_keys=True)) for k, v in items]
        self._store.execute_many("INSERT OR REPLACE INTO answer_scores VALUES (?, ?)", rows)

    def close(self) -> None:
        self._store.close()


def model_fingerprint(path: Path) -> str:
    """Config hash plus the weights' fingerprint (fine-tunes differ only there)."""
    config = hashlib.sha256((path / "config.json").read_bytes()).hexdigest()[:16]
    return f"{config}-{weights_fingerprint(path)}"


class AnswerScorer:
    """Mean answer-token log-probabilities with a local transformers model (loaded on first use).

    model: a local folder or an embedded alias ("smollm2-135m-instruct").
    token_budget: padded tokens per forward batch (rows x longest row); bounds memory and time.
    max_context_tokens: longer contexts keep their first tokens (the flag is recorded).
    """

    def __init__(self, model: str = "smollm2-135m-instruct", *, cache_path: Path | None = None,
                 token_budget: int = 8192, max_context_tokens: int = 2048, device: str = "cpu",
                 dtype: str = "auto") -> None:
        self.model_name = model
        self.path = Path(resolve_model_path(model))
        if not (self.path / "config.json").is_file():
            raise PathNotFound(f"scoring model {model!r}: {self.path} is not a local transformers folder "
                                    "(hub downloads are not attempted)")
        self.token_budget = token_budget
        self.max_context_tokens = max_context_tokens
        self.device = device
        self.dtype = pick_dtype(dtype, device)
        self.cache = ScoreCache(cache_path) if cache_path is not None else None
        self._model: Any = None
        self._tokenizer: Any = None
        self._identity = json.dumps({"model": self.path.name, "fp": model_fingerprint(self.path),
                                     "max_context_tokens": max_context_tokens, "dtype": self.dtype, "v": 1}, sort_keys=True)

    def identity(self) -> str:
        return self._identity

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.info("loading scoring model %s on %s", self.path, self.device)
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self._model = AutoModelForCausalLM.from_pretrained(str(self.path), dtype=getattr(torch, self.dtype))
        self._model.to(self.device)
        self._model.eval()

    def key(self, triple: Triple) -> str:
        blob = json.dumps([self._identity, *triple], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def mean_logprobs(self, triples: Sequence[Triple]) -> list[AnswerScore]:
        """One AnswerScore per triple, in order; cache hits skip the model."""
        keys = [self.key(t) for t in triples]
        out: list[AnswerScore | None] = [self.cache.get(k) if self.cache else None for k in keys]
        todo: dict[str, list[int]] = {}  # key -> positions; identical triples are scored once
        for i, k in enumerate(keys):
            if out[i] is None:
                todo.setdefault(k, []).append(i)
        if todo:
            log.info("scoring %d answers (%d cached)", len(todo), len(triples) - sum(map(len, todo.values())))
            self._load()
            encoded = [(k, *self._encode(triples[i[0]])) for k, i in todo.items()]
            for batch in self._batches(encoded):
                scores = self._forward(batch)
                if self.cache:
                    self.cache.put_many([(b[0], s) for b, s in zip(batch, scores, strict=True)])
                for b, s in zip(batch, scores, strict=True):
                    for i in todo[b[0]]:
                        out[i] = s
        return [s for s in out if s is not None]

    def _encode(self, triple: Triple) -> tuple[list[int], list[int], bool]:
        """(prompt ids, answer ids, context truncated)."""
        context, instruction, answer = triple
        tok = self._tokenizer
        truncated = False
        if context is not None:
            ids = tok.encode(context, add_special_tokens=False)
            if len(ids) > self.max_context_tokens:
                context, truncated = tok.decode(ids[: self.max_context_tokens]), True
        user = instruction if context is None else f"{context}\n\n{instruction}"
        messages = [{"role": "user", "content": user}]
        if getattr(tok, "chat_template", None):
            prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            prompt = f"{user}\nAnswer: "
        prompt_ids = tok.encode(prompt, add_special_tokens=False)
        answer_ids = tok.encode(answer.strip(), add_special_tokens=False) or [tok.eos_token_id]
        return prompt_ids, answer_ids, truncated

    def _batches(self, encoded: list[tuple[str, list[int], list[int], bool]]) -> list[list[Any]]:
        """Group rows of similar length so that rows x longest row stays under the token budget."""
        ordered = sorted(encoded, key=lambda e: len(e[1]) + len(e[2]))
        batches: list[list[Any]] = []
        current: list[Any] = []
        for item in ordered:
            width = len(item[1]) + len(item[2])
            if current and (len(current) + 1) * width > self.token_budget:
                batches.append(current)
                current = []
            current.append(item)
        if current:
            batches.append(current)
        return batches

    def _forward(self, batch: list[tuple[str, list[int], list[int], bool]]) -> list[AnswerScore]:
        import torch

        rows = [p + a for _, p, a, _ in batch]
        width = max(len(r) for r in rows)
        pad = self._tokenizer.pad_token_id or 0
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        keep = max(len(a) for _, _, a, _ in batch) + 1
        with torch.inference_mode():
            logits = self._model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                 logits_to_keep=keep).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)  # position t predicts token t+1
        scores = []
        for row, (_, prompt, answer, truncated) in enumerate(batch):
            n = len(answer)
            targets = torch.tensor(answer, device=self.device)
            picked = logprobs[row, keep - 1 - n:, :].gather(-1, targets[:, None]).squeeze(-1)
            scores.append(AnswerScore(float(picked.mean()), n, len(prompt), truncated))
        return scores

    def close(self) -> None:
        if self.cache:
            self.cache.close()
