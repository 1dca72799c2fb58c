"""The `ctxsynth` command: a thin map from verbs to library calls.

Only this module configures logging handlers and draws progress bars.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ctxsynth import __version__
from ctxsynth import config as cfg

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Long-context instruction-tuning data by context synthesis.")
console = Console(stderr=True)

ConfigArg = Annotated[Path, typer.Argument(help="Run config (YAML).", exists=False)]
Overrides = Annotated[Optional[list[str]], typer.Argument(help="Overrides like synth.target_words=500.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


class RateColumn(ProgressColumn):
    """Items per minute over the whole task (work arrives in batches, so a windowed rate jumps)."""

    def render(self, task) -> Text:
        if not task.elapsed or not task.completed:
            return Text("-/min")
        return Text(f"{60 * task.completed / task.elapsed:.1f}/min")


class RichProgress:
    """Implements ctxsynth.progress.Progress with a rich bar (rate, ETA)."""

    def __init__(self) -> None:
        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            RateColumn(), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=console, transient=False,
        )
        self._task = None

    def start(self, description: str, total: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task(description, total=total or None)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n)

    def add_total(self, n: int) -> None:
        if self._task is not None:
            task = self._bar.tasks[self._task]
            self._bar.update(self._task, total=(task.total or 0) + n)

    def finish(self) -> None:
        self._bar.stop()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)], force=True,
    )
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3", "filelock", "huggingface_hub", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load_run(config: Path, overrides: list[str] | None):
    from ctxsynth.runner import Run, RunConfig

    run_config = cfg.load(RunConfig, config, overrides or [])
    return Run(run_config, base_dir=Path.cwd())


def _fail(error: Exception) -> None:
    console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(2)


def _guard(fn):
    """Turn user-facing errors into one red line and exit code 2 instead of a traceback."""
    from ctxsynth.errors import UserError
    from ctxsynth.registry import RegistryError

    try:
        return fn()
    except (cfg.ConfigError, RegistryError, FileNotFoundError, ValueError, UserError) as e:
        _fail(e)


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


@app.command()
def validate(config: ConfigArg, overrides: Overrides = None) -> None:
    """Check a run config (types, unknown keys, names) without calling any model."""
    _setup_logging(False)
    from ctxsynth.runner import validate_run

    run = _guard(lambda: _load_run(config, overrides))
    problems = _guard(lambda: validate_run(run))
    for p in problems or []:
        console.print(f"[yellow]warning:[/yellow] {p}")
    console.print(f"[green]ok[/green] {config}: run {run.config.name!r} -> {run.dir}")


def _stage_command(stage: str):
    def command(config: ConfigArg, overrides: Overrides = None, force: Annotated[bool, typer.Option(
        help="Redo the stage even if it is complete.")] = False, overwrite: Annotated[bool, typer.Option(
        help="Discard outputs made with a different config (the request cache is kept).")] = False,
        verbose: Verbose = False) -> None:
        _setup_logging(verbose)
        from ctxsynth.runner import run_stage

        run = _guard(lambda: _load_run(config, overrides))
        _guard(lambda: run.prepare(overwrite=overwrite))
        _guard(lambda: run_stage(run, stage, RichProgress(), force=force))
        console.print(f"{stage}: done -> {run.stage_dir(stage)}")

    command.__doc__ = f"Run the {stage} stage of a run config (skipped when complete)."
    return command


for _stage in ("seeds", "filter", "synthesize", "assemble", "export", "report"):
    app.command(name=_stage)(_stage_command(_stage))


@app.command()
def run(config: ConfigArg, overrides: Overrides = None, overwrite: Annotated[bool, typer.Option(
        help="Discard outputs made with a different config (the request cache is kept).")] = False,
        verbose: Verbose = False) -> None:
    """Run every stage of a config in order, skipping the complete ones; print a summary."""
    _setup_logging(verbose)
    from ctxsynth.runner import run_all
    from ctxsynth.summary import print_summary, write_summary

    run_ = _guard(lambda: _load_run(config, overrides))
    _guard(lambda: run_.prepare(overwrite=overwrite))
    _guard(lambda: run_all(run_, RichProgress))
    summary = write_summary(run_.dir)
    print_summary(summary, Console())


@app.command()
def estimate(config: ConfigArg, overrides: Overrides = None, stream_tps: Annotated[float, typer.Option(
        help="Assumed output tokens per second of one request (for the time estimate).")] = 60.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False) -> None:
    """Requests, tokens, cost (report.prices) and time of a run config, before any request is sent."""
    _setup_logging(False)
    import json

    from ctxsynth.estimate import as_dicts, estimate_run, render

    run_ = _guard(lambda: _load_run(config, overrides))
    estimates = _guard(lambda: estimate_run(run_, stream_tps))
    if as_json:
        typer.echo(json.dumps(as_dicts(estimates), indent=2))
        return
    for line in render(estimates, run_):
        Console().print(line, soft_wrap=True, markup=False)


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


@app.command()
def train(config: ConfigArg, overrides: Overrides = None, verbose: Verbose = False) -> None:
    """Fine-tune a causal LM on exported data (TRL + PEFT; packing without cross-attention, answer-only loss).
    Several GPUs: `accelerate launch --config_file configs/accelerate/fsdp.yaml -m ctxsynth.cli train CONFIG`."""
    _setup_logging(verbose)
    from ctxsynth.train import TrainConfig
    from ctxsynth.train.recipe import train as run_training

    train_config = _guard(lambda: TrainConfig.from_yaml(config, overrides or []))
    summary = _guard(lambda: run_training(train_config))
    console.print(f"train: {summary.get('global_step')} steps, loss {summary.get('train_loss')}, "
                  f"model -> {summary.get('final_dir')}, loss curve -> {summary.get('loss_curve')}")


@app.command(name="eval")
def eval_(config: ConfigArg, overrides: Overrides = None, verbose: Verbose = False,
          write_items: Annotated[Optional[Path], typer.Option(
              "--write-items", help="Write the config's evaluation items to this JSONL file and stop (no model "
              "runs): freezes the built-in sets for a machine without the asset packages (read back with items:).")] = None,
          ) -> None:
    """Evaluate a model on NIAH test sets, LongBench-format files and the offline built-in sets."""
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
def compare(runs: Annotated[list[Path], typer.Argument(help="Evaluation run folders (the first is the baseline).")],
            out: Annotated[Optional[Path], typer.Option(help="Write comparison.md and plots here.")] = None) -> None:
    """Side-by-side tables (and, with --out, plots) of several evaluation runs."""
    _setup_logging(False)
    from ctxsynth.eval.compare import compare as compare_runs

    result = _guard(lambda: compare_runs(runs, out_dir=out))
    typer.echo(result.markdown)
    for plot in result.plots:
        console.print(f"plot: {plot}")


@app.command()
def ls() -> None:
    """List the registered backends, seed sources, synthesis tasks and stages."""
    from ctxsynth.llm import BACKENDS
    from ctxsynth.runner import STAGES
    from ctxsynth.seeds import SEED_SOURCES
    from ctxsynth.synth.tasks import SYNTHESIS_TASKS

    for title, names in (("backends", BACKENDS.names()), ("seed sources", SEED_SOURCES.names()),
                         ("synthesis tasks", SYNTHESIS_TASKS.names()), ("stages", list(STAGES))):
        typer.echo(f"{title}: {', '.join(names)}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: finished requests are cached; rerun the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
