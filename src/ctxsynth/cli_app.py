"""The `ctxsynth` command's Typer app and the pieces every verb module shares: the console, the
progress bar, logging set-up, loading a run config, and the error guard (a user error is one red
line and exit code 2). The verbs register on `app` in ctxsynth.cli and ctxsynth.cli_models.

Only the command configures logging handlers and draws progress bars.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, Optional, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
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

from ctxsynth import config as cfg
from ctxsynth.errors import UserError, missing_module, out_of_memory
from ctxsynth.io import resource_error
from ctxsynth.llm.spec import RedactCredentials, redact_text
from ctxsynth.pipeline.config import RunConfig
from ctxsynth.pipeline.run import Run

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


_VERBOSE = False  # set by setup_logging: -v also shows the traceback of a user error


def setup_logging(verbose: bool) -> None:
    global _VERBOSE
    _VERBOSE = verbose
    handler = RichHandler(console=console, show_path=False, show_time=False)
    handler.addFilter(RedactCredentials())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", handlers=[handler], force=True,
    )
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3", "filelock", "huggingface_hub", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def load_run(config: Path, overrides: list[str] | None) -> Run:
    run_config = cfg.load(RunConfig, config, overrides or [])
    return Run(run_config, base_dir=Path.cwd())


INTERRUPTED = "[yellow]interrupted[/yellow]; rerun the same command to resume"


def fail(error: Exception) -> NoReturn:
    if _VERBOSE:
        console.print_exception()
    console.print(f"[red]error:[/red] {escape(redact_text(str(error)))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def guard(fn: Callable[[], T]) -> T:
    """A user error (ctxsynth.errors.UserError), a third-party library that is not installed, a
    full disk or missing permission and a GPU out of memory become one red line and exit code 2; Ctrl-C says how to resume
    and exits 130; anything else is a bug and propagates to `main`, which prints its traceback and
    asks for a report."""
    try:
        return fn()
    except UserError as e:
        fail(e)
    except ModuleNotFoundError as e:  # an optional library the chosen component imports: which extra brings it
        if (missing := missing_module(e)) is None:
            raise
        fail(missing)
    except OSError as e:  # a full disk, a missing permission, a read-only file system: one line too
        if (resource := resource_error(e)) is None:
            raise
        fail(resource)
    except RuntimeError as e:  # the GPU ran out of memory (another process on it, or too large a setting)
        if (oom := out_of_memory(e)) is None:
            raise
        fail(oom)
    except KeyboardInterrupt:
        console.print(INTERRUPTED, highlight=False)
        raise typer.Exit(130) from None
