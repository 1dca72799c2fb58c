"""The model-side verbs of the `ctxsynth` command: NIAH data, context-writer data, training,
evaluation, LongBench scoring and comparison. They register on `ctxsynth.cli_app.app`; ctxsynth.cli
imports this module; the shared pieces (logging, error guard, progress bar) live in ctxsynth.cli_app.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ctxsynth import config as cfg
from ctxsynth.cli_app import ConfigArg, Overrides, RichProgress, Verbose, app, console
from ctxsynth.cli_app import fail as _fail
from ctxsynth.cli_app import guard as _guard
from ctxsynth.cli_app import load_run as _load_run
from ctxsynth.cli_app import setup_logging as _setup_logging
from ctxsynth.errors import UserError


@app.command()
def niah(config: ConfigArg, overrides: Overrides = None,
         out: Annotated[Optional[Path], typer.Option(help="Output folder (default runs/niah/<config name>).")] = None,
         verbose: Verbose = False) -> None:
    """Build needle-in-a-haystack training data and/or test grids (the paper's pilot study)."""
    _setup_logging(verbose)
    from ctxsynth.niah import NiahConfig, build_niah

    niah_config = _guard(lambda: cfg.load(NiahConfig, config, overrides or []))
    out_dir = out or Path("runs") / "niah" / config.stem
    summary = _guard(lambda: build_niah(niah_config, out_dir, RichProgress()))
    train, test = summary.get("train") or {}, summary.get("test") or {}
    n_test = sum(v.get("items", 0) for v in test.values())
    console.print(f"niah: {train.get('samples', 0)} training samples, {n_test} test items "
                  f"-> {out_dir} (summary.json)")


@app.command(name="writer-data")
def writer_data(config: ConfigArg, overrides: Overrides = None,
                out: Annotated[Path, typer.Option(help="The JSONL file of chat rows to write.")] = Path("writer.jsonl"),
                exclude: Annotated[Optional[list[Path]], typer.Option(
                    help="Seed JSONL files of the experiment (repeatable): triples sharing an id, question or "
                    "context with them are left out.")] = None,
                verbose: Verbose = False) -> None:
    """Training rows for a context writer: the config's seeds (with their human contexts) as the
    synthesis prompt -> "Context: <human context>". Train on them with `ctxsynth train`, then use the
    model as `llm.model` (transformers backend): docs/context_writer.md."""
    _setup_logging(verbose)
    from functools import partial

    from ctxsynth.io import atomic_write_text, dumps
    from ctxsynth.records import Seed
    from ctxsynth.seeds import read_seeds
    from ctxsynth.seeds.config import SeedsConfig
    from ctxsynth.synth.tasks import ContextSynthesis
    from ctxsynth.synth.writer import writer_rows

    run_ = _guard(lambda: _load_run(config, overrides))
    sc = run_.config.synth
    task = _guard(lambda: ContextSynthesis(target_words=sc.target_words, genre=sc.genre, prompt_file=sc.prompt_file))
    def seeds_of(path: Path) -> list[Seed]:
        return [s for s in read_seeds(SeedsConfig(source="jsonl", path=str(path))) if isinstance(s, Seed)]

    excluded: list[Seed] = []
    for path in exclude or []:
        excluded += _guard(partial(seeds_of, path))
    seeds = [s for s in _guard(lambda: list(read_seeds(run_.config.seeds, base_dir=run_.base_dir))) if isinstance(s, Seed)]
    data = writer_rows(seeds, task, excluded)
    if not data.rows:
        _fail(UserError(f"writer-data: none of the {len(seeds)} seeds has a context that is not excluded; "
                        "use a seed source with a context field (squad, hotpotqa, a file with 'context')"))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "".join(dumps(r) + "\n" for r in data.rows))
    console.print(f"writer-data: {len(data.rows)} rows -> {out} ({data.skipped_no_context} without a context, "
                  f"{data.skipped_overlap} overlapping the excluded seeds)")


@app.command()
def train(config: ConfigArg, overrides: Overrides = None, verbose: Verbose = False) -> None:
    """Fine-tune a causal LM on exported data (TRL + PEFT; packing without cross-attention, answer-only loss).
    Several GPUs: `accelerate launch --config_file configs/accelerate/fsdp.yaml -m ctxsynth.cli train CONFIG`.
    In a run config, list `train` (and `eval`) in `stages:` instead: configs/end_to_end.yaml."""
    _setup_logging(verbose)
    from ctxsynth.train import TrainConfig
    from ctxsynth.train.recipe import train as run_training

    train_config = _guard(lambda: TrainConfig.from_yaml(config, overrides or []))
    summary = _guard(lambda: run_training(train_config))
    if os.environ.get("RANK", "0") == "0":  # under `accelerate launch`, one line for the run, not one per process
        console.print(f"train: {summary.get('global_step')} steps, loss {summary.get('train_loss')}, "
                      f"model -> {summary.get('final_dir')}, loss curve -> {summary.get('loss_curve')}")
    _end_process_group()


def _end_process_group() -> None:
    """Under `accelerate launch`: every process waits for the others, then leaves the process group.
    A process that simply exited while rank 0 still wrote its loss curve died at exit with SIGABRT
    in the group's teardown (a CI run of tests/train/test_deepspeed_cpu.py, 1 in many)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@app.command(name="eval")
def eval_(config: ConfigArg, overrides: Overrides = None, verbose: Verbose = False,
          write_items: Annotated[Optional[Path], typer.Option(
              "--write-items", help="Write the config's evaluation items to this JSONL file and stop (no model "
              "runs): freezes the built-in sets for a machine without the asset packages (read back with items:).")] = None,
          ) -> None:
    """Evaluate a model on NIAH test sets, LongBench-format files and the offline built-in sets.
    In a run config, list `eval` after `train` in `stages:` to compare the trained and the base model."""
    _setup_logging(verbose)
    from ctxsynth.eval.job import EvalConfig, run_eval
    from ctxsynth.eval.job import write_items as write_eval_items
    from ctxsynth.eval.tables import markdown

    eval_config = _guard(lambda: cfg.load(EvalConfig, config, overrides or []))
    if write_items is not None:
        n = _guard(lambda: write_eval_items(eval_config, write_items))
        console.print(f"eval: wrote {n} items -> {write_items}")
        return
    scores = _guard(lambda: run_eval(eval_config, progress=RichProgress()))
    typer.echo(markdown({eval_config.name: scores}, title=f"Evaluation: {eval_config.name}"))


@app.command()
def score(pred_dir: Annotated[Path, typer.Argument(help="Folder of LongBench prediction files, one <task>.jsonl "
                                                    "per task (lines with pred, answers, all_classes, length).")],
          e: Annotated[bool, typer.Option("--e", help="LongBench-E: scores per length bucket (0-4k, 4-8k, 8k+).")] = False,
          json_out: Annotated[bool, typer.Option("--json", help="Print only {\"task\": score, ...} on stdout.")] = False,
          verbose: Verbose = False) -> None:
    """Score LongBench prediction files exactly as LongBench's eval.py; writes result.json beside them."""
    _setup_logging(verbose)
    import json

    from ctxsynth.eval.longbench_score import RESULT_FILE, markdown_table, score_dir

    scores = _guard(lambda: score_dir(pred_dir, e=e))
    if json_out:
        typer.echo(json.dumps(scores, ensure_ascii=False))
        return
    typer.echo(markdown_table(scores, e=e))
    console.print(f"score: {len(scores)} tasks -> {pred_dir / RESULT_FILE}")


@app.command()
def compare(runs: Annotated[list[Path], typer.Argument(help="Evaluation run folders (the first is the baseline).")],
            out: Annotated[Optional[Path], typer.Option(help="Write comparison.md and plots here.")] = None) -> None:
    """Side-by-side tables (and, with --out, plots) of several evaluation runs."""
    _setup_logging(False)
    from ctxsynth.eval.compare import compare as compare_runs

    result = _guard(lambda: compare_runs(runs, out_dir=out))
    typer.echo(result.markdown)
    for plot in result.plots:
        console.print(f"plot: {plot}")
