"""Cost before spend: requests, tokens, price and time of a run config, before any request is sent.

`estimate_run` reads the seeds (locally: files or built-ins, no model), renders every synthesis
prompt exactly as the synthesize stage will, and counts its tokens: input tokens are exact for the
counting tokenizer (the generator's own for local models, `tiktoken:o200k_base` for API models,
whose tokenizers are close to it). Output tokens are an expectation (about 1.35 tokens per requested
word, capped by llm.max_tokens) and a ceiling (max_tokens for every attempt). Requests are one per
seed expected, max_attempts per seed at most. Money comes from `report.prices`; time from the
configured concurrency (the backend's `concurrency`) and an assumed decoding speed per request. The synthesize stage sends the
generation requests and, with `verify.non_extractive: judge`, support-judge requests to the same
model: one expected per seed whose answer is a yes/no/unanswerable-like phrase, at most one per
attempt (a short answer the draft does not contain as a span is judged too, which only the draft
tells). The closed-book filter asks its own (local by default) model once per seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ctxsynth.llm.prices import money, price_of
from ctxsynth.pipeline.run import Run
from ctxsynth.records import Rejected, Seed
from ctxsynth.seeds import read_seeds
from ctxsynth.synth.tasks import build_task, needs_llm
from ctxsynth.tokenize import load_tokenizer
from ctxsynth.verify.checks import non_extractive_kind
from ctxsynth.verify.judge import SupportJudge

TOKENS_PER_WORD = 1.35
MESSAGE_OVERHEAD = 4  # tokens a chat format adds per message (role markers), OpenAI's rule of thumb
DEFAULT_STREAM_TPS = 60.0  # output tokens per second of one request, when not measured


@dataclass
class StageEstimate:
    stage: str
    model: str
    requests: int
    requests_max: int
    input_tokens: int
    input_tokens_max: int
    output_tokens: int
    output_tokens_max: int
    cost_usd: float | None
    cost_usd_max: float | None
    seconds: float | None
    note: str = ""


def _price(prices: dict[str, Any], model: str, tokens_in: int, tokens_out: int) -> float | None:
    price = price_of(prices, model)
    return price.cost(tokens_in, tokens_out) if price is not None else None


def counting_tokenizer(run: Run) -> Any:
    llm = run.config.llm
    if llm.backend_class().hosted:
        return load_tokenizer("tiktoken:o200k_base")
    return load_tokenizer("smollm2" if llm.model == "smollm2-135m-instruct" else run.config.assemble.tokenizer)


def read_seeds_locally(run: Run) -> list[Seed]:
    return [s for s in read_seeds(run.config.seeds, base_dir=run.base_dir) if not isinstance(s, Rejected)]


def expected_output(run: Run) -> int:
    c = run.config
    words = c.synth.target_words if c.synth.task in ("context", "multidoc") else 300
    return min(c.llm.max_tokens, math.ceil(TOKENS_PER_WORD * words) + 16)


def synthesize_estimate(run: Run, seeds: list[Seed], stream_tps: float) -> StageEstimate:
    c = run.config
    task = build_task(c.synth, c.seed)
    tokenizer = counting_tokenizer(run)
    usable = [s for s in seeds if task.unusable(s) is None]
    prompts = [task.prompt(s) for s in usable]
    texts = [m["content"] for p in prompts for m in p]
    tokens_in = sum(len(ids) for ids in tokenizer.encode_batch(texts)) + MESSAGE_OVERHEAD * len(texts)
    n, attempts = len(usable), c.synth.max_attempts
    out, out_max = n * expected_output(run), n * attempts * c.llm.max_tokens
    backend = c.llm.backend_class()
    concurrency = c.llm.concurrency() if backend.hosted and not backend.batch else None
    seconds = None
    if concurrency:
        seconds = math.ceil(n / concurrency) * (expected_output(run) / stream_tps + 1.0)
    note = "" if concurrency else ("batch API: results within 24 h" if backend.batch
                                   else "local model: time depends on the hardware")
    prices = c.report.prices
    return StageEstimate("synthesize", c.llm.model, n, n * attempts, tokens_in, tokens_in * attempts, out, out_max,
                         _price(prices, c.llm.model, tokens_in, out),
                         _price(prices, c.llm.model, tokens_in * attempts, out_max), seconds, note)


def filter_estimate(run: Run, seeds: list[Seed]) -> StageEstimate | None:
    fc = run.config.filters
    if "filter" not in run.config.stages or not fc.closed_book.enabled:
        return None
    llm = fc.closed_book.llm
    tokens_in = sum(len(s.instruction.split()) for s in seeds) * 2 + 60 * len(seeds)  # question + instructions
    out = len(seeds) * llm.max_tokens
    cost = _price(run.config.report.prices, llm.model, tokens_in, out)
    return StageEstimate("filter (closed-book probe)", llm.model, len(seeds), len(seeds), tokens_in, tokens_in, out,
                         out, cost, cost, None, "input tokens approximate (question words x 2 + template)")


def judge_estimate(run: Run, seeds: list[Seed]) -> StageEstimate | None:
    """The support judge's requests (ctxsynth.verify.judge), sent to the synthesis model."""
    c = run.config
    if "synthesize" not in c.stages or c.verify.non_extractive != "judge" or c.synth.task == "human":
        return None
    task = build_task(c.synth, c.seed)
    usable = [s for s in seeds if task.unusable(s) is None]
    judge, tokenizer = SupportJudge(c.verify, c.seed), counting_tokenizer(run)

    counted: dict[str, int] = {}  # a seed in both lists below is tokenized once

    def prompt_tokens(seed: Seed) -> int:  # the judge prompt without its document
        if seed.id not in counted:
            messages = judge.request(seed.id, 0, "", seed.instruction, seed.answers[0] if seed.answers else "").messages
            counted[seed.id] = sum(len(tokenizer.encode(m["content"])) + MESSAGE_OVERHEAD for m in messages)
        return counted[seed.id]

    phrase = [s for s in usable if c.synth.task != "instruction" and non_extractive_kind(s.answers, c.verify)]
    n_max = len(usable) * c.synth.max_attempts
    sample = usable[:50]  # the prompt around the document varies little: an average of up to 50 seeds
    per_prompt = sum(prompt_tokens(s) for s in sample) / len(sample) if sample else 0.0
    tokens_in = round(sum(prompt_tokens(s) for s in phrase) + len(phrase) * expected_output(run))
    tokens_in_max = round(n_max * (per_prompt + c.llm.max_tokens))
    out, out_max = len(phrase) * c.verify.judge_max_tokens, n_max * c.verify.judge_max_tokens
    prices = c.report.prices
    return StageEstimate("synthesize (support judge)", c.llm.model, len(phrase), n_max, tokens_in, tokens_in_max,
                         out, out_max, _price(prices, c.llm.model, tokens_in, out),
                         _price(prices, c.llm.model, tokens_in_max, out_max), None,
                         "expected: seeds with yes/no-like answers; at most one per attempt")


def estimate_run(run: Run, stream_tps: float = DEFAULT_STREAM_TPS) -> list[StageEstimate]:
    """Per-stage estimates for the run's stages that send generation requests."""
    seeds = read_seeds_locally(run)
    out = [e for e in (filter_estimate(run, seeds),) if e is not None]
    # a task without a model (synth.task: human) sends no synthesis or judge request
    if "synthesize" in run.config.stages and needs_llm(build_task(run.config.synth, run.config.seed)):
        out.append(synthesize_estimate(run, seeds, stream_tps))
        out += [e for e in (judge_estimate(run, seeds),) if e is not None]
    return out


def _cost(value: float | None) -> str:
    return money(value) if value is not None else "n/a (no price in report.prices)"


def render(estimates: list[StageEstimate], run: Run) -> list[str]:
    lines = [f"estimate for run {run.config.name!r} ({run.dir}); no request has been sent"]
    if not estimates:
        lines.append("no stage of this run sends generation requests: nothing to pay for")
    for e in estimates:
        time = f"~{e.seconds / 60:.1f} min" if e.seconds is not None else "-"
        lines += [f"{e.stage} [{e.model}]: {e.requests:,} requests expected (at most {e.requests_max:,}); "
                  f"input {e.input_tokens:,} tokens (at most {e.input_tokens_max:,}); output ~{e.output_tokens:,} "
                  f"(at most {e.output_tokens_max:,}); cost {_cost(e.cost_usd)} (at most {_cost(e.cost_usd_max)}); "
                  f"time {time}" + (f"; {e.note}" if e.note else "")]
    limit = run.config.llm.max_cost_usd
    if limit is not None:
        lines.append(f"llm.max_cost_usd = {limit}: the run stops (resumable) once the spend reaches it")
    return lines


def as_dicts(estimates: list[StageEstimate]) -> list[dict[str, Any]]:
    return [asdict(e) for e in estimates]


