"""The dataset card text (markdown): headline table, plots, detail tables, caveats.

Written so a person can judge the dataset in 30 seconds: the first table answers "how much, how
long, from what, at what cost, how much was thrown away"; the plots follow; the caveats close.
Plot drawing lives in `plots`; this module only writes text.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence

from ctxsynth.eval.stage import card_section
from ctxsynth.export.hub import CardInfo, card_header, seed_source_info
from ctxsynth.llm.prices import money
from ctxsynth.report.caveats import stage_input
from ctxsynth.report.collect import RunSummary
from ctxsynth.report.costs import cost_of

EXAMPLE_HEAD, EXAMPLE_TAIL = 700, 400
# the Hub's default config: the first of these that was exported (answer-only in TRL by default first)
DEFAULT_CONFIGS = ("trl_prompt_completion", "trl_messages", "parquet")  # characters of a long prompt shown in the example


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _mean(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):,.0f}" if values else "-"


def total_cost(s: RunSummary, prices: dict | None) -> float | None:
    costs = [cost_of(u, prices, m) for m, u in s.usage.items() if u.calls]
    known = [c for c in costs if c is not None]
    return sum(known) if known else None


def _length_line(s: RunSummary) -> str:
    totals = [r.total for r in s.samples if r.total is not None]
    pairs = [(r.total, r.target) for r in s.samples if r.total is not None and r.target]
    if not totals:
        return "-"
    line = f"mean {_mean(totals)} (min {min(totals):,}, max {max(totals):,})"
    if pairs:
        within = sum(t <= g for t, g in pairs)
        line += f"; target mean {_mean([g for _, g in pairs])}; within budget {within}/{len(pairs)}"
    return line


def _attempt_line(s: RunSummary) -> str:
    calls = sum(u.calls for u in s.usage.values())
    failed = sum(s.attempt_reasons.values())
    if not calls:
        return "-"
    top = ", ".join(f"{r} {n}" for r, n in s.attempt_reasons.most_common(3))
    return f"{calls - failed:,}/{calls:,}" + (f" (failures: {top})" if top else "")


def _generator_line(s: RunSummary, prices: dict | None) -> str:
    used = {m: u for m, u in s.usage.items() if u.calls}
    if not used:
        return "-"
    calls = sum(u.calls for u in used.values())
    p_tok = sum(u.prompt_tokens for u in used.values())
    c_tok = sum(u.completion_tokens for u in used.values())
    cost = total_cost(s, prices)
    spent = money(cost) if cost is not None else "cost n/a (no price table)"
    return f"{', '.join(sorted(used))}: {calls:,} calls, {p_tok:,} prompt + {c_tok:,} completion tokens, {spent}"


def _rejection_line(s: RunSummary) -> str:
    by_stage: Counter[str] = Counter()
    for (stage, _), n in s.rejections.items():
        by_stage[stage] += n
    if not by_stage:
        return "none"
    return "; ".join(f"{stage} {n:,} ({n / max(1, stage_input(s, stage, n)):.0%})" for stage, n in sorted(by_stage.items()))


def assembled(s: RunSummary) -> bool:
    """Whether assembly ran (finished or wrote output), so that no samples means 0, not 'not yet'."""
    info = s.stage("assemble")
    return bool(s.samples) or (info is not None and (info.done or info.shards_done > 0))


def _samples_cell(s: RunSummary) -> str:
    if s.samples:
        return f"{len(s.samples):,}"
    return "0 samples" if assembled(s) else "not assembled yet"


def headline(s: RunSummary, prices: dict | None, n_caveats: int) -> list[str]:
    n_seeds, n_synth, n_samples = sum(s.seed_tasks.values()), len(s.context_words), len(s.samples)
    tasks = sorted(set(s.seed_tasks) | set(s.synth_tasks))
    depths = [r.gold_depth for r in s.samples if r.gold_depth is not None]
    words = f"mean {_mean(s.context_words)}, median {statistics.median(s.context_words):,.0f}" if s.context_words else "-"
    if s.target_words and s.context_words:
        words += f" (requested {s.target_words:,})"
    rows = [
        ("Samples", _samples_cell(s)),
        ("Seeds -> synthesized -> samples", f"{n_seeds:,} -> {n_synth:,} -> {n_samples:,}"),
        ("Tasks", ", ".join(tasks) or "-"),
        ("Tokens per sample", _length_line(s)),
        ("Gold depth", f"mean {statistics.fmean(depths):.2f}, range {min(depths):.2f}-{max(depths):.2f}" if depths else "-"),
        ("Words per synthesized context", words),
        ("Generator", _generator_line(s, prices)),
        ("Generation attempts passing verification", _attempt_line(s)),
        ("Rejected", _rejection_line(s)),
        ("Exports", ", ".join(sorted(s.exports)) or "-"),
        ("Caveats", f"**{n_caveats}**, see the end of this card" if n_caveats else "none"),
    ]
    return _table(["At a glance", ""], rows)


def detail_tables(s: RunSummary, prices: dict | None) -> list[str]:
    lines: list[str] = []
    tasks = sorted(set(s.seed_tasks) | set(s.synth_tasks) | {r.task for r in s.samples})
    rows: list[tuple[object, ...]]
    if tasks:
        rows = [(t, s.seed_tasks.get(t, 0), s.synth_tasks.get(t, 0), sum(r.task == t for r in s.samples),
                 _mean(s.context_words_by_task.get(t, [])),
                 _mean([r.total for r in s.samples if r.task == t and r.total is not None])) for t in tasks]
        lines += ["### Per task", ""] + _table(
            ["task", "seeds", "synthesized", "samples", "mean context words", "mean sample tokens"], rows)
    used = sorted((m, u) for m, u in s.usage.items() if u.calls)
    if used:
        rows = []
        for m, u in used:
            cost = cost_of(u, prices, m)
            rows.append((m, f"{u.calls:,} ({u.cached_calls:,} cached)", f"{u.prompt_tokens:,}",
                         f"{u.completion_tokens:,}", money(cost) if cost is not None else "n/a"))
        lines += ["### Generator usage", ""] + _table(
            ["model", "calls", "prompt tokens", "completion tokens", "cost"], rows)
    if s.rejections:
        rows = [(st, f"`{r}`", n) for (st, r), n in sorted(s.rejections.items(), key=lambda x: (x[0][0], -x[1]))]
        lines += ["### Rejections", ""] + _table(["stage", "reason", "records"], rows)
    if s.attempt_reasons:
        rows = [(f"`{r}`", n) for r, n in s.attempt_reasons.most_common()]
        lines += ["### Failed generation attempts (retried or rejected)", ""] + _table(["reason", "attempts"], rows)
    if s.stages:
        rows = [(st.name, ("yes" if st.done else "no") if st.tracked else "no markers", st.shards_done, st.n_in, st.n_out, st.seconds) for st in s.stages]
        lines += ["### Pipeline", ""] + _table(["stage", "finished", "shards", "in", "out", "seconds"], rows)
    if s.exports:
        rows = [(f, m.get("counts", {}).get("total"), m.get("counts", {}).get("general"),
                 ", ".join(e["path"] for e in m.get("files", []))) for f, m in sorted(s.exports.items())]
        lines += ["### Exports", ""] + _table(["format", "rows", "of which general", "files"], rows)
    return lines


def card_info(s: RunSummary) -> CardInfo:
    """Licence, language, seeds, generator and tokenizer of the run, from its config and exports."""
    seeds, export = s.config.get("seeds") or {}, s.config.get("export") or {}
    licence, seeds_line = seed_source_info(str(seeds.get("source", "unknown")), seeds.get("path"))
    tokenizers = sorted({str(m.get("tokenizer")) for m in s.exports.values() if m.get("tokenizer")})
    tokenizer = ", ".join(tokenizers) or str((s.config.get("assemble") or {}).get("tokenizer", "unknown"))
    return CardInfo(license=export.get("license") or licence, language=list(export.get("language") or ["en"]),
                    seed_sources=[seeds_line], generators=sorted(m for m, u in s.usage.items() if u.calls),
                    tokenizer=tokenizer, pretty_name=str(export.get("dataset_name") or s.name))


def front_matter(s: RunSummary, info: CardInfo) -> str:
    """Hugging Face dataset-card YAML: one config per export, paths relative to the export folder."""
    order = sorted(s.exports, key=lambda f: (f not in DEFAULT_CONFIGS, DEFAULT_CONFIGS.index(f) if f in DEFAULT_CONFIGS else 0, f))
    configs = {fmt: [{**e, "path": f"{fmt}/{e['path']}"} for e in s.exports[fmt].get("files", []) if e.get("rows") is not None]
               for fmt in order}
    n_rows = max((m.get("counts", {}).get("total", 0) for m in s.exports.values()), default=len(s.samples))
    return card_header(info, n_rows, configs) if configs else card_header(info, n_rows, {})


def _clip(text: str) -> str:
    if len(text) <= EXAMPLE_HEAD + EXAMPLE_TAIL + 100:
        return text
    omitted = len(text) - EXAMPLE_HEAD - EXAMPLE_TAIL
    return f"{text[:EXAMPLE_HEAD]}\n\n[... {omitted:,} characters omitted ...]\n\n{text[-EXAMPLE_TAIL:]}"


def provenance_lines(s: RunSummary, info: CardInfo) -> list[str]:
    lines = ["## Provenance", "", f"- Tokenizer of every token count: `{info.tokenizer}`"]
    lines += [f"- Seeds: {line}" for line in info.seed_sources]
    lines += [f"- Generator: `{g}`" for g in info.generators] or ["- Generator: none recorded"]
    lines += [f"- Card licence field: `{info.license}` (the seeds' licence; the generator's terms of use also apply)", ""]
    if s.example:
        ex = s.example
        lines += [f"### One example (`{ex['id']}`, task {ex['task']}, {ex['n_documents']} documents, gold depth "
                  f"{ex['gold_depth']:.2f}, {(ex.get('tokens') or {}).get('total', '?')} tokens)", ""]
        for m in ex.get("messages") or []:
            lines += [f"**{m['role']}**:", "", "```text", _clip(str(m["content"])), "```", ""]
    return lines


def training_section(s: RunSummary) -> list[str]:
    from ctxsynth.export.hub import training_lines

    lines = []
    for fmt, manifest in sorted(s.exports.items()):
        if manifest.get("training"):
            lines += [f"- `{fmt}`:"] + ["  " + line for line in training_lines(manifest["training"])]
    return ["## Training on it", "", *lines, ""] if lines else []


def render_card(s: RunSummary, plots: Sequence[tuple[str, str, str]], caveat_list: Sequence[str],
                prices: dict | None) -> str:
    """plots: (file name relative to the card, title, caption) of the plots that were drawn."""
    info = card_info(s)
    lines = [front_matter(s, info), f"# Dataset card: {s.name}", "",
             "Long-context instruction-tuning data made by context synthesis with ctxsynth "
             f"(run directory `{s.run_dir}`).", ""]
    if s.fake_backend:
        lines += ["> **Warning: made with the `fake` backend.** The documents are canned test text, not "
                  "generated by a language model: do not train on this data.", ""]
    lines += headline(s, prices, len(caveat_list))
    if s.exports:
        lines += ["Load an export: `datasets.load_dataset(\"<run>/export\", \"<format>\")` or "
                  "`load_dataset(\"<run>/export/<format>\")`.", ""]
    lines += [f"Read the samples, rejections and predictions in a browser: [view/index.html](../view/index.html) "
              f"(`ctxsynth view {s.run_dir}` writes it, offline).", ""]
    if plots:
        lines += ["## Plots", ""]
        for name, title, caption in plots:
            lines += [f"### {title}", "", f"![{title}]({name})", "", caption, ""]
    lines += training_section(s) + provenance_lines(s, info)
    details = detail_tables(s, prices)
    lines += card_section(s.run_dir)  # the train and eval stages' comparison, when they ran
    from ctxsynth.eval.ruler.report import card_section as ruler_section  # RULER tables of eval/, when run

    lines += ruler_section(s.run_dir)
    if details:
        lines += ["## Details", ""] + details
    lines += ["## Caveats", ""]
    lines += [f"- {c}" for c in caveat_list] or ["- None found by the automatic checks."]
    return "\n".join(lines).rstrip() + "\n"
