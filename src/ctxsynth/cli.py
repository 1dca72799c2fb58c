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


# the model-side verbs (niah, writer-data, train, eval, score, compare) register on `app` there
from ctxsynth import cli_models  # noqa: E402,F401


@app.command()
def ruler(config: ConfigArg, overrides: Overrides = None, out: Annotated[Optional[Path], typer.Option(
        help="Write the items here, <mode>_<length>_<task>.jsonl (default runs/ruler/<config name>).")] = None,
        verbose: Verbose = False) -> None:
    """Build RULER's task data (its own generators, seeds and sample counts) for the `ruler:` section
    of an eval config, as evaluation items; `ctxsynth eval` on the same config runs and scores them."""
    _setup_logging(verbose)
    from ctxsynth.eval.ruler.cli import build_from_config

    out_dir = out or Path("runs") / "ruler" / config.stem
    files = _guard(lambda: build_from_config(config, overrides or [], out_dir))
    console.print(f"ruler: {len(files)} files -> {out_dir}")


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


if __name__ == "__main__":  # `python -m ctxsynth.cli`: run the imported module, on which cli_models registered
    from ctxsynth.cli import main as _imported_main

    _imported_main()
