"""The `ctxsynth` command: a thin map from verbs to library calls (the app and the shared pieces:
ctxsynth.cli_app; the model-side verbs: ctxsynth.cli_models).

Only the command configures logging handlers and draws progress bars.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ctxsynth import __version__
from ctxsynth.cli_app import (
    INTERRUPTED,
    ConfigArg,
    Overrides,
    RichProgress,
    Verbose,
    app,
    console,
    guard,
    load_run,
    setup_logging,
)
from ctxsynth.errors import REPORT_HINT, BackendUnavailable
from ctxsynth.pipeline.stages import STAGE_NAMES, STAGES
from ctxsynth.pipeline.stages import stage as stage_entry

STAGE_HELP = {s.name: s.help for s in STAGES}


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
    setup_logging(False)
    from ctxsynth.pipeline.preflight import validate_run

    run = guard(lambda: load_run(config, overrides))
    problems = guard(lambda: validate_run(run))
    for p in problems or []:
        console.print(f"[yellow]warning:[/yellow] {p}")
    console.print(f"[green]ok[/green] {config}: run {run.config.name!r} -> {run.dir}")


def _stage_command(stage: str):
    def command(config: ConfigArg, overrides: Overrides = None, force: Annotated[bool, typer.Option(
        help="Redo the stage even if it is complete (the stages after it are redone too).")] = False, overwrite: Annotated[bool, typer.Option(
        help="Discard outputs made with a different config (the request cache is kept).")] = False,
        verbose: Verbose = False) -> None:
        setup_logging(verbose)
        from ctxsynth.pipeline.run import run_stage

        run = guard(lambda: load_run(config, overrides))
        guard(lambda: run.prepare(overwrite=overwrite, force=stage if force else None))
        guard(lambda: run_stage(run, stage, RichProgress()))
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
    setup_logging(verbose)
    from ctxsynth.pipeline.preflight import preflight
    from ctxsynth.pipeline.run import run_all
    from ctxsynth.pipeline.summary import print_summary, write_summary

    run_ = guard(lambda: load_run(config, overrides))
    if force is not None:
        guard(lambda: stage_entry(force))  # an unknown stage name fails before anything runs
    guard(run_.lock)  # one writer per run directory: a second run stops here, before preflight
    if not no_preflight:
        for warning in guard(lambda: preflight(run_, force=force)):
            console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    guard(lambda: run_.prepare(overwrite=overwrite, force=force))
    guard(lambda: _run_or_record_stop(run_, run_all, write_summary))
    summary = write_summary(run_.dir)
    print_summary(summary, Console())


def _run_or_record_stop(run_, run_all, write_summary) -> None:
    """Run every stage; when an endpoint fails, the summary records why before the error propagates."""
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
    setup_logging(False)
    import json

    from ctxsynth.pipeline.estimate import as_dicts, estimate_run, render

    run_ = guard(lambda: load_run(config, overrides))
    estimates = guard(lambda: estimate_run(run_, stream_tps))
    if as_json:
        typer.echo(json.dumps(as_dicts(estimates), indent=2))
        return
    for line in render(estimates, run_):
        Console().print(line, soft_wrap=True, markup=False)


@app.command()
def view(run_dir: Annotated[Path, typer.Argument(help="A run directory (the folder `ctxsynth run` wrote).")],
         out: Annotated[Optional[Path], typer.Option(help="The page's path (default RUN_DIR/view/index.html); its data go in <name>_files/ beside it.")] = None,
         serve: Annotated[bool, typer.Option("--serve", help="Also serve the page on 127.0.0.1 until Ctrl-C.")] = False,
         port: Annotated[int, typer.Option(help="The port for --serve (0: a free one).")] = 8000) -> None:
    """Write a page to read a run in the browser, offline: counts, samples (gold, distractors, export row),
    rejected records with every attempt, filter scores, eval predictions."""
    setup_logging(False)
    from ctxsynth.view import PageServer, build_view

    page = guard(lambda: build_view(run_dir, out))
    console.print(f"page: {page} (open it in a browser)", highlight=False)
    if serve:
        with guard(lambda: PageServer(page.parent, port)) as server:
            console.print(f"serving {server.url(page.name)} (127.0.0.1 only; Ctrl-C stops)", highlight=False)
            guard(lambda: server.thread.join())


# the model-side verbs (niah, writer-data, train, eval, score, compare) register on `app` there
from ctxsynth import cli_models  # noqa: E402,F401


@app.command()
def ruler(config: ConfigArg, overrides: Overrides = None, out: Annotated[Optional[Path], typer.Option(
        help="Write the items here, <mode>_<length>_<task>.jsonl (default runs/ruler/<config name>).")] = None,
        verbose: Verbose = False) -> None:
    """Build RULER's task data (its own generators, seeds and sample counts) for the `ruler:` section
    of an eval config, as evaluation items; `ctxsynth eval` on the same config runs and scores them."""
    setup_logging(verbose)
    from ctxsynth.eval.ruler.cli import build_from_config

    out_dir = out or Path("runs") / "ruler" / config.stem
    files = guard(lambda: build_from_config(config, overrides or [], out_dir))
    console.print(f"ruler: {len(files)} files -> {out_dir}")


@app.command()
def ls() -> None:
    """List the registered backends, seed sources, synthesis tasks, filters, distractor strategies,
    export formats, evaluation metrics, evaluation tasks and stages."""
    from ctxsynth.assemble.config import BUILTIN_STRATEGIES, CORPUS_PREFIXES
    from ctxsynth.eval.metrics import METRICS
    from ctxsynth.eval.tasks import eval_tasks
    from ctxsynth.export import FORMATS
    from ctxsynth.filters.registry import FILTERS
    from ctxsynth.llm import BACKENDS
    from ctxsynth.seeds import SEED_SOURCES
    from ctxsynth.synth.tasks import SYNTHESIS_TASKS

    strategies = [*BUILTIN_STRATEGIES, *(f"{p}<corpus>" for p in CORPUS_PREFIXES)]
    for title, names in (("backends", BACKENDS.names()), ("seed sources", SEED_SOURCES.names()),
                         ("synthesis tasks", SYNTHESIS_TASKS.names()), ("filters (in run order)", FILTERS.in_order()),
                         ("distractor strategies", strategies), ("export formats", FORMATS.names()),
                         ("metrics", METRICS.names()), ("eval tasks", eval_tasks()), ("stages", list(STAGE_NAMES))):
        typer.echo(f"{title}: {', '.join(names)}")


def main() -> None:
    """Entry point: user errors and Ctrl-C are handled in `guard`; a bug shows its traceback."""
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
