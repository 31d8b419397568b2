"""LoRA training throughput: tunelab's engine against HF Trainer, peft and TRL baselines.

Run:  python benchmarks/train_throughput.py [--steps 8] [--batch-size 8] [--rows 64]

Every variant trains the same model (the built-in SmolLM2-135M-Instruct by
default, the converted copy tunelab caches) with the same LoRA config (r=16,
alpha=32, dropout 0, all linear layers), learning rate, schedule and number of
optimizer steps on the first ``--rows`` alpaca rows, each in its own fresh
subprocess so peak memory and start-up time are its own:

* ``tutorial``: how the common tutorials do it: fp32, ``padding="max_length"``
  to 512, ``DataCollatorForLanguageModeling``.
* ``fair``: the same Trainer as a careful user sets it up: dynamic padding
  (``DataCollatorForSeq2Seq``) and bf16 autocast where the hardware has native
  bf16 (fp32 elsewhere: emulated bf16 is several times slower; force it with
  ``--fair-precision bf16``).
* ``trl``: the strong baseline, TRL's ``SFTTrainer`` as its docs recommend:
  prompt-completion rows (completion-only loss), padding-free BFD packing to
  ``--max-length``, the frozen base in bf16 plus bf16 autocast where the CPU has
  native bf16. Packed rows per step are chosen so the steps cover the same rows
  as the other variants' batches (``--steps`` steps over ``--rows`` rows).
  Gradient checkpointing is on, SFTConfig's own default (``--trl-checkpointing
  off`` turns it off). Where tunelab's cache holds the bf16 copy of the built-in
  model's weights (``models/loading.py``), TRL loads that copy too (transformers'
  ``variant``), as a user of the Hub's bf16 weights would. Skipped with a message
  when TRL is not installed (``pip install -e '.[bench]'``).
* ``tunelab``: ``tunelab.training.run_training`` with the same settings;
  ``TUNELAB_BENCH_CHECKPOINTING`` (``false``, ``selective``, ``true``; e.g. in an
  ``--arm``) sets its ``gradient_checkpointing``, default the engine's default.

Variants run in A B B A order by default (``--order abba``: the list, then the
list reversed), so a machine that slows down or speeds up during the run
affects every variant alike; each variant's figures are the mean of its runs.
``--arm NAME:VAR=VALUE[,VAR=VALUE]`` adds a variant NAME: tunelab run with those
environment variables, to measure one engine change against the code without it
in the same script run (e.g. ``--only tunelab --arm
sliced:TUNELAB_PACKED_ATTENTION=sliced``; tunelab's ratio to each arm is printed).

Measured per variant: real (non-padding) tokens per second over steps 2..N
(step 1 is warm-up), peak RSS of the process (its own ``VmHWM``, read by the
worker as it ends: ``wait4``'s ``ru_maxrss`` would also count the driver's RSS at
the fork, which Linux carries into the child), time from process start to the
end of the first optimizer step, and the final step's training loss. tutorial
and fair compute the loss on every token; trl and tunelab only on assistant
replies, so losses are comparable within a row over time, not across rows.
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

VARIANTS = ("tutorial", "fair", "trl", "tunelab")
#: The baseline the issue measures against: tunelab's ratios are printed against each, this one last.
STRONG = "trl"
LORA = {"r": 16, "alpha": 32.0, "dropout": 0.0}
LEARNING_RATE = 2e-4
SEED = 42


def default_dataset() -> Path:
    """The alpaca demo file shipped in ``examples/data`` (the shared copy when run from elsewhere)."""
    repo = Path(__file__).resolve().parents[1]
    for candidate in (
        str(repo / "examples" / "data"),
        os.environ.get("TUNELAB_SHARED_DATASETS", ""),
        str(repo.parent / "shared" / "datasets"),
    ):
        if candidate and (Path(candidate) / "alpaca_en_demo.json").exists():
            return Path(candidate) / "alpaca_en_demo.json"
    return repo / "examples" / "data" / "alpaca_en_demo.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Catalog id or folder.")
    parser.add_argument("--dataset", type=Path, default=default_dataset(), help="Alpaca JSON file.")
    parser.add_argument("--rows", type=int, default=64, help="Use the first N rows.")
    parser.add_argument("--steps", type=int, default=8, help="Optimizer steps per variant.")
    parser.add_argument("--batch-size", type=int, default=8, help="Sequences per step.")
    parser.add_argument("--max-length", type=int, default=512, help="Padding/truncation length.")
    parser.add_argument("--fair-precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--trl-checkpointing", choices=("on", "off"), default="on",
                        help="TRL's gradient checkpointing (on: SFTConfig's default).")  # fmt: skip
    parser.add_argument("--only", choices=VARIANTS, action="append", help="Run only these.")
    parser.add_argument(
        "--order",
        choices=("abba", "once"),
        default="abba",
        help="abba: the variants, then again in reverse (each figure is the mean); once: one run each.",
    )
    parser.add_argument("--json-out", type=Path, help="Also write the results here.")
    parser.add_argument(
        "--arm",
        action="append",
        default=[],
        type=parse_arm,
        metavar="NAME:VAR=VALUE[,VAR=VALUE]",
        help="An extra variant: tunelab with these environment variables (repeatable).",
    )
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# -- measurements shared by all variants ------------------------------------------


def summarise(
    step_times: list[float], step_tokens: list[int], losses: list[float]
) -> dict[str, Any]:
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
        messages = [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": row["output"]},
        ]
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
        r=LORA["r"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
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
        model=model,
        args=training_args,
        train_dataset=encoded,
        data_collator=counting_collator,
        callbacks=[Clock()],
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    result = summarise(step_times, batch_tokens[: len(step_times)], losses)
    result["precision"] = "bf16" if bf16 else "fp32"
    return result


# -- the strong baseline: TRL's SFTTrainer -----------------------------------------


def trl_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("trl") is not None


def alpaca_conversations(dataset: Path, rows: int) -> list[dict[str, Any]]:
    """Alpaca rows as TRL's conversational prompt-completion records (completion-only loss)."""
    records = []
    for row in json.loads(dataset.read_text())[:rows]:
        prompt = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
        records.append({"prompt": [{"role": "user", "content": prompt}],
                        "completion": [{"role": "assistant", "content": row["output"]}]})  # fmt: skip
    return records


def run_trl(args: argparse.Namespace) -> dict[str, Any]:
    """SFTTrainer with padding-free BFD packing, completion-only loss, bf16 base and autocast."""
    import math

    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from datasets import Dataset

    bf16 = args.fair_precision == "bf16" or (
        args.fair_precision == "auto" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
    from tunelab.models.loading import weights_variant

    tokenizer = AutoTokenizer.from_pretrained(args.model_path)
    model = AutoModelForCausalLM.from_pretrained(
        args.model_path, dtype=torch.bfloat16 if bf16 else torch.float32, attn_implementation="sdpa",
        variant=weights_variant(args.model_path, "bf16") if bf16 else None,
    )  # fmt: skip
    step_times: list[float] = []
    seen: list[int] = []

    class Clock(TrainerCallback):
        def on_step_end(self, _args: Any, state: Any, *_: Any, **__: Any) -> None:
            step_times.append(time.time())
            seen.append(int(state.num_input_tokens_seen))

    config = SFTConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"),
        packing=True, packing_strategy="bfd", padding_free=True, completion_only_loss=True,
        max_length=args.max_length, per_device_train_batch_size=args.batch_size, max_steps=args.steps,
        learning_rate=LEARNING_RATE, lr_scheduler_type="cosine", warmup_steps=0, logging_steps=1,
        save_strategy="no", report_to=[], bf16=bf16, use_cpu=not torch.cuda.is_available(), seed=SEED,
        dataloader_num_workers=0, disable_tqdm=True, include_num_input_tokens_seen=True,
        dataset_num_proc=None, gradient_checkpointing=args.trl_checkpointing == "on",
    )  # fmt: skip
    lora = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                      target_modules="all-linear", task_type="CAUSAL_LM")  # fmt: skip
    trainer = SFTTrainer(
        model=model, args=config, processing_class=tokenizer, peft_config=lora, callbacks=[Clock()],
        train_dataset=Dataset.from_list(alpaca_conversations(args.dataset, args.rows)),
    )  # fmt: skip
    # Packed rows per step so that the steps walk over the rows as the other variants' batches do.
    steps_per_epoch = math.ceil(args.rows / args.batch_size)
    trainer.args.per_device_train_batch_size = max(
        1, math.ceil(len(trainer.train_dataset) / steps_per_epoch)
    )
    # The Trainer read its batch size at construction; without this it would keep --batch-size packed
    # rows per step (up to batch x max_length tokens: twice the other variants' tokens on 16 rows).
    trainer._train_batch_size = trainer.args.train_batch_size
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    tokens = [after - before for before, after in itertools.pairwise([0, *seen])]
    result = summarise(step_times, tokens, losses)
    result["precision"] = "bf16" if bf16 else "fp32"
    result["packed_rows_per_step"] = trainer._train_batch_size
    result["checkpointing"] = str(trainer.args.gradient_checkpointing).lower()
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
        **checkpointing_override(),
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
    summary["checkpointing"] = str(json.loads((run_dir / "config.json").read_text())["gradient_checkpointing"]).lower()
    return summary


def checkpointing_override() -> dict[str, Any]:
    """``gradient_checkpointing`` from ``TUNELAB_BENCH_CHECKPOINTING`` (false, selective, true), if set."""
    value = os.environ.get("TUNELAB_BENCH_CHECKPOINTING", "").lower()
    choices: dict[str, bool | str] = {"false": False, "true": True, "selective": "selective", "auto": "auto"}
    if value and value not in choices:
        raise SystemExit(f"TUNELAB_BENCH_CHECKPOINTING={value!r}: use one of {', '.join(choices)}")
    return {"gradient_checkpointing": choices[value]} if value else {}


# -- the driver: one fresh subprocess per variant ----------------------------------


def own_peak_rss_mib() -> float:
    """This process's peak RSS since its exec (``VmHWM``), in MiB; ``ru_maxrss`` where /proc is missing.

    ``getrusage``'s ``ru_maxrss`` keeps the larger of this address space's peak
    and the one the process had before exec, which for a child is its parent's
    RSS at the fork, so a large driver would lift every variant's figure alike.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parse_arm(text: str) -> tuple[str, dict[str, str]]:
    """``NAME:VAR=VALUE[,VAR=VALUE]`` -> (NAME, environment) for ``--arm``."""
    name, _, assignments = text.partition(":")
    pairs = [item.partition("=") for item in assignments.split(",") if item]
    if not name or name in VARIANTS or not pairs or any(not var or not eq for var, eq, _ in pairs):
        raise argparse.ArgumentTypeError(
            f"--arm {text!r}: expected NAME:VAR=VALUE[,VAR=VALUE] with a NAME other than {', '.join(VARIANTS)}"
        )
    return name, {var: value for var, _, value in pairs}


def run_variant(variant: str, args: argparse.Namespace, model_path: Path) -> dict[str, Any]:
    result_file = Path(tempfile.mkstemp(suffix=".json")[1])
    arm_env = dict(args.arm).get(variant)  # an --arm runs the tunelab worker with its variables
    command = [
        sys.executable,
        __file__,
        "--worker",
        "tunelab" if arm_env is not None else variant,
        "--model-path",
        str(model_path),
        "--result",
        str(result_file),
        "--dataset",
        str(args.dataset),
        "--rows",
        str(args.rows),
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--max-length",
        str(args.max_length),
        "--fair-precision",
        args.fair_precision,
        "--trl-checkpointing",
        args.trl_checkpointing,
    ]
    started = time.time()
    process = subprocess.Popen(command, env=None if arm_env is None else os.environ | arm_env)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{variant} failed with exit code {process.returncode}")
    result = json.loads(result_file.read_text())
    result_file.unlink()
    result["peak_rss_mib"] = result.pop("vm_hwm_mib")  # the worker's own high-water mark
    result["ru_maxrss_mib"] = usage.ru_maxrss / 1024  # Linux reports KiB; includes the driver's RSS at fork
    result["time_to_first_step_s"] = result.pop("first_step_end") - started
    result["wall_s"] = time.time() - started
    return result


#: Figures averaged over a variant's runs (A B B A gives each variant two).
MEANED = ("real_tokens_per_s", "peak_rss_mib", "time_to_first_step_s", "final_loss", "wall_s")


def schedule(variants: list[str], order: str) -> list[str]:
    """The run order: each variant once, or A B B A (the list, then reversed)."""
    return variants + variants[::-1] if order == "abba" else list(variants)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant's figures: the mean of its runs, each run's figures kept under ``runs``."""
    out = dict(runs[-1])
    for key in MEANED:
        out[key] = sum(r[key] for r in runs) / len(runs)
    out["runs"] = [{key: r[key] for key in MEANED} for r in runs]
    return out


def print_table(results: dict[str, dict[str, Any]], arms: tuple[str, ...] = ()) -> None:
    header = f"{'variant':<10} {'precision':>9} {'ckpt':>9} {'real tok/s':>11} {'peak RSS MiB':>13} {'first step s':>13} {'final loss':>11} {'wall s':>7} {'runs':>5}"
    print("\n" + header + "\n" + "-" * len(header))
    for name, r in results.items():
        print(
            f"{name:<10} {r['precision']:>9} {r.get('checkpointing', 'false'):>9} {r['real_tokens_per_s']:>11.1f} {r['peak_rss_mib']:>13.0f} "
            f"{r['time_to_first_step_s']:>13.1f} {r['final_loss']:>11.3f} {r['wall_s']:>7.0f} {len(r.get('runs', [r])):>5}"
        )
    ours = results.get("tunelab")
    if ours is None:
        return
    for base in (*arms, "tutorial", "fair", STRONG):
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
        runners = {"tunelab": run_tunelab, "trl": run_trl}
        result = runners.get(args.worker, run_baseline)(args)
        result["self_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["vm_hwm_mib"] = own_peak_rss_mib()
        args.result.write_text(json.dumps(result))
        return
    from tunelab.models import resolve_model

    variants = list(dict.fromkeys(args.only or VARIANTS))
    if STRONG in variants and not trl_installed():
        print(f"TRL is not installed: skipping the {STRONG!r} variant (pip install -e '.[bench]' adds it).",
              flush=True)  # fmt: skip
        variants.remove(STRONG)
    variants += [name for name, _ in args.arm if name not in variants]
    model_path = resolve_model(args.model)  # convert the built-in once, outside the timings
    print(
        f"model {args.model} ({model_path}), {args.rows} rows of {args.dataset.name}, "
        f"{args.steps} steps x batch {args.batch_size}, max length {args.max_length}, "
        f"{os.cpu_count()} CPUs, order {' '.join(schedule(variants, args.order))}",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for variant in schedule(variants, args.order):
        print(f"\n== {variant} ==", flush=True)
        runs[variant].append(run_variant(variant, args, model_path))
    results = {name: combine(found) for name, found in runs.items()}
    print_table(results, tuple(name for name, _ in args.arm))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
