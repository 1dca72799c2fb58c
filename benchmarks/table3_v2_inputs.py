"""Inputs of Table 3 v2 (docs/results/table3_v2/DESIGN.md): the split, writer rows, test items, arm files.

    python benchmarks/table3_v2_inputs.py split OUT [--commit DIR] [--long TOKENIZER] [--tiny]
    python benchmarks/table3_v2_inputs.py arms INPUTS PIPE_DIR OUT [--budget 500000]

`split` (CPU, needs the asset packages; deterministic) assigns the offline built-ins to roles, runs
the leakage check (ctxsynth.experiments.split; it stops on any overlap) and writes OUT/:
seeds.jsonl (full seeds), writer_seeds.jsonl, writer_context.jsonl and writer_question.jsonl (the two
writers' rows: the same triples, one per direction), general.jsonl, filler.jsonl, tests.jsonl.gz
(every test item, prompts included), niah_test/ and niah_train/ (`ctxsynth niah`'s builder). With --commit
DIR it also writes the compact, committable copy: split.json.gz (role -> ids, counts, the check),
seeds/writer/general/filler rows gzipped, and tests_index.jsonl.gz (every item without its prompt,
with the prompt's sha256). --long TOKENIZER also builds the 16k/32k tests of a 32k trainee
(tests_long.jsonl.gz; the 8k set is unchanged, its ids were reserved).
Last line: `split: seeds N writer N general N filler N tests N overlaps 0`.

`arms` (CPU, after the GPU's generation runs in PIPE_DIR) builds every arm's long-data slot at the
equal budget (the design's rule), the context-free twins, the permuted-context arm, the ablation
arms at B_abl, and OUT/arms.json (tokens, rows, fill and max_steps per arm).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ctxsynth import assets, fillers
from ctxsynth.eval.builtin import BUILTIN_TEMPLATES
from ctxsynth.eval.longbench import load_task_specs
from ctxsynth.eval.metrics import contains_normalized
from ctxsynth.eval.padding import pad_to_length
from ctxsynth.eval.partition import hotpotqa_is_heldout, squad_is_heldout
from ctxsynth.experiments.split import Unit, check_split, normalize, unit_from_seed
from ctxsynth.io import atomic_write_text, dumps
from ctxsynth.records import EvalItem, Seed, to_dict
from ctxsynth.seeds.builtin import hotpotqa_source, squad_source
from ctxsynth.seeds.config import SeedsConfig
from ctxsynth.synth.instruction import InstructionSynthesis
from ctxsynth.synth.tasks import ContextSynthesis
from ctxsynth.synth.writer import writer_rows
from ctxsynth.tokenize import Tokenizer, load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "table3_v2"
GENERAL_PROMPT = "{context}\n\nAnswer the question using the passage above, in a few words.\nQuestion: {question}"
SIZES = {  # the design's numbers; --tiny shrinks them for the CPU smoke test
    "full": {"squad_per_article": 20, "squad_per_paragraph": 2, "hotpotqa_seeds": 800, "writer_squad_per_article": 16,
             "writer_hotpotqa": 808, "general": 1000, "hotpotqa_real": 400, "hotpotqa_8k": 400, "squad_test": 375,
             "squad_per_article_test": 17, "squad_per_article_long": 13, "long_hotpotqa": 200, "long_squad": 150},
    "tiny": {"squad_per_article": 2, "squad_per_paragraph": 2, "hotpotqa_seeds": 12, "writer_squad_per_article": 2,
             "writer_hotpotqa": 12, "general": 20, "hotpotqa_real": 4, "hotpotqa_8k": 2, "squad_test": 6,
             "squad_per_article_test": 2, "squad_per_article_long": 2, "long_hotpotqa": 1, "long_squad": 1},
}
# prompts stop this many tokens short of their length bucket, so the chat template and the longest
# answer (128 new tokens) fit in the window: an 8k item fits SmolLM2's 8,192 without truncation
WINDOW_RESERVE = 256
SQUAD_CELLS = [(length, depth) for length in (2048, 4096, 8192) for depth in (0.0, 0.25, 0.5, 0.75, 1.0)]


@functools.cache
def _hotpotqa() -> list[dict[str, Any]]:
    return list(json.loads(assets.ruler_json("hotpotqa.json").read_text(encoding="utf-8")))


@functools.cache
def _squad() -> list[dict[str, Any]]:
    return list(json.loads(assets.ruler_json("squad.json").read_text(encoding="utf-8"))["data"])


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _slim(seed: Seed) -> dict[str, Any]:
    row = to_dict(seed)
    row["meta"] = {k: v for k, v in seed.meta.items() if k in ("dataset", "title", "type", "level", "supporting_titles")}
    return row


def _answer(seed: Seed) -> str:
    return min(seed.answer, key=len) if isinstance(seed.answer, list) else seed.answer


# ---- the split ------------------------------------------------------------------------------------------

def _squad_roles(size: dict[str, int]) -> dict[str, list[Seed]]:
    """Training-side SQuAD: each paragraph goes to one role. Per article (paragraphs in a seeded order):
    seeds take <= squad_per_paragraph questions a paragraph until squad_per_article, the writer the
    same way until writer_squad_per_article, the general pool every question of the rest."""
    by_paragraph: dict[tuple[str, str], list[Seed]] = {}
    for cand in squad_source(SeedsConfig(source="squad")):
        seed = cand.item
        assert isinstance(seed, Seed)
        by_paragraph.setdefault((seed.meta["title"], seed.context or ""), []).append(seed)
    roles: dict[str, list[Seed]] = {"seeds": [], "writer": [], "general": []}
    for title in sorted({t for t, _ in by_paragraph}):
        paragraphs = [k for k in by_paragraph if k[0] == title]
        random.Random(f"table3_v2:squad:{title}").shuffle(paragraphs)
        quota = {"seeds": size["squad_per_article"], "writer": size["writer_squad_per_article"]}
        for key in paragraphs:
            questions = by_paragraph[key]
            role = next((r for r in ("seeds", "writer") if quota[r] > 0), "general")
            take = questions if role == "general" else questions[: min(size["squad_per_paragraph"], quota[role])]
            if role != "general":
                quota[role] -= len(take)
            roles[role] += take
    return roles


def _connected_groups(seeds: list[Seed]) -> list[list[Seed]]:
    """Seeds in connected groups: a shared paragraph (HotpotQA: title or text) or an equal question
    puts two seeds in one group, so a group never spans two roles."""
    parent = list(range(len(seeds)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, seed in enumerate(seeds):
        unit = unit_from_seed(seed)
        keys = [f"t:{k}" for k in unit.keys("title")] + [f"p:{k}" for k in unit.keys("paragraph")]
        keys += [f"q:{k}" for k in unit.keys("question")]
        for key in keys:
            if key in owner:
                parent[find(i)] = find(owner[key])
            else:
                owner[key] = i
    groups: dict[int, list[Seed]] = {}
    for i, seed in enumerate(seeds):
        groups.setdefault(find(i), []).append(seed)
    return sorted(groups.values(), key=lambda g: g[0].id)


def _hotpotqa_roles(size: dict[str, int]) -> dict[str, list[Seed]]:
    pool = [c.item for c in hotpotqa_source(SeedsConfig(source="hotpotqa")) if isinstance(c.item, Seed)]
    groups = _connected_groups(pool)
    random.Random("table3_v2:hotpotqa").shuffle(groups)
    roles: dict[str, list[Seed]] = {"seeds": [], "writer": [], "general": []}
    want = {"seeds": size["hotpotqa_seeds"], "writer": size["writer_hotpotqa"]}
    for group in groups:
        role = next((r for r in ("seeds", "writer") if len(roles[r]) < want[r]), "general")
        roles[role] += group
    return roles


def general_row(seed: Seed) -> dict[str, Any]:
    user = GENERAL_PROMPT.format(context=seed.context, question=seed.instruction)
    return {"id": seed.id, "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": _answer(seed)}],
            "meta": {"seed_id": seed.id, "dataset": seed.meta.get("dataset"), "role": "general"}}


def question_writer_rows(triples: Iterable[Seed]) -> list[dict[str, Any]]:
    """The instruction-synthesis prompt on each human context -> the human question and its shortest
    answer, in the reply format InstructionSynthesis parses: the context writer's triples reversed."""
    task = InstructionSynthesis(chunk_words=3000)
    rows = []
    for seed in triples:
        messages = [dict(m) for m in task.prompt(seed)]
        reply = f"Question: {seed.instruction}\nAnswer: {_answer(seed)}"
        assert task.parse(reply).question == " ".join(seed.instruction.split())  # the writer learns a parseable reply
        messages.append({"role": "assistant", "content": reply})
        rows.append({"id": seed.id, "messages": messages, "meta": {"seed_id": seed.id, "task": seed.task}})
    return rows


# ---- test items ------------------------------------------------------------------------------------------

def _paragraph_units(record: dict[str, Any]) -> Unit:
    pairs = [(t, "".join(s).strip()) for t, s in record["context"]]
    return Unit(f"hotpotqa-{record['_id']}", paragraphs=tuple(x for _, x in pairs), questions=(record["question"],),
                titles=tuple(t for t, _ in pairs))


def _training_keys(units: Iterable[Unit]) -> set[str]:
    keys: set[str] = set()
    for u in units:
        keys |= {f"p:{k}" for k in u.keys("paragraph")} | {f"t:{k}" for k in u.keys("title")}
        keys |= {f"q:{k}" for k in u.keys("question")}
    return keys


def _clean(unit: Unit, banned: set[str]) -> bool:
    return not (_training_keys([unit]) & banned)


def _hotpotqa_prompt(passages: Sequence[tuple[str, str]], question: str) -> str:
    spec = load_task_specs()["hotpotqa"]
    context = "\n\n".join(f"Passage {i + 1}:\n{t}\n{x}" for i, (t, x) in enumerate(passages))
    return spec.render(context, question)


def _hotpotqa_item(record: dict[str, Any], tag: str, passages: list[tuple[str, str]], gold: set[str],
                   tok: Tokenizer, target: int | None) -> EvalItem:
    spec = load_task_specs()["hotpotqa"]
    prompt = _hotpotqa_prompt(passages, record["question"])
    slots = [i for i, (t, _) in enumerate(passages) if t in gold]
    n = len(tok.encode(prompt))
    return EvalItem(
        id=f"hotpotqa-{tag}-{record['_id']}", task="builtin_hotpotqa", prompt=prompt, answers=[record["answer"]],
        metric=spec.metric, max_new_tokens=spec.max_new_tokens,
        meta={"dataset": "hotpotqa-dev-distractor", "family": "hotpotqa", "column": f"hotpotqa_{tag}",
              "question_id": record["_id"], "gold_passages": slots, "n_passages": len(passages),
              "gold_depths": [round(s / max(len(passages) - 1, 1), 4) for s in slots], "length": n,
              "target_length": target, "tokenizer": tok.name, "type": record.get("type"), "level": record.get("level"),
              "passages": [t for t, _ in passages]})


def _pad_hotpotqa(record: dict[str, Any], pool: list[tuple[str, str]], tok: Tokenizer, target: int,
                  counts: dict[str, int]) -> list[tuple[str, str]]:
    """The record's 10 paragraphs and real evaluation-side paragraphs (none containing the answer or
    titled like one of the 10), shuffled together, as many as fit in `target` prompt tokens."""
    rng = random.Random(f"table3_v2:hotpotqa_pad:{record['_id']}:{target}")
    target -= WINDOW_RESERVE
    own = [(t, "".join(s).strip()) for t, s in record["context"]]
    titles = {t for t, _ in own}
    budget = target - len(tok.encode(_hotpotqa_prompt(own, record["question"]))) - 8
    extra: list[tuple[str, str]] = []
    start = rng.randrange(len(pool))
    for k in range(len(pool)):
        title, text = pool[(start + k) % len(pool)]
        if title in titles or contains_normalized(text, record["answer"]):
            continue
        cost = counts[title] + 6  # "Passage N:" header and separators
        if cost > budget:
            break
        extra.append((title, text))
        budget -= cost
    passages = own + extra
    rng.shuffle(passages)
    while len(tok.encode(_hotpotqa_prompt(passages, record["question"]))) > target:  # the estimate was short
        drop = next(i for i in range(len(passages) - 1, -1, -1) if passages[i][0] not in titles)
        passages.pop(drop)
    return passages


def hotpotqa_tests(banned: set[str], size: dict[str, int], tok: Tokenizer,
                   long_tok: Tokenizer | None) -> tuple[list[EvalItem], list[Unit]]:
    records = [r for r in _hotpotqa() if hotpotqa_is_heldout(r["_id"]) and len(r["context"]) == 10]
    records = [r for r in records if _clean(_paragraph_units(r), banned)]
    random.Random("table3_v2:hotpotqa_test").shuffle(records)
    n_real, n_8k, n_long = size["hotpotqa_real"], size["hotpotqa_8k"], size["long_hotpotqa"]
    chosen = records[: n_real + n_8k + 2 * n_long]
    used_titles = {t for r in chosen for t, _ in r["context"]}
    pool: dict[str, str] = {}
    for r in records[len(chosen):]:
        for t, s in r["context"]:
            if t not in used_titles:
                pool.setdefault(t, "".join(s).strip())
    pool_list = sorted(pool.items())
    items: list[EvalItem] = []
    units = [_paragraph_units(r) for r in chosen] + [Unit(f"pad-{t}", paragraphs=(x,), titles=(t,)) for t, x in pool_list]
    for r in chosen[:n_real]:
        own = [(t, "".join(s).strip()) for t, s in r["context"]]
        items.append(_hotpotqa_item(r, "real", own, {t for t, _ in r["supporting_facts"]}, tok, None))
    plans: list[tuple[list[dict[str, Any]], str, int, Tokenizer]] = [(chosen[n_real:n_real + n_8k], "8k", 8192, tok)]
    if long_tok is not None:
        rest = chosen[n_real + n_8k:]
        plans += [(rest[:n_long], "16k", 16384, long_tok), (rest[n_long:2 * n_long], "32k", 32768, long_tok)]
    for group, tag, target, t in plans:
        counts = dict(zip((k for k, _ in pool_list), (len(i) for i in t.encode_batch([f"{k}\n{x}" for k, x in pool_list])),
                          strict=True))
        for r in group:
            passages = _pad_hotpotqa(r, pool_list, t, target, counts)
            items.append(_hotpotqa_item(r, tag, passages, {x for x, _ in r["supporting_facts"]}, t, target))
    return items, units


def _wiki_pieces() -> list[tuple[str, str]]:
    squad_titles = {normalize(a["title"].replace("_", " ")) for a in _squad()}
    data = fillers.wiki_pages()
    return sorted((v["title"], v["extract"].strip()) for v in data.values()
                  if v.get("extract", "").strip() and normalize(v["title"]) not in squad_titles)


def _capped(questions: Iterable[dict[str, Any]], per_article: int) -> list[dict[str, Any]]:
    """The questions in order, at most `per_article` of each article."""
    seen: dict[str, int] = {}
    out = []
    for q in questions:
        if seen.get(q["title"], 0) < per_article:
            seen[q["title"]] = seen.get(q["title"], 0) + 1
            out.append(q)
    return out


def squad_tests(banned: set[str], size: dict[str, int], tok: Tokenizer,
                long_tok: Tokenizer | None) -> tuple[list[EvalItem], list[Unit]]:
    spec = load_task_specs(base_file=BUILTIN_TEMPLATES)["builtin_squad"]
    questions: list[dict[str, Any]] = []
    for article in _squad():
        if not squad_is_heldout(article["title"]):
            continue
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if qa.get("is_impossible") or not qa["answers"] or f"q:{normalize(qa['question'])}" in banned:
                    continue
                questions.append({"id": qa["id"], "title": article["title"], "question": qa["question"],
                                  "answers": list(dict.fromkeys(a["text"] for a in qa["answers"])),
                                  "context": paragraph["context"]})
    random.Random("table3_v2:squad_test").shuffle(questions)
    picked = _capped(questions, size["squad_per_article_test"])
    wiki = _wiki_pieces()
    normed = [normalize(text) for _, text in wiki]
    cells: list[tuple[int, float, Tokenizer]] = [(length, depth, tok) for length, depth in SQUAD_CELLS]
    n = size["squad_test"]
    plan = [(q, cells[i % len(cells)]) for i, q in enumerate(picked[:n])]
    if long_tok is not None:
        long_cells = [(length, d, long_tok) for length in (16384, 32768) for d in (0.0, 0.25, 0.5, 0.75, 1.0)]
        taken = {q["id"] for q in picked[:n]}
        rest = _capped([q for q in questions if q["id"] not in taken], size["squad_per_article_long"])
        if len(rest) < 2 * size["long_squad"]:
            raise SystemExit(f"only {len(rest)} held-out SQuAD questions left for the 16k/32k set")
        plan += [(q, long_cells[i % len(long_cells)]) for i, q in enumerate(rest[: 2 * size["long_squad"]])]
    if len(plan) < n:
        raise SystemExit(f"only {len(plan)} held-out SQuAD questions (need {n})")
    items = []
    for q, (length, depth, t) in plan:
        answers = [normalize(a) for a in q["answers"] if normalize(a)]
        pieces = [text for (title, text), key in zip(wiki, normed, strict=True)
                  if not any(f" {a} " in f" {key} " for a in answers)]
        rng = random.Random(f"table3_v2:squad:{q['id']}:{length}:{depth}")
        padded = pad_to_length(q["context"], lambda c, q=q: spec.render(c, q["question"]), pieces, t,  # type: ignore[misc]
                               length=length - WINDOW_RESERVE, depth=depth, rng=rng, sep="\n\n")
        tag = f"{length // 1024}k"
        items.append(EvalItem(
            id=f"squad-{q['id']}", task="builtin_squad", prompt=padded.prompt, answers=q["answers"], metric=spec.metric,
            max_new_tokens=spec.max_new_tokens,
            meta={"dataset": "squad-v2-dev", "family": "squad", "column": f"squad_{tag}", "question_id": q["id"],
                  "title": q["title"], "filler": "wiki", "length": padded.prompt_tokens, "target_length": length,
                  "depth": depth, "gold_depth": round(padded.gold_depth, 4), "gold_char_start": padded.gold_char_start,
                  "tokenizer": t.name}))
    units = [Unit(f"squad-{q['id']}", paragraphs=(q["context"],), questions=(q["question"],), articles=(q["title"],))
             for q, _ in plan]
    return items, units


def niah_sets(out: Path, tiny: bool, long_tokenizer: str | None = None) -> list[EvalItem]:
    """The NIAH training data (arm `niah`) and the unseen NIAH test (configs/table3_v2/niah_*.yaml)."""
    from ctxsynth import config as cfg
    from ctxsynth.niah import NiahConfig, build_niah

    runs = [("niah_train.yaml", out / "niah_train", ["train.samples_per_variant=3"] if tiny else []),
            ("niah_test.yaml", out / "niah_test", ["test.samples_per_cell=1", "test.lengths=[2048]"] if tiny else [])]
    if long_tokenizer:
        runs.append(("niah_test_32k.yaml", out / "niah_test_32k",
                     [f"tokenizer={long_tokenizer}", *(["test.samples_per_cell=1"] if tiny else [])]))
    for name, folder, overrides in runs:
        if not (folder / "summary.json").exists():
            build_niah(cfg.load(NiahConfig, CONFIGS / name, overrides), folder)
    items = []
    for path in sorted((out / "niah_test" / "test").glob("*.jsonl")) + sorted((out / "niah_test_32k" / "test").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = EvalItem(**json.loads(line))
                item.meta = {**item.meta, "family": "niah", "column": f"niah_{int(item.meta['length']) // 1024}k",
                             "question_id": item.id}
                items.append(item)
    return items


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(dumps(r) + "\n" for r in rows)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data.encode("utf-8"), mtime=0))
    else:
        atomic_write_text(path, data)
    return len(rows)


def cmd_split(args: argparse.Namespace) -> None:
    size = SIZES["tiny" if args.tiny else "full"]
    squad, hotpot = _squad_roles(size), _hotpotqa_roles(size)
    roles = {r: squad[r] + hotpot[r] for r in ("seeds", "writer", "general")}
    groups = _connected_groups(sorted(roles["general"], key=lambda s: s.id))  # general and filler share nothing
    random.Random("table3_v2:general").shuffle(groups)
    general: list[Seed] = []
    filler: list[Seed] = []
    for group in groups:
        (general if len(general) < size["general"] else filler).extend(group)
    train_units = {"seeds": [unit_from_seed(s) for s in roles["seeds"]],
                   "writer": [unit_from_seed(s) for s in roles["writer"]],
                   "general": [unit_from_seed(s) for s in general], "filler": [unit_from_seed(s) for s in filler]}
    banned = _training_keys(u for units in train_units.values() for u in units)
    tok = load_tokenizer("smollm2")
    long_tok = load_tokenizer(args.long) if args.long else None
    hotpot_items, hotpot_units = hotpotqa_tests(banned, size, tok, long_tok)
    squad_items, squad_units = squad_tests(banned, size, tok, long_tok)
    niah_items = niah_sets(args.out, args.tiny, args.long)
    report = check_split({**train_units, "test_hotpotqa": hotpot_units, "test_squad": squad_units},
                         test_roles=["test_hotpotqa", "test_squad"])
    every = hotpot_items + squad_items + niah_items
    tests = [i for i in every if int(i.meta.get("target_length") or i.meta.get("length") or 0) <= 8192]
    short_ids = {i.id for i in tests}
    long_tests = [i for i in every if i.id not in short_ids]  # the 32k trainee's 16k/32k set (--long)
    ctx_rows = writer_rows(roles["writer"], ContextSynthesis(target_words=150)).rows
    out = args.out
    files = {
        "seeds.jsonl": [to_dict(s) for s in roles["seeds"]], "writer_seeds.jsonl": [to_dict(s) for s in roles["writer"]],
        "writer_context.jsonl": ctx_rows, "writer_question.jsonl": question_writer_rows(roles["writer"]),
        "general.jsonl": [general_row(s) for s in general], "filler.jsonl": [general_row(s) for s in filler],
        "tests.jsonl.gz": [to_dict(i) for i in tests],
    }
    if long_tests:
        files["tests_long.jsonl.gz"] = [to_dict(i) for i in long_tests]
    for name, rows in files.items():
        _write_jsonl(out / name, rows)
    counts = {"seeds": len(roles["seeds"]), "seeds_squad": len(squad["seeds"]), "seeds_hotpotqa": len(hotpot["seeds"]),
              "writer": len(roles["writer"]), "general": len(general), "filler": len(filler), "tests": len(tests),
              "test_columns": _columns(tests), "squad_articles_in_seeds": len({s.meta["title"] for s in squad["seeds"]}),
              "max_squad_questions_per_article": max(_per_article(squad["seeds"]).values(), default=0)}
    if long_tests:
        counts["long_test_columns"] = _columns(long_tests)
    summary = {"counts": counts, "check": {"overlaps": len(report.overlaps), "units": report.counts},
               "design": "docs/results/table3_v2/DESIGN.md", "tiny": bool(args.tiny)}
    atomic_write_text(out / "split.json", json.dumps(summary, indent=1) + "\n")
    if args.commit:
        _commit_copy(args.commit, roles, general, filler, every, files, summary)
    print(json.dumps(counts))
    print(f"split: seeds {counts['seeds']} writer {counts['writer']} general {counts['general']} "
          f"filler {counts['filler']} tests {counts['tests']} overlaps {len(report.overlaps)}")


def _per_article(seeds: Iterable[Seed]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in seeds:
        out[s.meta["title"]] = out.get(s.meta["title"], 0) + 1
    return out


def _columns(items: Iterable[EvalItem]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i.meta["column"]] = out.get(i.meta["column"], 0) + 1
    return dict(sorted(out.items()))


def _commit_copy(folder: Path, roles: dict[str, list[Seed]], general: list[Seed], filler: list[Seed],
                 tests: list[EvalItem], files: dict[str, list[dict[str, Any]]], summary: dict[str, Any]) -> None:
    """The committable copy: ids, slim seeds, the rows, test items without prompts (+ their sha256)."""
    ids = {"seeds": [s.id for s in roles["seeds"]], "writer": [s.id for s in roles["writer"]],
           "general": [s.id for s in general], "filler": [s.id for s in filler],
           "tests": [i.id for i in tests]}
    sha = {name: _sha("".join(dumps(r) + "\n" for r in rows)) for name, rows in files.items()}
    _write_jsonl(folder / "split.json.gz", [{**summary, "ids": ids, "sha256": sha}])
    _write_jsonl(folder / "seeds.jsonl.gz", (_slim(s) for s in roles["seeds"]))
    _write_jsonl(folder / "writer_seeds.jsonl.gz", (_slim(s) for s in roles["writer"]))
    _write_jsonl(folder / "general.jsonl.gz", files["general.jsonl"])
    _write_jsonl(folder / "filler.jsonl.gz", ({"id": r["id"], "dataset": r["meta"]["dataset"]} for r in files["filler.jsonl"]))
    index = []
    for item in tests:
        row = to_dict(item)
        row["prompt_sha256"] = _sha(row.pop("prompt"))
        index.append(row)
    _write_jsonl(folder / "tests_index.jsonl.gz", index)


# ---- the arms' long-data slots at the equal budget ----------------------------------------------------------

TIER1 = ("cs", "is", "human")  # the long arms whose kept tokens may lower B (the design's rule)
CAPPED = {"cs": "table3-v2-cs", "is": "table3-v2-is", "human": "table3-v2-human", "cs_any": "table3-v2-cs-any",
          "cs_hard": "table3-v2-cs-hard", "cs_pos0": "table3-v2-cs-pos0", "cs_pos05": "table3-v2-cs-pos05",
          "cs_pos1": "table3-v2-cs-pos1"}
ABLATION = {"cs_d1": "table3-v2-cs-d1", "cs_d5": "table3-v2-cs-d5", "cs_d10": "table3-v2-cs"}
TWINS = {"cs_nc": "cs", "is_nc": "is", "human_nc": "human"}
PACK = 16384
ROW_OVERHEAD = 40  # chat-template tokens per row on top of the message contents (SmolLM2's default system turn)


def _read(path: Path) -> list[dict[str, Any]]:
    from ctxsynth.io import read_jsonl, shard_files

    if path.is_dir():
        return [r for f in shard_files(path) for r in read_jsonl(f)]
    return list(read_jsonl(path)) if path.exists() else []


class TokenCount:
    """Tokens of a row's message contents in the SmolLM2 tokenizer (the budget's unit), cached by id."""

    def __init__(self) -> None:
        self.tok = load_tokenizer("smollm2")
        self.cache: dict[str, int] = {}

    def __call__(self, row: dict[str, Any]) -> int:
        key = f"{row.get('id')}:{_sha(dumps(row['messages']))[:16]}"
        if key not in self.cache:
            self.cache[key] = sum(len(ids) for ids in self.tok.encode_batch([m["content"] for m in row["messages"]]))
        return self.cache[key]


def take_to_budget(rows: Sequence[dict[str, Any]], budget: int, count: TokenCount, order_seed: str | None,
                   already: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Rows in a seeded order (or as given: order_seed None), each kept when it still fits under
    `budget` - `already`; (kept rows, their tokens)."""
    order = list(range(len(rows)))
    if order_seed is not None:
        random.Random(order_seed).shuffle(order)
    kept, total = [], 0
    for i in order:
        n = count(rows[i])
        if already + total + n <= budget:
            kept.append(rows[i])
            total += n
        if budget - already - total < 20:
            break
    return kept, total


def permuted_rows(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same pairs with the gold documents shuffled across pairs of the same task: a seeded cyclic
    derangement (every gold document is used once, never by its own pair; of the first ten shifts the
    one with the fewest conflicts), repaired by swaps where a pair would get a document that contains
    its answer (such a pair is dropped when no swap helps).
    Distractors, question, answer and length stay; the evidence goes."""
    from ctxsynth.eval.metrics import contains_normalized as has

    def gold(s: dict[str, Any]) -> str:
        a, b = s["gold_char_span"]
        return str(s["messages"][0]["content"][a:b])

    def ok(s: dict[str, Any], donor: dict[str, Any]) -> bool:
        answers = [s["answer"]] if isinstance(s["answer"], str) else list(s["answer"])
        return donor["seed_id"] != s["seed_id"] and not any(has(gold(donor), a) for a in answers)

    out = []
    by_task: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_task.setdefault(s["task"], []).append(s)
    for task, group in sorted(by_task.items()):
        order = sorted(range(len(group)), key=lambda i: group[i]["id"])
        random.Random(f"table3_v2:perm:{task}").shuffle(order)
        shifts = [{order[j]: order[(j + r) % len(order)] for j in range(len(order))} for r in range(1, min(len(order), 11))]
        donor = min(shifts, key=lambda m: sum(not ok(group[i], group[d]) for i, d in m.items())) if shifts else {}
        for i in order:
            if ok(group[i], group[donor[i]]):
                continue
            swap = next((k for k in order if k != i and ok(group[i], group[donor[k]]) and ok(group[k], group[donor[i]])), None)
            if swap is not None:
                donor[i], donor[swap] = donor[swap], donor[i]
        for i in order:
            s, d = group[i], group[donor[i]]
            if len(group) < 2 or not ok(s, d):
                continue
            a, b = s["gold_char_span"]
            user = s["messages"][0]["content"]
            messages = [{"role": "user", "content": user[:a] + gold(d) + user[b:]}, dict(s["messages"][1])]
            out.append({"id": s["id"], "messages": messages,
                        "meta": {"seed_id": s["seed_id"], "permuted_from": d["seed_id"], "arm": "cs_perm"}})
    return out


def _fill(name: str, rows: list[dict[str, Any]], tokens: int, budget: int, filler: list[dict[str, Any]],
          count: TokenCount, out: Path) -> dict[str, Any]:
    fill, fill_tokens = take_to_budget(filler, budget, count, None, already=tokens)
    _write_jsonl(out / f"{name}.jsonl", rows + fill)
    sha = hashlib.sha256((out / f"{name}.jsonl").read_bytes()).hexdigest()  # a rebuild is checked against it
    return {"sha256": sha, "long_rows": len(rows), "long_tokens": tokens, "filler_rows": len(fill), "filler_tokens": fill_tokens,
            "slot_tokens": tokens + fill_tokens, "rows": len(rows) + len(fill),
            "lengths": [count(r) + ROW_OVERHEAD for r in rows + fill]}


def cmd_arms(args: argparse.Namespace) -> None:
    from ctxsynth.train.data import pack_best_fit

    count = TokenCount()
    inputs, pipe, out = args.inputs, args.pipe, args.out
    filler = _read(inputs / "filler.jsonl")
    general = _read(inputs / "general.jsonl")
    export = {arm: _read(pipe / run / "export" / "trl_messages" / "data.jsonl") for arm, run in {**CAPPED, **ABLATION}.items()}
    free = {arm: {r["id"]: r for r in _read(pipe / CAPPED[arm] / "export" / "context_free" / "data.jsonl")} for arm in TWINS.values()}
    niah = _read(inputs / "niah_train" / "export" / "trl_messages" / "data.jsonl")
    available = {arm: sum(count(r) for r in rows) for arm, rows in {**export, "niah": niah}.items()}
    short = [available[a] for a in TIER1 if available[a] < args.budget]
    budget = args.budget if not short else max(10_000, min(short) // 10_000 * 10_000)
    b_abl = min(available[a] for a in ABLATION) // 1_000 * 1_000
    arms: dict[str, dict[str, Any]] = {"general": _fill("general", [], 0, budget, filler, count, out)}
    capped: dict[str, list[dict[str, Any]]] = {}
    for arm in (*CAPPED, "niah"):
        rows = export.get(arm, niah if arm == "niah" else [])
        kept, tokens = take_to_budget(rows, budget, count, f"table3_v2:cap:{arm}")
        capped[arm] = kept
        arms[arm] = _fill(arm, kept, tokens, budget, filler, count, out)
    for twin, arm in TWINS.items():
        rows = [free[arm][r["id"]] for r in capped[arm] if r["id"] in free[arm]]
        arms[twin] = _fill(twin, rows, sum(count(r) for r in rows), budget, filler, count, out)
        arms[twin]["twin_of"] = arm
    keep = {r["id"] for r in capped["cs"]}
    samples = [s for s in _read(pipe / CAPPED["cs"] / "assemble") if s["id"] in keep]
    perm = permuted_rows(samples)
    arms["cs_perm"] = _fill("cs_perm", perm, sum(count(r) for r in perm), budget, filler, count, out)
    for arm in ABLATION:
        kept, tokens = take_to_budget(export[arm], b_abl, count, f"table3_v2:cap:{arm}")
        arms[arm] = _fill(arm, kept, tokens, budget, filler, count, out)
        arms[arm]["ablation_budget"] = b_abl
    general_lengths = [count(r) + ROW_OVERHEAD for r in general]
    for info in arms.values():
        info["packs"] = len(pack_best_fit(info.pop("lengths") + general_lengths, PACK))
    steps = 2 * max(info["packs"] for info in arms.values())
    summary = {"budget": budget, "budget_target": args.budget, "ablation_budget": b_abl, "available": available,
               "max_steps": steps, "pack_length": PACK, "general_rows": len(general), "arms": arms}
    atomic_write_text(out / "arms.json", json.dumps(summary, indent=1) + "\n")
    for name, info in arms.items():
        print(f"{name}: long {info['long_rows']} rows {info['long_tokens']} tokens + filler {info['filler_rows']} rows "
              f"= {info['slot_tokens']} (packs {info['packs']})")
    print(f"arms: {len(arms)} budget {budget} ablation_budget {b_abl} max_steps {steps}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split", help="roles, leakage check, writer rows, test items")
    s.add_argument("out", type=Path)
    s.add_argument("--commit", type=Path, help="also write the compact committable copy here")
    s.add_argument("--long", help="tokenizer of a 32k trainee: also build the 16k/32k tests")
    s.add_argument("--tiny", action="store_true", help="a few of everything (the CPU smoke test)")
    a = sub.add_parser("arms", help="every arm's long-data slot at the equal budget (after generation)")
    a.add_argument("inputs", type=Path, help="the split's OUT folder")
    a.add_argument("pipe", type=Path, help="the folder holding the table3-v2-* pipeline runs")
    a.add_argument("out", type=Path)
    a.add_argument("--budget", type=int, default=500_000)
    args = parser.parse_args(argv)
    {"split": cmd_split, "arms": cmd_arms}[args.cmd](args)


if __name__ == "__main__":
    main()
