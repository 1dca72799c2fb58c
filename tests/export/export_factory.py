"""Hand-built assembled samples for the export tests (real Sample records, no assembler needed).

A plain module, not a conftest, so its name is unique across the test tree."""

from __future__ import annotations

from ctxsynth.records import Sample

DOCS = [
    "The lighthouse at Varn Point was lit in 1871 and kept by the Oduya family for three generations.",
    "Copper prices rose sharply in the spring after two mines in the north closed for repairs.",
    "The choir rehearses on Thursdays in the old grain hall, which seats about two hundred people.",
]


def make_sample(i: int, task: str = "single_doc_qa", with_instruction: bool = True) -> Sample:
    instruction = f"Question {i}: who kept the lighthouse at Varn Point?"
    answer = f"The Oduya family ({i})."
    gold = f"[doc {i}] " + DOCS[0]
    docs = [DOCS[1], gold, DOCS[2]]
    body = "\n\n".join(docs)
    prompt = f"Read the documents and answer.\n\n{body}\n\n{instruction}\nAnswer:"
    start = prompt.index(gold)
    meta = {"instruction": instruction} if with_instruction else {}
    return Sample(
        id=f"s{i:03d}", task=task, seed_id=f"seed{i}",
        messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
        answer=answer, template=task, gold_index=1, gold_indices=[1], gold_depth=0.3 + 0.01 * i,
        gold_char_span=[start, start + len(gold)], gold_token_span=[20, 45], n_documents=3,
        distractor_ids=["d1", "d2"], distractor_strategy="same_task", separator="blank_line",
        tokens={"total": 100 + i, "target": 128, "prompt": 90 + i, "answer": 10,
                "per_document": [20, 25, 22], "template_overhead": 23},
        tokenizer="smollm2", meta=meta,
    )


def make_samples() -> list[Sample]:
    return [make_sample(i, task="single_doc_qa" if i % 2 else "multi_doc_qa") for i in range(10)]
