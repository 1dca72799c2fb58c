"""The `ray` executor on a real local Ray (2 CPUs, started once for this module by the executor itself):
the same bytes as a serial run, the API limit held across Ray workers, a crashed Ray worker's shard retried."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import test_executors as helpers  # noqa: E402  (tests/ is on sys.path under pytest)
from ctxsynth.pipeline.contract import run_sharded  # noqa: E402
from ctxsynth.pipeline.executors import RayConfig  # noqa: E402
from ctxsynth.pipeline.ray_executor import RayExecutor  # noqa: E402
from ctxsynth.testing.openai_server import OpenAIServer  # noqa: E402


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module, started as a run would start it; later executors reuse it."""
    from ray import cloudpickle  # Ray's own copy pickles the tasks

    cloudpickle.register_pickle_by_value(sys.modules[helpers.__name__])  # test classes travel by value
    executor = RayExecutor(RayConfig(num_cpus=2))
    assert executor.workers == 2 and ray.is_initialized()
    yield
    executor.close()
    assert not ray.is_initialized()


@pytest.mark.timeout(300)
def test_ray_writes_the_same_bytes_as_serial_and_holds_the_limit(tmp_path: Path, local_ray: None) -> None:
    helpers.write_seeds(tmp_path / "seeds.jsonl")
    with OpenAIServer(helpers.flaky_writer) as server:
        dirs = helpers.run_dirs(tmp_path, server.url, {"serial": {"executor": "serial", "shards": 1},
                                                       "ray": {"executor": "ray", "max_concurrency": 2}})
        server.reset_stats()
    for stage in ("seeds", "seeds/rejected", "synth", "synth/rejected"):
        reference = helpers.stage_bytes(dirs["serial"], stage)
        assert reference and helpers.stage_bytes(dirs["ray"], stage) == reference, stage
    assert ray.is_initialized()  # a Ray the run did not start is left running


@pytest.mark.timeout(300)
def test_ray_limit_counted_by_the_server(tmp_path: Path, local_ray: None) -> None:
    helpers.write_seeds(tmp_path / "seeds.jsonl")
    with OpenAIServer(helpers.slow_writer) as server:
        helpers.run_dirs(tmp_path, server.url, {"r": {"executor": "ray", "workers": 2, "max_concurrency": 4}})
        peak = server.max_in_flight
    assert 2 <= peak <= 4


@pytest.mark.timeout(300)
def test_a_crashed_ray_worker_is_retried(tmp_path: Path, local_ray: None) -> None:
    run = helpers.bare_run(tmp_path, "ray")
    try:
        summary = run_sharded(run, "seeds", 3, helpers.FailOnce(str(tmp_path), "kill"))
    finally:
        run.close_executor()
    assert summary["n_out"] == 3 and run.markers("seeds").stage_done()
