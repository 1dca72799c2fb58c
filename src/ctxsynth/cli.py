"""The `ctxsynth` command: a thin map from verbs to library calls.

Only this module configures logging handlers and draws progress bars.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, Optional, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ctxsynth import __version__
from ctxsynth import config as cfg
from ctxsynth.errors import REPORT_HINT, UserError
from ctxsynth.stages import STAGE_NAMES, STAGES

STAGE_HELP = {s.name: s.help for s in STAGES}

T = TypeVar("T")

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
        self._task: TaskID | None = None

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


_VERBOSE = False  # set by _setup_logging: -v also shows the traceback of a user error


class _RedactCredentials(logging.Filter):
    """Credentials inside URLs (user:password@, ?api_key=) never reach the terminal or a log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        from ctxsynth.llm.spec import redact_text

        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def _setup_logging(verbose: bool) -> None:
    global _VERBOSE
    _VERBOSE = verbose
    handler = RichHandler(console=console, show_path=False, show_time=False)
    handler.addFilter(_RedactCredentials())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", handlers=[handler], force=True,
    )
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3", "filelock", "huggingface_hub", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load_run(config: Path, overrides: list[str] | None):
    from ctxsynth.runner import Run, RunConfig

    run_config = cfg.load(RunConfig, config, overrides or [])
    return Run(run_config, base_dir=Path.cwd())


INTERRUPTED = "[yellow]interrupted[/yellow]; rerun the same command to resume"


def _fail(error: Exception) -> NoReturn:
    if _VERBOSE:
        console.print_exception()
    from rich.markup import escape

    from ctxsynth.llm.spec import redact_text

    console.print(f"[red]error:[/red] {escape(redact_text(str(error)))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _guard(fn: Callable[[], T]) -> T:
    """A user error (ctxsynth.errors.UserError) becomes one red line and exit code 2; Ctrl-C says how
    to resume and exits 130; anything else is a bug and propagates to `main`, which prints its
    traceback and asks for a report."""
    try:
        return fn()
    except UserError as e:
        _fail(e)
    except KeyboardInterrupt:
        console.print(INTERRUPTED, highlight=False)
        raise typer.Exit(130) from None


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", help="Print the version.", is_eager=True,
                                                callback=_print_version)] = False) -> None:
    """Long-context instruction-tuning data by context synthesis."""


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
        help="Redo the stage even if it is complete (the stages after it are redone too).")] = False, overwrite: Annotated[bool, typer.Option(
        help="Discard outputs made with a different config (the request cache is kept).")] = False,
        verbose: Verbose = False) -> None:
        _setup_logging(verbose)
        from ctxsynth.runner import run_stage

        run = _guard(lambda: _load_run(config, overrides))
        _guard(lambda: run.prepare(overwrite=overwrite, force=stage if force else None))
        _guard(lambda: run_stage(run, stage, RichProgress()))
        console.print(f"{stage}: done -> {run.stage_dir(stage)}")

    command.__doc__ = f"{STAGE_HELP[stage]} Runs the {stage} stage of a run config (skipped when complete)."
    return command


for _stage in STAGES:
    if not _stage.opt_in:  # train and eval: `ctxsynth run` runs them; their verbs below take their own configs
        app.command(name=_stage.name)(_stage_command(_stage.name))


@app.command()
def run(config: ConfigArg, overrides: Overrides = None, overwrite: Annotated[bool, typer.Option(
        help="Discard outputs made with a different config (the request cache is kept).")] = False,
        no_preflight: Annotated[bool, typer.Option("--no-preflight", help=(
            "Skip the checks before paid work (model specs, keys, tokenizer, paths, one probe per endpoint)."))] = False,
        force: Annotated[Optional[str], typer.Option(
            "--force", metavar="STAGE", help="Redo STAGE and every stage after it, even if complete.")] = None,
        verbose: Verbose = False) -> None:
    """Run every stage of a config in order, skipping the complete ones; print a summary.
    Preflight first checks the whole config and probes each endpoint once."""
    _setup_logging(verbose)
    from ctxsynth.preflight import preflight
    from ctxsynth.runner import run_all
    from ctxsynth.summary import print_summary, write_summary

    run_ = _guard(lambda: _load_run(config, overrides))
    if force is not None:
        from ctxsynth.stages import stage as stage_entry

        _guard(lambda: stage_entry(force))  # an unknown stage name fails before anything runs
    if not no_preflight:
        for warning in _guard(lambda: preflight(run_, force=force)):
            console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    _guard(lambda: run_.prepare(overwrite=overwrite, force=force))
    _guard(lambda: _run_or_record_stop(run_, run_all, write_summary))
    summary = write_summary(run_.dir)
    print_summary(summary, Console())


def _run_or_record_stop(run_, run_all, write_summary) -> None:
    """Run every stage; when an endpoint fails, the summary records why before the error propagates."""
    from ctxsynth.errors import BackendUnavailable

    try:
        run_all(run_, RichProgress)
    except BackendUnavailable as e:
        write_summary(run_.dir, {"cause": e.cause, "endpoint": e.endpoint, "status": e.status, "message": str(e)})
        raise


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
    console.print(f"train: {summary.get('global_step')} steps, loss {summary.get('train_loss')}, "
                  f"model -> {summary.get('final_dir')}, loss curve -> {summary.get('loss_curve')}")


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


@app.command()
def ls() -> None:
    """List the registered backends, seed sources, synthesis tasks, filters, distractor strategies,
    export formats, evaluation metrics and stages."""
    from ctxsynth.assemble.config import BUILTIN_STRATEGIES, CORPUS_PREFIXES
    from ctxsynth.eval.metrics import METRICS
    from ctxsynth.export import FORMATS
    from ctxsynth.filters.registry import FILTERS
    from ctxsynth.llm import BACKENDS
    from ctxsynth.seeds import SEED_SOURCES
    from ctxsynth.synth.tasks import SYNTHESIS_TASKS

    strategies = [*BUILTIN_STRATEGIES, *(f"{p}<corpus>" for p in CORPUS_PREFIXES)]
    for title, names in (("backends", BACKENDS.names()), ("seed sources", SEED_SOURCES.names()),
                         ("synthesis tasks", SYNTHESIS_TASKS.names()), ("filters (in run order)", FILTERS.in_order()),
                         ("distractor strategies", strategies), ("export formats", FORMATS.names()),
                         ("metrics", sorted(METRICS)), ("stages", list(STAGE_NAMES))):
        typer.echo(f"{title}: {', '.join(names)}")


def main() -> None:
    """Entry point: user errors and Ctrl-C are handled in `_guard`; a bug shows its traceback."""
    try:
        app()
    except KeyboardInterrupt:  # outside a guarded call (e.g. while importing)
        console.print(INTERRUPTED, highlight=False)
        sys.exit(130)
    except Exception:
        console.print_exception()
        console.print(f"[red]internal error:[/red] {REPORT_HINT}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
