"""The report plots the context-reliance distribution when the filter stage scored the seeds."""

from __future__ import annotations

from pathlib import Path

from ctxsynth.io import Markers, shard_name, write_jsonl
from ctxsynth.records import Rejected, Seed, to_dict
from ctxsynth.report import write_report


def test_reliance_scores_of_filtered_seeds_are_plotted(tmp_path: Path) -> None:
    run = tmp_path / "r"
    (run).mkdir()
    (run / "config.yaml").write_text("name: r\n")
    seeds = [Seed(id=f"s{i}", task="qa", instruction=f"Question {i}?", answer="a",
                  meta={"filters": {"reliance": {"reliance": 0.5 * i - 1.0}}}) for i in range(10)]
    write_jsonl(run / "seeds" / shard_name(0), [to_dict(s) for s in seeds])
    write_jsonl(run / "filter" / shard_name(0), [to_dict(s) for s in seeds[2:]])
    write_jsonl(run / "filter" / "rejected" / shard_name(0),
                [to_dict(Rejected(s.id, "filter", "low_context_reliance", "", to_dict(s))) for s in seeds[:2]])
    Markers(run / "_state", "filter").mark_stage({"n_in": 10, "n_out": 8})
    card = write_report(run)
    png = run / "report" / "reliance.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Context reliance" in card.read_text()
