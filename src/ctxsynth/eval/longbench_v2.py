"""LongBench v2 (Bai et al., 2024): 503 four-choice questions over long contexts, prompted and
scored as its official pred.py and result.py do.

Prompts are the user's own LongBench checkout's files (`prompts/0shot.txt`, `0shot_cot.txt`,
`0shot_cot_ans.txt`), never shipped with ctxsynth. As in pred.py: the placeholders $DOC$, $Q$,
$C_A$..$C_D$ (and $COT$) are replaced by the stripped fields; a prompt longer than the maximum
length is cut to its first max_len//2 and last ceil(max_len/2) tokens (the tokenizer's default
encode, special tokens included; the halves decoded together without special tokens); it is sent
as one user chat message; 128 new tokens, or with chain of thought 1024 for the reasoning and 128
for the answer prompt that quotes it. The answer is the letter of "The correct answer is (X)" (or
without the parentheses) once asterisks are removed; no match scores 0.

Scores (result.py): accuracy x100, one decimal, overall and by difficulty (easy / hard: anything
not "easy") and by length (short / medium / long: anything else). Differences that remain: pred.py
samples at temperature 0.1 and leaves out questions whose request failed; ctxsynth decodes
greedily and scores a failed request as wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ctxsynth.errors import InputError, UserError
from ctxsynth.records import EvalItem

TASK = "longbench_v2"
METRIC = "longbench_v2_choice"
FIELDS = ("_id", "difficulty", "length", "question", "choice_A", "choice_B", "choice_C", "choice_D", "answer", "context")
PROMPTS = {"0shot": "0shot.txt", "cot": "0shot_cot.txt", "cot_ans": "0shot_cot_ans.txt"}
MAX_NEW_TOKENS = 128
COT_MAX_NEW_TOKENS = 1024
_ANSWER = (re.compile(r"The correct answer is \(([A-D])\)"), re.compile(r"The correct answer is ([A-D])"))


def is_v2_record(record: Mapping[str, Any]) -> bool:
    return "choice_A" in record and "difficulty" in record


def load_prompts(prompts_dir: Path | str) -> dict[str, str]:
    """The prompt files of the user's LongBench (v2) checkout, `prompts/`."""
    folder = Path(prompts_dir)
    missing = [name for name in PROMPTS.values() if not (folder / name).is_file()]
    if missing:
        raise UserError(f"{folder}: no {', '.join(missing)}; give the prompts folder of your LongBench checkout "
                        "(LongBench v2's prompts/, from github.com/THUDM/LongBench)")
    return {key: (folder / name).read_text(encoding="utf-8") for key, name in PROMPTS.items()}


def render(template: str, record: Mapping[str, Any], cot: str | None = None) -> str:
    """pred.py's placeholder replacement, in its order."""
    text = template.replace("$DOC$", str(record["context"]).strip()).replace("$Q$", str(record["question"]).strip())
    for letter in "ABCD":
        text = text.replace(f"$C_{letter}$", str(record[f"choice_{letter}"]).strip())
    return text.replace("$COT$", cot) if cot is not None else text


def truncate(hf_tokenizer: Any, prompt: str, max_len: int) -> tuple[str, int, int]:
    """pred.py's cut: (prompt, its tokens, tokens removed)."""
    ids = list(hf_tokenizer.encode(prompt))
    if len(ids) <= max_len:
        return prompt, len(ids), 0
    kept = ids[:max_len // 2] + ids[-max_len // 2:]
    return hf_tokenizer.decode(kept, skip_special_tokens=True), len(kept), len(ids) - len(kept)


def extract_answer(response: str) -> str | None:
    """The chosen letter, as pred.py's extract_answer finds it."""
    response = response.replace("*", "")
    for pattern in _ANSWER:
        match = pattern.search(response)
        if match:
            return match.group(1)
    return None


def choice_score(prediction: str, references: Sequence[str], meta: Mapping[str, Any] | None = None) -> float:
    """1.0 when the extracted letter is the answer (pred.py's judge; it strips the response first)."""
    return 1.0 if references and extract_answer(prediction.strip()) == references[0] else 0.0


def _item(record: Mapping[str, Any], prompt: str, tokens: int, cut: int, stage: str, max_new: int) -> EvalItem:
    meta = {"prompting": "longbench_v2", "longbench_v2": stage, "difficulty": record["difficulty"],
            "length_class": record["length"], "domain": record.get("domain"), "fitted": True,
            "prompt_tokens": tokens, "truncated_tokens": cut}
    suffix = "" if stage == "answer" else f"#{stage}"
    return EvalItem(id=str(record["_id"]) + suffix, task=TASK if stage == "answer" else f"{TASK}_{stage}",
                    prompt=prompt, answers=[str(record["answer"])], metric=METRIC, max_new_tokens=max_new, meta=meta)


def records_to_items(records: Iterable[Mapping[str, Any]], prompts: Mapping[str, str], hf_tokenizer: Any,
                     max_len: int, cot: bool = False) -> list[EvalItem]:
    """The first prompt of each question: the 0-shot prompt, or the chain-of-thought prompt whose
    replies `cot_answer_items` turns into the answer prompts."""
    items = []
    for n, record in enumerate(records, 1):
        missing = [f for f in FIELDS if f not in record]
        if missing:
            raise InputError(f"LongBench v2 record {n}: lacks {', '.join(missing)}")
        prompt, tokens, cut = truncate(hf_tokenizer, render(prompts["cot" if cot else "0shot"], record), max_len)
        items.append(_item(record, prompt, tokens, cut, "cot" if cot else "answer",
                           COT_MAX_NEW_TOKENS if cot else MAX_NEW_TOKENS))
    return items


def cot_answer_items(records: Mapping[str, Mapping[str, Any]], replies: Mapping[str, str],
                     prompts: Mapping[str, str], hf_tokenizer: Any, max_len: int) -> list[EvalItem]:
    """pred.py's second step: the answer prompt quoting each stripped reasoning reply (questions
    whose reasoning came back empty are left out, as pred.py leaves them out)."""
    items = []
    for qid, reply in replies.items():
        if not reply:
            continue
        record = records[qid]
        prompt, tokens, cut = truncate(hf_tokenizer, render(prompts["cot_ans"], record, cot=reply.strip()), max_len)
        items.append(_item(record, prompt, tokens, cut, "answer", MAX_NEW_TOKENS))
    return items


def summarize(rows: Sequence[Mapping[str, Any]], compensated: bool = False) -> dict[str, Any] | None:
    """result.py's row for the answered questions: Overall, Easy, Hard, Short, Medium, Long (x100,
    one decimal; None for an empty group) and n per group. `compensated` is result.py's switch:
    0.25 for a reply with no extractable letter."""
    rows = [r for r in rows if r.get("metric") == METRIC and (r.get("meta") or {}).get("longbench_v2") == "answer"]
    if not rows:
        return None
    groups: dict[str, list[float]] = {k: [] for k in ("easy", "hard", "short", "medium", "long")}
    total = []
    for row in rows:
        meta = row["meta"]
        acc = float(row["score"])
        if compensated and extract_answer(str(row.get("prediction") or "").strip()) is None:
            acc = 0.25
        total.append(acc)
        groups["easy" if meta["difficulty"] == "easy" else "hard"].append(acc)
        length = meta["length_class"]
        groups[length if length in ("short", "medium") else "long"].append(acc)
    out: dict[str, Any] = {"overall": round(100 * sum(total) / len(total), 1), "n": len(total)}
    for key, values in groups.items():
        out[key] = round(100 * sum(values) / len(values), 1) if values else None
        out[f"n_{key}"] = len(values)
    return out


def markdown(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """result.py's table, one row per run."""
    rows = [(name, s["longbench_v2"]) for name, s in summaries.items() if s.get("longbench_v2")]
    if not rows:
        return ""
    keys = ("overall", "easy", "hard", "short", "medium", "long")
    lines = ["## LongBench v2 (accuracy x100, as its result.py)", "",
             "| run | " + " | ".join(k.capitalize() for k in keys) + " |", "|---|" + "---|" * len(keys)]
    for name, s in rows:
        lines.append(f"| {name} | " + " | ".join(
            "-" if s[k] is None else f"{s[k]} (n={s['n'] if k == 'overall' else s['n_' + k]})" for k in keys) + " |")
    return "\n".join(lines)


def write_pred_file(rows: Sequence[Mapping[str, Any]], path: Path) -> int:
    """The answered questions as pred.py's output lines (_id, difficulty, length, response, pred,
    judge, answer), so LongBench's result.py can score them."""
    lines = []
    for row in rows:
        meta = row.get("meta") or {}
        if row.get("metric") == METRIC and meta.get("longbench_v2") == "answer":
            response = str(row.get("prediction") or "").strip()
            pred = extract_answer(response)
            lines.append({"_id": row["id"], "difficulty": meta["difficulty"], "length": meta["length_class"],
                          "domain": meta.get("domain"), "response": response, "pred": pred,
                          "answer": row["references"][0], "judge": pred == row["references"][0]})
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return len(lines)
