"""The error family at the CLI: a user error is one line and exit 2 (its traceback only under -v);
a bug is never dressed up as a user error: it shows its traceback and asks for a report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxsynth import cli, errors
from ctxsynth.cli import app

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


@pytest.mark.parametrize("cls", [errors.ConfigError, errors.SeedError, errors.RegistryError, errors.AssetMissing,
                                 errors.MissingAPIKeyError, errors.PathNotFound, errors.InputError,
                                 errors.MissingDependency, errors.BackendUnavailable])
def test_every_user_facing_error_is_a_user_error(cls: type[Exception]) -> None:
    assert issubclass(cls, errors.UserError)


def test_old_builtin_bases_are_kept_for_callers_that_catch_them() -> None:
    assert issubclass(errors.ConfigError, ValueError) and issubclass(errors.SeedError, ValueError)
    assert issubclass(errors.RegistryError, KeyError) and issubclass(errors.AssetMissing, FileNotFoundError)
    assert str(errors.RegistryError("plain text")) == "plain text"


def test_user_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and "missing.yaml" in result.output and "does not exist" in result.output


def test_verbose_shows_the_traceback_of_a_user_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["seeds", str(tmp_path / "missing.yaml"), "-v"])
    assert result.exit_code == 2
    assert "Traceback" in result.output and "ConfigError" in result.output and "error:" in result.output


def _main(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> int:
    monkeypatch.setattr(sys, "argv", ["ctxsynth", *argv])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    return int(exc.value.code or 0)


def test_a_bug_shows_its_traceback_and_asks_for_a_report(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import ctxsynth.pipeline.preflight

    def broken(run: object) -> list[str]:
        list(zip([1, 2], [1], strict=True))  # the kind of bug that used to read as a user error
        return []

    monkeypatch.setattr(ctxsynth.pipeline.preflight, "validate_run", broken)
    code = _main(monkeypatch, ["validate", str(QUICKSTART)])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" in err and "zip()" in err and "please report it" in err


def test_main_turns_a_user_error_into_exit_2_and_version_works(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(monkeypatch, ["validate", "no-such-config.yaml"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert _main(monkeypatch, ["--version"]) == 0
    from ctxsynth import __version__

    assert capsys.readouterr().out.strip() == __version__


def test_a_library_that_is_not_installed_is_one_line_naming_its_extra(monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A component's optional library missing (bm25s on a GPU machine, issue 27) read as a ctxsynth bug
    with a traceback; it is the user's to install, and the message names the extra that brings it."""
    import importlib

    import ctxsynth.pipeline.preflight

    def needs(module: str):  # noqa: ANN202
        def validate(run: object) -> list[str]:
            importlib.import_module(module)
            return []
        return validate

    monkeypatch.setitem(sys.modules, "bm25s", None)  # not importable, as when it is not installed
    monkeypatch.setattr(ctxsynth.pipeline.preflight, "validate_run", needs("bm25s"))
    assert _main(monkeypatch, ["validate", str(QUICKSTART)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "'bm25s' is not installed" in err and "pip install 'ctxsynth[assemble]'" in err
    monkeypatch.setattr(ctxsynth.pipeline.preflight, "validate_run", needs("ctxsynth.no_such_module"))
    assert _main(monkeypatch, ["validate", str(QUICKSTART)]) == 1  # a ctxsynth module: a bug, with its traceback
    assert "Traceback" in capsys.readouterr().err


def test_a_missing_library_keeps_its_name_through_a_worker_process() -> None:
    import pickle

    lost = pickle.loads(pickle.dumps(ModuleNotFoundError("No module named 'sentence_transformers.models'")))
    assert lost.name is None  # what a process pool hands back
    problem = errors.missing_module(lost)
    assert isinstance(problem, errors.MissingDependency) and "'sentence_transformers'" in str(problem)
    assert "ctxsynth[assemble]" in str(problem)
    assert "install the package that provides 'zzz_nothing'" in str(errors.missing_module(ModuleNotFoundError(name="zzz_nothing")))


def test_a_gpu_out_of_memory_is_one_line_saying_what_to_change(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """torch's OutOfMemoryError, or CUDA's "out of memory" raised at a kernel launch (an AcceleratorError),
    is not a bug in ctxsynth: another process on the GPU, or a size the card cannot hold. One line, exit 2."""
    import torch

    import ctxsynth.pipeline.preflight

    for exc in (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 48.00 MiB. GPU 0 has a total capacity "
                                       "of 79.18 GiB of which 125.00 MiB is free. See documentation for Memory Management"),
                torch.AcceleratorError("CUDA error: out of memory\nSearch for `cudaErrorMemoryAllocation'")):
        def validate(run: object, exc: Exception = exc) -> list[str]:
            raise exc
        monkeypatch.setattr(ctxsynth.pipeline.preflight, "validate_run", validate)
        assert _main(monkeypatch, ["validate", str(QUICKSTART)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "out of GPU memory" in err and "memory_fraction" in err, err
        assert "See documentation" not in err and "cudaErrorMemoryAllocation" not in err  # the first line only
    assert not errors.is_out_of_memory(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert errors.out_of_memory(ValueError("out of memory")) is None  # not a RuntimeError: not the device's
