"""The report's PNG plots, drawn on matplotlib's Agg canvas (no pyplot, no global backend state).

Each function takes the run summary (and the price table) and returns the PNG bytes, or None when the run has no data
for it yet (a partial run), so the card shows only plots that mean something.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from ctxsynth.llm.prices import money
from ctxsynth.report.collect import RunSummary
from ctxsynth.report.costs import cost_of

BLUE, ORANGE, GREY, RED = "#3b6ea8", "#e08a2e", "#9a9a9a", "#c0392b"


def _figure(width: float = 6.4, height: float = 3.6) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _bins(values: Sequence[float], marks: Sequence[float] = (), n: int = 30) -> list[float]:
    """Histogram edges over the values and the marked lines together (few values: fewer, wider bins),
    so that a handful of records still gives bars wide enough to see next to a far-away target line."""
    lo, hi = min([*values, *marks]), max([*values, *marks])
    if hi == lo:
        return [lo - 0.5, hi + 0.5]
    k = min(n, max(8, len(values)))
    return [lo + i * (hi - lo) / k for i in range(k + 1)]


def _rug(ax: Axes, values: Sequence[float]) -> None:
    """With few records, one tick per record under the bars: every record is visible."""
    if len(values) <= 30:
        ax.plot(values, [0] * len(values), "|", color=RED, markersize=14, clip_on=False)


def _barh(counts: Counter, title: str, xlabel: str, color: str | Callable[[str], str] = BLUE,
          top: int = 20) -> bytes | None:
    if not counts:
        return None
    items = counts.most_common(top)[::-1]
    fig, ax = _figure(height=max(2.2, 0.35 * len(items) + 1.2))
    colors = [color(str(k)) for k, _ in items] if callable(color) else color
    bars = ax.barh([str(k) for k, _ in items], [v for _, v in items], color=colors)
    ax.bar_label(bars, padding=2, fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.margins(x=0.12)
    return _png(fig)


def token_lengths(s: RunSummary, prices: dict | None = None) -> bytes | None:
    """Left: how long the samples are; right: how full each is against its own target."""
    pairs = [(r.target, r.total) for r in s.samples if r.total is not None and r.target]
    if not pairs:
        return None
    fig = Figure(figsize=(9.0, 3.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    targets, totals = zip(*pairs, strict=True)
    left.hist(totals, bins=_bins(list(totals), sorted(set(targets))[:8]), color=BLUE, edgecolor="white")
    _rug(left, list(totals))
    for t in sorted(set(targets))[:8]:
        left.axvline(t, color=GREY, linestyle="--", linewidth=1)
    left.set(xlabel="tokens per sample (dashed: targets)", ylabel="samples", title="Sample length")
    fill = [n / t for t, n in pairs]
    colors = [RED if f > 1 else BLUE for f in fill]
    right.scatter(targets, fill, s=12, alpha=0.6, c=colors)
    right.axhline(1.0, color=RED, linestyle="--", linewidth=1, label="budget (100%)")
    right.axhline(0.98, color=GREY, linestyle=":", linewidth=1, label="98% of target")
    right.set(xlabel="target tokens", ylabel="actual / target", title="Budget fill (red = over budget)",
              ylim=(min(min(fill), 0.9) - 0.02, max(max(fill), 1.0) + 0.02))
    right.yaxis.set_major_formatter(PercentFormatter(1.0))
    right.legend(fontsize=8, loc="lower right")
    return _png(fig)


def gold_depth(s: RunSummary, prices: dict | None = None) -> bytes | None:
    depths = [r.gold_depth for r in s.samples if r.gold_depth is not None]
    if not depths:
        return None
    fig, ax = _figure()
    ax.hist(depths, bins=[i / 10 for i in range(11)], color=BLUE, edgecolor="white")
    ax.set(xlim=(0, 1), xlabel="gold document depth (0 = start of prompt, 1 = end)", ylabel="samples",
           title="Where the evidence sits")
    return _png(fig)


def strategies(s: RunSummary, prices: dict | None = None) -> bytes | None:
    return _barh(Counter(r.strategy for r in s.samples), "Distractor strategy", "samples")


def rejections(s: RunSummary, prices: dict | None = None) -> bytes | None:
    counts = Counter({f"{stage}: {reason}": n for (stage, reason), n in s.rejections.items()})
    return _barh(counts, "Rejected records by stage and reason", "records", color=RED)


def generator_usage(s: RunSummary, prices: dict | None) -> bytes | None:
    models = [m for m, u in s.usage.items() if u.calls]
    if not models:
        return None
    fig, ax = _figure(height=max(2.4, 0.5 * len(models) + 1.4))
    prompt = [s.usage[m].prompt_tokens / 1e3 for m in models]
    completion = [s.usage[m].completion_tokens / 1e3 for m in models]
    ax.barh(models, prompt, color=BLUE, label="prompt")
    bars = ax.barh(models, completion, left=prompt, color=ORANGE, label="completion")
    labels = []
    for m in models:
        cost = cost_of(s.usage[m], prices, m)
        labels.append(f"{s.usage[m].calls} calls" + (f", {money(cost)}" if cost is not None else ""))
    ax.bar_label(bars, labels=labels, padding=3, fontsize=8)
    ax.set(xlabel="thousand tokens", title="Generator usage (every attempt)")
    ax.margins(x=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def per_task(s: RunSummary, prices: dict | None = None) -> bytes | None:
    samples = Counter(r.task for r in s.samples)
    tasks = sorted(set(s.seed_tasks) | set(s.synth_tasks) | set(samples))
    if not tasks:
        return None
    fig, ax = _figure(width=max(6.4, 0.9 * len(tasks) + 2))
    series = [("seeds", s.seed_tasks, GREY), ("synthesized", s.synth_tasks, BLUE), ("samples", samples, ORANGE)]
    series = [x for x in series if x[1]]
    width = 0.8 / len(series)
    for k, (label, counts, color) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(tasks))]
        ax.bar(xs, [counts.get(t, 0) for t in tasks], width=width, color=color, label=label)
    ax.set_xticks(range(len(tasks)), tasks, rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="records", title="Records per task through the pipeline")
    ax.legend(fontsize=8)
    return _png(fig)


def context_words(s: RunSummary, prices: dict | None = None) -> bytes | None:
    if not s.context_words:
        return None
    fig, ax = _figure()
    ax.hist(s.context_words, bins=_bins(s.context_words, [s.target_words] if s.target_words else []),
            color=BLUE, edgecolor="white")
    _rug(ax, s.context_words)
    if s.target_words:
        ax.axvline(s.target_words, color=RED, linestyle="--", label=f"requested ({s.target_words} words)")
        ax.legend(fontsize=8)
    ax.set(xlabel="words per synthesized context", ylabel="contexts", title="Synthesized context length")
    return _png(fig)


def verdicts(s: RunSummary, prices: dict | None = None) -> bytes | None:
    counts = Counter({f"{check}: {outcome}": n for (check, outcome), n in s.verdicts.items()})
    def outcome_color(label: str) -> str:
        outcome = label.rsplit(": ", 1)[-1]
        return {"pass": BLUE, "fail": RED}.get(outcome, GREY)

    return _barh(counts, "Verification verdicts (kept and rejected records)", "records", color=outcome_color, top=30)


def reliance(s: RunSummary, prices: dict | None = None) -> bytes | None:
    if not any(s.reliance.values()):
        return None
    fig, ax = _figure()
    for (label, scores), color in zip(s.reliance.items(), (BLUE, RED), strict=False):
        ax.hist(scores, bins=30, alpha=0.6, color=color, edgecolor="white", label=f"{label} (n={len(scores)})")
    ax.axvline(0.0, color=GREY, linestyle=":")
    ax.legend(fontsize=8)
    ax.set(xlabel="context reliance (answer log-prob with - without context, nats/token)", ylabel="records",
           title="Context reliance")
    return _png(fig)


PLOTS: list[tuple[str, str, Callable[..., bytes | None], str]] = [
    ("token_lengths.png", "Token length vs target", token_lengths,
     "Left: sample lengths against their targets. Right: each sample's tokens as a share of its target; "
     "all dots belong between the dotted 98% line and the dashed 100% line (red = over budget)."),
    ("gold_depth.png", "Gold-document depth", gold_depth, "Realised depth of the evidence in the prompt."),
    ("distractor_strategy.png", "Distractor strategies", strategies, "How the distractor documents were chosen."),
    ("rejections.png", "Rejection reasons", rejections, "Records dropped at each stage, by reason."),
    ("generator_usage.png", "Generator usage and cost", generator_usage,
     "Tokens sent to and received from each generator model, failed attempts included."),
    ("per_task.png", "Per-task breakdown", per_task, "How many records of each task survive each stage."),
    ("context_words.png", "Synthesized context length", context_words,
     "Words per synthesized context against the requested length."),
    ("verdicts.png", "Verification verdicts", verdicts,
     "Outcome of each verification check over every synthesized record, kept and rejected (a rejected record's "
     "last attempt), and the final result: verified, or rejected with the check that failed."),
    ("reliance.png", "Context reliance", reliance,
     "How much the context raises the answer's log-probability under the scoring model; near or below 0 means "
     "the answer does not depend on the context (see docs/filters.md for what this score can and cannot tell)."),
]
