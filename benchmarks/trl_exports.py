"""Check: what TRL 1.16 really trains on each TRL export of a run, with the settings its manifest names.

For each of trl_prompt_completion, trl_messages and context_free in RUN/export: load the folder with
`datasets.load_dataset(folder)` (as a user would), build a real `trl.SFTTrainer` on SmolLM2-135M-Instruct
(CPU) with the manifest's `training.settings` (max_length; assistant_only_loss and the shipped chat
template for `messages` exports), collate every row with the trainer's own collator, count the
tokens whose label is not -100 per sample next to the answer's tokens, then train a few steps.
The `messages` exports are also run with TRL's defaults, to show what happens without the settings.

    python benchmarks/trl_exports.py runs/quickstart            # every row, 3 steps per export
    python benchmarks/trl_exports.py RUN --steps 1 --rows 2 --max-length 1024   # smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FORMATS = ("trl_prompt_completion", "trl_messages", "context_free")


def _trainer(model: Any, folder: Path, settings: dict[str, Any], rows: int | None, steps: int, out: str) -> Any:
    import trl
    from datasets import load_dataset
    from transformers import AutoTokenizer

    from ctxsynth.models import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    dataset = load_dataset(str(folder), split="train")
    if rows is not None:
        dataset = dataset.select(range(min(rows, len(dataset))))
    kwargs = dict(settings)
    if "chat_template_path" in kwargs:
        kwargs["chat_template_path"] = str(folder / kwargs["chat_template_path"])
    args = trl.SFTConfig(output_dir=out, report_to="none", use_cpu=True, max_steps=max(steps, 1), logging_steps=1,
                         per_device_train_batch_size=1, learning_rate=1e-5, save_strategy="no", **kwargs)
    return trl.SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def _answer_tokens(folder: Path, tokenizer: Any) -> list[int]:
    lines = (folder / "data.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    answers = [(r.get("completion") or r.get("messages"))[-1]["content"] for r in rows]
    return [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]


def measure(folder: Path, settings: dict[str, Any], rows: int | None, steps: int) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    from ctxsynth.models import embedded_model_dir

    model = AutoModelForCausalLM.from_pretrained(str(embedded_model_dir()))  # fresh: earlier steps changed it
    with tempfile.TemporaryDirectory() as out:
        trainer = _trainer(model, folder, settings, rows, steps, out)
        prepared = trainer.train_dataset
        trained, lengths = [], []
        for i in range(len(prepared)):
            batch = trainer.data_collator([prepared[i]])
            trained.append(int((batch["labels"] != -100).sum()))
            lengths.append(int(batch["input_ids"].shape[1]))
        answers = _answer_tokens(folder, trainer.processing_class)[: len(prepared)]
        start = time.time()
        loss = round(trainer.train().training_loss, 4) if steps > 0 else None  # --steps 0: count only
    return {"rows": len(prepared), "trained_tokens": trained, "answer_tokens": answers, "input_tokens": lengths,
            "steps": trainer.state.global_step, "loss": loss, "seconds": round(time.time() - start, 1)}


def report(name: str, m: dict[str, Any]) -> str:
    extra = [t - a for t, a in zip(m["trained_tokens"], m["answer_tokens"], strict=False)]
    return (f"{name}: {m['rows']} rows; trained tokens per sample {m['trained_tokens']} (mean "
            f"{statistics.fmean(m['trained_tokens']):.1f}) vs answer tokens {m['answer_tokens']} (trained - answer: "
            f"{sorted(set(extra))}); input tokens max {max(m['input_tokens'])}; {m['steps']} steps, loss {m['loss']}, "
            f"{m['seconds']} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory with export/ folders")
    parser.add_argument("--steps", type=int, default=3, help="training steps per export; 0 = count the labels only")
    parser.add_argument("--rows", type=int, default=None, help="only the first N rows of each export")
    parser.add_argument("--max-length", type=int, default=None, help="override the manifest's max_length")
    parser.add_argument("--no-defaults", action="store_true", help="skip the TRL-defaults runs of messages exports")
    args = parser.parse_args(argv)
    import torch
    import transformers
    import trl

    print(f"trl {trl.__version__}, transformers {transformers.__version__}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, model SmolLM2-135M-Instruct (CPU)")
    for fmt in FORMATS:
        folder = args.run / "export" / fmt
        if not (folder / "manifest.json").exists():
            continue
        settings = json.loads((folder / "manifest.json").read_text())["training"]["settings"]
        if args.max_length is not None:
            settings["max_length"] = args.max_length
        print(report(f"{fmt} with {settings}", measure(folder, settings, args.rows, args.steps)), flush=True)
        if "assistant_only_loss" in settings and not args.no_defaults:
            defaults = {"max_length": settings["max_length"]}
            print(report(f"{fmt} with TRL defaults + {defaults}", measure(folder, defaults, args.rows,
                                                                          min(args.steps, 1))),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
