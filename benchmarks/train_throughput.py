"""LoRA training throughput: tunelab's engine against two plain HF Trainer + peft baselines.

Run:  python benchmarks/train_throughput.py [--steps 16] [--batch-size 8]

Every variant trains the same model (the built-in SmolLM2-135M-Instruct by
default) with the same LoRA config (r=16, alpha=32, dropout 0, all linear
layers), learning rate, schedule and number of optimizer steps on the first
``--rows`` alpaca rows, each in its own fresh subprocess so peak memory and
start-up time are its own:

* ``tutorial``: how the common tutorials do it: fp32, ``padding="max_length"``
  to 512, ``DataCollatorForLanguageModeling``.
* ``fair``: the same Trainer as a careful user sets it up: dynamic padding
  (``DataCollatorForSeq2Seq``) and bf16 autocast where the hardware has native
  bf16 (fp32 elsewhere: emulated bf16 is several times slower; force it with
  ``--fair-precision bf16``).
* ``tunelab``: ``tunelab.training.run_training`` with the same settings.

Measured per variant: real (non-padding) tokens per second over steps 2..N
(step 1 is warm-up), peak RSS of the process, time from process start to the
end of the first optimizer step, and the final step's training loss. Baselines
compute the loss on every token; tunelab only on assistant replies, so losses
are comparable within a row over time, not across rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = ("tutorial", "fair", "tunelab")
LORA = {"r": 16, "alpha": 32.0, "dropout": 0.0}
LEARNING_RATE = 2e-4
SEED = 42


def default_dataset() -> Path:
    repo = Path(__file__).resolve().parents[1]
    for candidate in (
        os.environ.get("TUNELAB_SHARED_DATASETS", ""),
        str(repo.parent / "shared" / "datasets"),
        "/work/shared/datasets",
    ):
        if candidate and (Path(candidate) / "alpaca_en_demo.json").exists():
            return Path(candidate) / "alpaca_en_demo.json"
    return repo.parent / "shared" / "datasets" / "alpaca_en_demo.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Catalog id or folder.")
    parser.add_argument("--dataset", type=Path, default=default_dataset(), help="Alpaca JSON file.")
    parser.add_argument("--rows", type=int, default=256, help="Use the first N rows.")
    parser.add_argument("--steps", type=int, default=16, help="Optimizer steps per variant.")
    parser.add_argument("--batch-size", type=int, default=8, help="Sequences per step.")
    parser.add_argument("--max-length", type=int, default=512, help="Padding/truncation length.")
    parser.add_argument("--fair-precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--only", choices=VARIANTS, action="append", help="Run only these.")
    parser.add_argument("--json-out", type=Path, help="Also write the results here.")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# -- measurements shared by all variants ------------------------------------------


def summarise(step_times: list[float], step_tokens: list[int], losses: list[float]) -> dict[str, Any]:
    """Steady-state real tokens/s over steps 2..N, plus the raw per-step numbers."""
    steady = sum(step_tokens[1:]) / max(step_times[-1] - step_times[0], 1e-9)
    return {
        "steps": len(step_times),
        "real_tokens": sum(step_tokens),
        "real_tokens_per_s": steady if len(step_times) > 1 else float("nan"),
        "first_step_end": step_times[0],
        "train_s": step_times[-1] - step_times[0],
        "final_loss": losses[-1] if losses else float("nan"),
        "losses": losses,
    }


# -- the two baselines: plain HF Trainer + peft -----------------------------------


def alpaca_texts(tokenizer: Any, dataset: Path, rows: int) -> list[str]:
    """Alpaca rows rendered with the model's chat template, the text every variant trains on."""
    texts = []
    for row in json.loads(dataset.read_text())[:rows]:
        prompt = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
    return texts


def run_baseline(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    tutorial = args.worker == "tutorial"
    bf16 = not tutorial and (
        args.fair_precision == "bf16"
        or (args.fair_precision == "auto" and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )
    tokenizer = AutoTokenizer.from_pretrained(args.model_path)
    texts = alpaca_texts(tokenizer, args.dataset, args.rows)
    if tutorial:
        encoded = [
            tokenizer(t, padding="max_length", truncation=True, max_length=args.max_length)
            for t in texts
        ]
        collator: Any = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    else:
        encoded = [tokenizer(t, truncation=True, max_length=args.max_length) for t in texts]
        for row in encoded:
            row["labels"] = list(row["input_ids"])
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    batch_tokens: list[int] = []

    def counting_collator(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collator(features)
        batch_tokens.append(int(batch["attention_mask"].sum()))
        return batch

    model = AutoModelForCausalLM.from_pretrained(args.model_path, dtype=torch.float32)
    lora = LoraConfig(
        r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
        target_modules="all-linear", task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    step_times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            step_times.append(time.time())

    training_args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-"),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),  # else the Trainer refuses bf16 on a CPU
        seed=SEED,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model, args=training_args, train_dataset=encoded,
        data_collator=counting_collator, callbacks=[Clock()],
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    result = summarise(step_times, batch_tokens[: len(step_times)], losses)
    result["precision"] = "bf16" if bf16 else "fp32"
    return result


# -- our engine -------------------------------------------------------------------


def run_tunelab(args: argparse.Namespace) -> dict[str, Any]:
    from tunelab.training import TrainConfig, run_training

    step_times: list[float] = []
    metrics: list[dict[str, Any]] = []

    class Recorder:
        def on_event(self, event: dict[str, Any]) -> None:
            print(f"[{event['type']}] {event['message']}", file=sys.stderr, flush=True)

        def on_metrics(self, values: dict[str, Any]) -> None:
            if "loss" in values and "tokens_seen" in values:
                step_times.append(time.time())
                metrics.append(values)

    config = TrainConfig(
        model=str(args.model_path),
        dataset=str(args.dataset),
        max_rows=args.rows,
        eval_split=0.0,
        method="lora",
        lora={"r": LORA["r"], "alpha": LORA["alpha"], "dropout": LORA["dropout"]},
        learning_rate=LEARNING_RATE,
        batch_size=args.batch_size,
        max_steps=args.steps,
        warmup_steps=0,
        warmup_ratio=0.0,
        scheduler="cosine",
        max_length=args.max_length,
        logging_steps=1,
        save_steps=0,
        seed=SEED,
        output={"evaluate": False, "eval_generations": 0},
    )
    run_dir = Path(tempfile.mkdtemp(prefix="bench-run-"))
    result = run_training(config, run_dir, Recorder())
    if result.status != "completed":
        raise RuntimeError(f"tunelab run {result.status}: {result.error}")
    seen = [0] + [int(m["tokens_seen"]) for m in metrics]
    tokens = [after - before for before, after in itertools.pairwise(seen)]
    summary = summarise(step_times, tokens, [float(m["loss"]) for m in metrics])
    resolved = json.loads((run_dir / "config.json").read_text()).get("engine", {})
    summary["precision"] = str(resolved.get("hardware", resolved).get("precision", "?"))
    return summary


# -- the driver: one fresh subprocess per variant ----------------------------------


def run_variant(variant: str, args: argparse.Namespace, model_path: Path) -> dict[str, Any]:
    result_file = Path(tempfile.mkstemp(suffix=".json")[1])
    command = [
        sys.executable, __file__, "--worker", variant, "--model-path", str(model_path),
        "--result", str(result_file), "--dataset", str(args.dataset), "--rows", str(args.rows),
        "--steps", str(args.steps), "--batch-size", str(args.batch_size),
        "--max-length", str(args.max_length), "--fair-precision", args.fair_precision,
    ]
    started = time.time()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{variant} failed with exit code {process.returncode}")
    result = json.loads(result_file.read_text())
    result_file.unlink()
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux reports KiB
    result["time_to_first_step_s"] = result.pop("first_step_end") - started
    result["wall_s"] = time.time() - started
    return result


def print_table(results: dict[str, dict[str, Any]]) -> None:
    header = f"{'variant':<10} {'precision':>9} {'real tok/s':>11} {'peak RSS MiB':>13} {'first step s':>13} {'final loss':>11} {'wall s':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for name, r in results.items():
        print(
            f"{name:<10} {r['precision']:>9} {r['real_tokens_per_s']:>11.1f} {r['peak_rss_mib']:>13.0f} "
            f"{r['time_to_first_step_s']:>13.1f} {r['final_loss']:>11.3f} {r['wall_s']:>7.0f}"
        )
    ours = results.get("tunelab")
    if ours is None:
        return
    for base in ("tutorial", "fair"):
        if base in results:
            other = results[base]
            print(
                f"tunelab vs {base}: {ours['real_tokens_per_s'] / other['real_tokens_per_s']:.2f}x real tokens/s, "
                f"{ours['peak_rss_mib'] / other['peak_rss_mib']:.2f}x peak RSS, "
                f"{ours['time_to_first_step_s'] / other['time_to_first_step_s']:.2f}x time to first step"
            )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        runner = run_tunelab if args.worker == "tunelab" else run_baseline
        result = runner(args)
        result["self_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        args.result.write_text(json.dumps(result))
        return
    from tunelab.models import resolve_model

    model_path = resolve_model(args.model)  # convert the built-in once, outside the timings
    print(
        f"model {args.model} ({model_path}), {args.rows} rows of {args.dataset.name}, "
        f"{args.steps} steps x batch {args.batch_size}, max length {args.max_length}, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    results = {}
    for variant in args.only or VARIANTS:
        print(f"\n== {variant} ==", flush=True)
        results[variant] = run_variant(variant, args, model_path)
    print_table(results)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
