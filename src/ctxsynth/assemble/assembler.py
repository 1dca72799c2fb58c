"""The assembly stage: a verified synthetic context + distractors -> one chat training sample.

A record of multi-document synthesis brings several gold documents (`Synthesized.documents`): they
are indexed one by one (ids "<record id>#<k>"), placed apart among the distractors (position.py),
and every span is recorded; other records' documents serve as distractors one by one as well.
Each pool document is tokenized once when the Assembler is built; a sample's length is planned from
those counts and then measured exactly (budget.py) with the tokenizer and chat template the trainer
uses, so a token target is never exceeded. Every random choice draws from a generator seeded by
(run seed, "assemble", sample id): shard layout, worker count and order cannot change a sample.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from ctxsynth.assemble import position, selection
from ctxsynth.assemble.budget import ChatFrame, Count, Layout, fast_count, full_count
from ctxsynth.assemble.config import CORPUS_PREFIXES, AssembleConfig
from ctxsynth.assemble.corpus import load_corpus
from ctxsynth.assemble.distractors import build_source
from ctxsynth.assemble.documents import Doc, index_documents, trim_document
from ctxsynth.assemble.pool import DocPool, pool_items
from ctxsynth.assemble.templates import TemplateSet, document_prefix, joiner
from ctxsynth.records import Rejected, Sample, Synthesized, to_dict
from ctxsynth.rng import rng_for
from ctxsynth.tokenize import load_tokenizer

log = logging.getLogger(__name__)

_MAX_CORRECTIONS = 8
Trimmer = Callable[[Doc, int], "Doc | None"]


class Assembler:
    """Builds indexes over the pool once; `assemble` is then a pure function of the record.

    `pool`: the records whose contexts serve as distractors (indexed here, in memory), or a DocPool
    file built from them (ctxsynth.assemble.pool: read on demand); both give the same samples."""

    def __init__(self, config: AssembleConfig, pool: Sequence[Synthesized] | DocPool, run_seed: int) -> None:
        self.config = config
        self.run_seed = run_seed
        self.tokenizer = load_tokenizer(config.tokenizer)
        self.frame = ChatFrame.of(self.tokenizer)
        self.templates = TemplateSet(config.template)
        self.joiner = joiner(config.separator)
        self.pool: Sequence[Doc]
        self.by_id: dict[str, Doc] | None = None
        if isinstance(pool, DocPool):
            self.pool = pool
        else:
            unique = {r.id: r for r in sorted(pool, key=lambda r: r.id)}
            self.pool = index_documents(self.tokenizer, [item for r in unique.values() for item in pool_items(r)])
            self.by_id = {doc.id: doc for doc in self.pool}
        corpus: list[Doc] = []
        if config.distractors.startswith(CORPUS_PREFIXES):
            items = load_corpus(config.distractors.split(":", 1)[1], config.corpus_chunk_words)
            corpus = index_documents(self.tokenizer, [(i, "corpus", t) for i, t in items])
        model_dir = Path(config.embedding_model) if config.embedding_model else None
        self.source = build_source(config.distractors, self.pool, corpus, model_dir, config.random_draw)
        self.separator_cost = self._separator_cost()
        self.count_method = self._count_method()
        self.stats: Counter[str] = Counter()
        log.info("assembler ready: %d pool documents, %d corpus documents, counting=%s",
                 len(self.pool), len(corpus), self.count_method)

    def _separator_cost(self) -> int:
        """Tokens a separator adds between two documents, measured in context (whitespace merges)."""
        left, right = "It ends here.", "The next one"
        sep = self.joiner + document_prefix(self.config.separator, 9)
        encode = self.tokenizer.encode
        return max(len(encode(left + sep + right)) - len(encode(left)) - len(encode(right)), 0)

    def _count_method(self) -> str:
        """fast when it agrees with a full re-tokenization on a few pool layouts (or when forced)."""
        if self.config.verify != "auto":
            return self.config.verify
        docs = self.pool[:12]
        for start in range(0, max(len(docs) - 2, 1), 3):
            group = docs[start : start + 4]
            if not group:
                break
            layout = self._layout("Question: why?\n\n", group, len(group) // 2, "\n\nAnswer:", "because.")
            if fast_count(self.tokenizer, layout) != full_count(self.tokenizer, layout):
                log.warning("tokenizer %s merges across document boundaries; counting with full "
                            "re-tokenization (slower)", self.tokenizer.name)
                return "full"
        return "fast"

    def _layout(self, head: str, docs: Sequence[Doc], slot: int, tail: str, answer: str,
                slots: tuple[int, ...] = ()) -> Layout:
        sep = self.config.separator
        between = tail + self.frame.between
        return Layout(
            head=self.frame.before_user + head, docs=list(docs),
            prefixes=[document_prefix(sep, i) for i in range(len(docs))], joiner=self.joiner,
            tail=between + answer + self.frame.after_answer, answer_offset=len(between), gold_slot=slot,
            gold_slots=slots if len(slots) > 1 else (),
        )

    def _trimmer(self, tolerance: int) -> Trimmer:
        slack = max(tolerance // 2, 1)
        return lambda doc, n: trim_document(self.tokenizer, doc, n, slack)

    def count(self, layout: Layout) -> Count:
        counter = fast_count if self.count_method == "fast" else full_count
        return counter(self.tokenizer, layout)

    def golds(self, record: Synthesized) -> list[Doc]:
        """The record's gold document(s), from the pool index when the text is unchanged."""
        items = pool_items(record)
        docs = [self.lookup(doc_id) for doc_id, _, _ in items]
        if all(d is not None and d.text == text.strip() for d, (_, _, text) in zip(docs, items, strict=True)):
            return docs  # type: ignore[return-value]
        return index_documents(self.tokenizer, items)

    def lookup(self, doc_id: str) -> Doc | None:
        """The pool document with this id, or None."""
        if self.by_id is not None:
            return self.by_id.get(doc_id)
        assert isinstance(self.pool, DocPool)
        return self.pool.get(doc_id)

    def query(self, record: Synthesized, golds: list[Doc]) -> Doc:
        """What distractor strategies rank against: the gold, or all gold documents together."""
        if len(golds) == 1:
            return golds[0]
        return index_documents(self.tokenizer, [(record.id, record.task, record.context)])[0]

    def _target(self, rng: random.Random) -> int | None:
        targets = self.config.targets()
        if not targets:
            return None
        if self.config.target_sampling == "uniform":
            return rng.randint(targets[0], targets[1])
        return targets[0] if len(targets) == 1 else rng.choice(targets)

    def assemble(self, record: Synthesized) -> Sample | Rejected:
        """One sample for `record`, or a rejection with its reason."""
        cfg = self.config
        rng = rng_for(self.run_seed, "assemble", record.id)
        golds = self.golds(record)
        template = self.templates.for_task(record.task)
        head, tail = template.split(record.seed.instruction)
        answer = record.seed.answers[0]
        target = self._target(rng)
        screen = selection.Screen(golds[0], record.seed.answers, cfg.leak_exempt, cfg.near_duplicate_threshold,
                                  enabled=cfg.leak_check, others=golds if len(golds) > 1 else ())
        candidates = self.source.candidates(self.query(record, golds), rng)
        budget = None if target is None else target - cfg.reserve_tokens
        cap = None if cfg.max_total_tokens is None else cfg.max_total_tokens - cfg.reserve_tokens
        if budget is None:
            need = max(cfg.n_documents - len(golds), 0)
            chosen = selection.by_count(candidates, screen, need)
            if chosen.exhausted:
                return self._reject(record, "too_few_distractors", f"{len(chosen.docs)} clean distractors, need {need}")
            if cap is not None:
                alone = self.count(self._layout(head, golds, 0, tail, answer, tuple(range(len(golds)))))
                if alone.total > cap:
                    return self._reject(record, "gold_exceeds_budget", f"{alone.total} tokens > max_total_tokens {cap}")
        else:
            assert target is not None  # a budget comes from a target
            slots = tuple(range(len(golds)))
            alone = self.count(self._layout(head, golds, 0, tail, answer, slots))
            if alone.total > budget:
                return self._reject(record, "gold_exceeds_budget", f"{alone.total} tokens > budget {budget}")
            tolerance = int(cfg.fill_tolerance * target)
            trim = self._trimmer(tolerance) if cfg.trim_to_fill else None
            chosen = selection.by_tokens(candidates, screen, budget - alone.total, tolerance, self.separator_cost, trim)
        depth = position.target_depth(cfg, rng, self.run_seed, record.id)
        order = list(chosen.docs)
        rng.shuffle(order)
        trim = self._trimmer(int(cfg.fill_tolerance * target)) if cfg.trim_to_fill and target else None
        picked = len(order)
        # count mode with a cap: trim is None there, so whole distractors are dropped until it fits
        layout, count = self._fit(head, tail, answer, golds, order, chosen, depth, rng,
                                  budget if budget is not None else cap, trim)
        if budget is None and cap is not None and len(order) < picked:
            self.stats["capped_samples"] += 1
            self.stats["capped_distractors"] += picked - len(order)
        if budget is not None and chosen.exhausted and budget - count.total > int(cfg.fill_tolerance * (target or 0)):
            return self._reject(record, "pool_exhausted",
                                f"{count.total} of {budget} tokens after {chosen.scanned} candidates")
        return self._sample(record, template.name, layout, count, target, budget, depth, chosen, screen)

    def _gaps(self, head: str, tail: str, golds: list[Doc], order: list[Doc], depth: float | None,
              rng: random.Random) -> list[int]:
        """Where each gold goes among the distractors (one gap per gold, non-decreasing)."""
        if len(golds) > 1:
            return position.spread_gaps(depth, rng, len(order), len(golds))
        head_cost = len(self.tokenizer.encode(self.frame.before_user + head))
        tail_cost = len(self.tokenizer.encode(tail))
        return [position.choose_slot(depth, rng, [d.n_tokens + self.separator_cost for d in order],
                                     head_cost, golds[0].n_tokens, tail_cost)]

    def _fit(
        self, head: str, tail: str, answer: str, golds: list[Doc], order: list[Doc], chosen: selection.Selection,
        depth: float | None, rng: random.Random, budget: int | None, trim: Trimmer | None,
    ) -> tuple[Layout, Count]:
        """Place the gold(s), count exactly, and drop (or re-trim) distractors until within budget."""
        gaps = self._gaps(head, tail, golds, order, depth, rng)
        for _ in range(_MAX_CORRECTIONS):
            docs, slots = _merge(order, golds, gaps)
            layout = self._layout(head, docs, slots[0], tail, answer, slots)
            count = self.count(layout)
            if budget is None or count.total <= budget or not order:
                return layout, count
            over = count.total - budget
            victim = chosen.docs[-1] if chosen.docs else order[-1]
            index = next(i for i, d in enumerate(order) if d is victim)
            cut = trim(victim, victim.n_tokens - over - 1) if trim is not None else None
            chosen.docs.pop()
            if cut is not None:
                order[index] = cut
                chosen.docs.append(cut)
                chosen.trimmed = cut.id
            else:
                order.pop(index)
                gaps = [g - 1 if index < g else g for g in gaps]
            self.stats["budget_corrections"] += 1
        raise RuntimeError(f"could not fit the budget {budget} after {_MAX_CORRECTIONS} corrections")

    def _sample(
        self, record: Synthesized, template: str, layout: Layout, count: Count, target: int | None,
        budget: int | None, depth: float | None, chosen: selection.Selection, screen: selection.Screen,
    ) -> Sample:
        text = layout.render()
        user = text[len(self.frame.before_user) : len(text) - len(layout.tail) + layout.answer_offset]
        user = user[: len(user) - len(self.frame.between)]
        answer = record.seed.answers[0]
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        if self.tokenizer.render_chat(messages) != text:
            raise RuntimeError(f"{record.id}: the chat template does not render the assembled text verbatim")
        gold_start, gold_end = layout.gold_chars()
        offset = len(self.frame.before_user)
        per_document = [d.n_tokens for d in layout.docs]
        golds = layout.golds()
        distractors = [d for i, d in enumerate(layout.docs) if i not in golds]
        self.stats.update(samples=1, leaks_skipped=screen.leaks, near_duplicates_skipped=screen.near_duplicates)
        return Sample(
            id=record.id, task=record.task, seed_id=record.seed.id, messages=messages, answer=record.seed.answer,
            template=template, gold_index=layout.gold_slot, gold_indices=list(golds),
            gold_depth=round(count.gold_span[0] / max(count.prompt, 1), 6),
            gold_char_span=[gold_start - offset, gold_end - offset], gold_token_span=list(count.gold_span),
            n_documents=len(layout.docs), distractor_ids=[d.id for d in distractors],
            distractor_strategy=self.config.distractors, separator=self.config.separator,
            tokens={
                "total": count.total, "target": target, "budget": budget, "prompt": count.prompt,
                "answer": count.total - count.prompt, "per_document": per_document,
                "template_overhead": count.prompt - sum(per_document),
            },
            tokenizer=self.config.tokenizer,
            meta={
                "instruction": record.seed.instruction,  # the context-free twin and reports need it
                "position": self.config.position, "target_depth": depth, "leaks_skipped": screen.leaks,
                "near_duplicates_skipped": screen.near_duplicates, "leak_check_answer": screen.checks_answer,
                "candidates_scanned": chosen.scanned, "trimmed_distractor": chosen.trimmed,
                "fill_gap": None if budget is None else budget - count.total, "count_method": self.count_method,
                **(_gold_spans(layout, count, offset) if len(golds) > 1 else {}),
            },
        )

    def _reject(self, record: Synthesized, reason: str, detail: str) -> Rejected:
        self.stats[f"dropped_{reason}"] += 1
        return Rejected(id=record.id, stage="assemble", reason=reason, detail=detail, record=to_dict(record))


def _merge(order: list[Doc], golds: list[Doc], gaps: list[int]) -> tuple[list[Doc], tuple[int, ...]]:
    """Distractors with gold k inserted before order[gaps[k]]; returns the documents and gold slots."""
    docs: list[Doc] = []
    slots = []
    k = 0
    for i in range(len(order) + 1):
        while k < len(golds) and gaps[k] == i:
            slots.append(len(docs))
            docs.append(golds[k])
            k += 1
        if i < len(order):
            docs.append(order[i])
    return docs, tuple(slots)


def _gold_spans(layout: Layout, count: Count, offset: int) -> dict[str, list]:
    """Every gold's character span (in the user message), token span and depth, in slot order."""
    chars = [layout.gold_chars(slot) for slot in layout.golds()]
    return {
        "gold_char_spans": [[start - offset, end - offset] for start, end in chars],
        "gold_token_spans": [list(span) for span in count.gold_spans],
        "gold_depths": [round(span[0] / max(count.prompt, 1), 6) for span in count.gold_spans],
    }
