"""The dataset report renders on a hand-built run directory, full or partial, and reads true."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from matplotlib.image import imread

from ctxsynth.export import export_samples
from ctxsynth.io import Markers, shard_name, write_jsonl
from ctxsynth.records import Attempt, Rejected, Sample, Seed, Synthesized, to_dict
from ctxsynth.report import write_report
from ctxsynth.report.collect import verdict_outcome

TASKS = ("single_doc_qa", "multi_doc_qa")
PRICES = {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.60}}


def _seed(i: int) -> Seed:
    return Seed(id=f"seed{i}", task=TASKS[i % 2], instruction=f"Who built tower {i}?", answer=f"Builder {i}")


def _synth(i: int, ok: bool = True) -> Synthesized:
    seed = _seed(i)
    usage = {"prompt_tokens": 300, "completion_tokens": 800}
    attempts = [Attempt(0, 1, "I cannot help.", "stop", usage, reason="refusal")] if i % 4 == 0 else []
    attempts.append(Attempt(len(attempts), 2, "Context: ...", "stop", usage,
                            reason=None if ok else "answer_not_supported"))
    words = 400 + 50 * i
    return Synthesized(
        id=seed.id, task=seed.task, seed=seed, context=" ".join(["word"] * words),
        provenance={"model": "gpt-4o-mini", "backend": "openai", "usage": usage, "prompt_hash": "abc",
                    "finish_reason": "stop"},
        verdicts={"answer_supported": {"ok": ok, "score": 0.9 if ok else 0.1}, "length": True},
        attempts=attempts,
    )


def _sample(i: int, total: int | None = None) -> Sample:
    rng = random.Random(i)
    target = rng.choice([4000, 8000])
    return Sample(
        id=f"s{i}", task=TASKS[i % 2], seed_id=f"seed{i}",
        messages=[{"role": "user", "content": "docs... question"}, {"role": "assistant", "content": f"Builder {i}"}],
        answer=f"Builder {i}", template=TASKS[i % 2], gold_index=i % 10, gold_indices=[i % 10],
        gold_depth=rng.random(), gold_char_span=[0, 4], gold_token_span=[0, 2], n_documents=10,
        distractor_ids=[f"seed{j}" for j in range(9)], distractor_strategy="same_task" if i % 3 else "bm25",
        separator="blank_line", tokens={"total": total or int(target * rng.uniform(0.98, 1.0)), "target": target,
                                        "prompt": target - 20, "answer": 5, "per_document": [400] * 10},
        tokenizer="smollm2", meta={"instruction": f"Who built tower {i}?"},
    )


def _shard(folder: Path, records: list) -> None:
    write_jsonl(folder / shard_name(0), [to_dict(r) for r in records])


def build_run(root: Path, assembled: bool = True) -> Path:
    run = root / "demo-run"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: demo-run\nsynth:\n  target_words: 2000\n")
    _shard(run / "seeds", [_seed(i) for i in range(12)])
    _shard(run / "synth", [_synth(i) for i in range(8)])
    rejected = [Rejected(f"seed{i}", "synth", "answer_not_supported", "judge said no", to_dict(_synth(i, ok=False)))
                for i in range(8, 12)]
    _shard(run / "synth" / "rejected", rejected)
    state = run / "_state"
    for stage, n_in, n_out in (("seeds", 12, 12), ("synthesize", 12, 8)):
        Markers(state, stage).mark_shard(0, {"n_in": n_in, "n_out": n_out, "seconds": 1.5,
                                             "usage": {"requests_cached": 3, "requests_sent": 9}})
        Markers(state, stage).mark_stage({})
    if assembled:
        samples = [_sample(i) for i in range(8)]
        _shard(run / "assemble", samples)
        _shard(run / "assemble" / "rejected", [Rejected("s9", "assemble", "pool_too_small", "", {})])
        Markers(state, "assemble").mark_shard(0, {"n_in": 9, "n_out": 8, "seconds": 0.2})
        Markers(state, "assemble").mark_stage({})
        export_samples(samples, run / "export", ["trl_messages", "parquet"], config_hash="h", tokenizer_name="smollm2")
    return run


def _pngs(card: Path) -> list[str]:
    return re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", card.read_text())


def _assert_valid_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_full_run_card_has_headline_plots_and_caveats_in_order(tmp_path):
    card = write_report(build_run(tmp_path), price_table=PRICES)
    text = card.read_text()
    assert card == tmp_path / "demo-run" / "report" / "README.md"
    headline, plots, caveats = text.index("| Samples | 8 |"), text.index("## Plots"), text.index("## Caveats")
    assert headline < plots < caveats
    assert "12 -> 8 -> 8" in text and "within budget 8/8" in text
    names = _pngs(card)
    assert set(names) == {"token_lengths.png", "gold_depth.png", "distractor_strategy.png", "rejections.png",
                          "generator_usage.png", "per_task.png", "context_words.png", "verdicts.png"}
    for name in names:
        _assert_valid_png(card.parent / name)
    assert "trl_messages" in text and "parquet" in text


def test_cost_counts_every_attempt_at_the_table_price(tmp_path):
    text = write_report(build_run(tmp_path), price_table=PRICES).read_text()
    # 12 synthesized records (8 kept + 4 rejected), 1 attempt each plus a refusal retry for i in {0, 4, 8}
    calls = 12 + 3
    cost = calls * (300 * 0.15 + 800 * 0.60) / 1e6
    assert f"{calls} calls" in text and f"${cost:.4f}" in text
    assert "| `refusal` | 3 |" in text


def test_caveats_flag_rejections_and_short_contexts(tmp_path):
    text = write_report(build_run(tmp_path)).read_text()
    caveats = text[text.index("## Caveats"):]
    assert "High rejection rate at **synth**: 4 of 12" in caveats and "answer_not_supported" in caveats
    assert "much shorter than requested" in caveats and "against 2000 asked" in caveats
    assert "exceed their token target" not in caveats
    assert "cost n/a (no price table)" in text


def test_over_budget_samples_are_flagged(tmp_path):
    run = build_run(tmp_path)
    samples = [_sample(i) for i in range(4)] + [_sample(9, total=9000)]
    _shard(run / "assemble", samples)
    text = write_report(run).read_text()
    assert "1 of 5 samples exceed their token target" in text


def test_partial_run_reports_synth_sections_only(tmp_path):
    card = write_report(build_run(tmp_path, assembled=False))
    text = card.read_text()
    assert "not assembled yet" in text and "Partial run" in text
    names = set(_pngs(card))
    assert names == {"rejections.png", "generator_usage.png", "per_task.png", "context_words.png", "verdicts.png"}
    for name in names:
        _assert_valid_png(card.parent / name)
    assert not (card.parent / "token_lengths.png").exists()


def test_rerun_after_assembly_removed_drops_stale_plots(tmp_path):
    run = build_run(tmp_path)
    write_report(run)
    for p in (run / "assemble").rglob("*.jsonl.gz"):
        p.unlink()
    card = write_report(run)
    assert not (card.parent / "token_lengths.png").exists() and "token_lengths.png" not in card.read_text()


def test_missing_run_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(tmp_path / "nope")


@pytest.mark.parametrize("value,expected", [
    (True, "pass"), (False, "fail"), ({"ok": False, "score": 0.2}, "fail"), ({"passed": True}, "pass"),
    ({"verdict": "unsupported"}, "unsupported"), ("skipped", "skipped"), (0.7, None), ({"score": 0.3}, None),
])
def test_verdict_outcomes_are_read_from_common_shapes(value, expected):
    assert verdict_outcome(value) == expected


def _front_matter(text: str) -> dict:
    import yaml

    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_starts_with_hub_yaml_and_names_its_provenance(tmp_path):
    run = build_run(tmp_path)
    (run / "config.yaml").write_text("name: demo-run\nseeds: {source: squad}\nsynth: {target_words: 2000}\n"
                                     "assemble: {tokenizer: smollm2}\n")
    text = write_report(run).read_text()
    meta = _front_matter(text)
    assert meta["license"] == "cc-by-sa-4.0" and meta["language"] == ["en"] and meta["size_categories"] == ["n<1K"]
    assert meta["task_categories"] == ["text-generation", "question-answering"]
    assert [c["config_name"] for c in meta["configs"]] == ["trl_messages", "parquet"]
    assert meta["configs"][0]["default"] is True
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "trl_messages/data.jsonl"}]
    assert "SQuAD v2.0 dev questions and answers (CC BY-SA 4.0)" in text and "`smollm2`" in text
    assert "### One example (`s0`" in text and "Builder 0" in text
    assert "fake" not in text
    # the export folder is the Hub dataset: the same card, plots linked from report/
    hub = (run / "export" / "README.md").read_text()
    assert _front_matter(hub) == meta and "](../report/token_lengths.png)" in hub


def test_usage_counts_once_when_assembly_rejects_kept_contexts(tmp_path):
    run = build_run(tmp_path)
    rejected = [Rejected(f"seed{i}", "assemble", "pool_exhausted", "", to_dict(_synth(i))) for i in range(8)]
    _shard(run / "assemble" / "rejected", rejected)
    text = write_report(run, price_table=PRICES).read_text()
    assert "15 calls" in text  # 12 records + 3 refusal retries, as without the assembly rejections


def test_zero_samples_after_assembly_is_zero_not_pending(tmp_path):
    run = build_run(tmp_path)
    _shard(run / "assemble", [])
    text = write_report(run).read_text()
    assert "| Samples | 0 samples |" in text and "not assembled yet" not in text
    assert "Assembly produced 0 samples from 8 verified contexts" in text


def test_fake_backend_is_announced(tmp_path):
    run = build_run(tmp_path, assembled=False)
    fake = _synth(0)
    fake.provenance["backend"] = "fake"
    _shard(run / "synth", [fake])
    text = write_report(run).read_text()
    assert "Warning: made with the `fake` backend" in text and "not training data" in text


def test_verdicts_count_rejected_records_and_few_records_still_plot(tmp_path):
    from ctxsynth.report.collect import collect
    from ctxsynth.report.plots import _bins

    run = build_run(tmp_path)
    summary = collect(run)
    assert summary.verdicts[("verified", "pass")] == 8
    assert summary.verdicts[("rejected (answer_not_supported)", "fail")] == 4
    assert summary.verdicts[("answer_supported", "fail")] == 4  # from the rejected records' last attempt
    # one record far from its target: the bars span the whole axis instead of a sliver
    edges = _bins([97], [150])
    assert edges[0] == 97 and edges[-1] == 150 and len(edges) == 9
    assert _bins([5, 5]) == [4.5, 5.5]
