"""Where one training step's peak memory goes: a breakdown per model and engine setting.

Run:  python benchmarks/memory_profile.py [--models builtin qwen-shape] [--variants before ... checkpointing]
      [--batch-size 8] [--max-length 1024] [--breakdown]

Each (model, variant) runs one LoRA step (r=16, all linear layers, batch 8,
max_length 1024, the first alpaca rows) of tunelab's engine in a fresh
subprocess, and reports:

* ``import``: RSS after importing torch, transformers and the engine;
* ``weights``: bytes of the model's parameters (frozen base in its dtype);
* ``adapter + optimizer``: trainable parameters, their gradients and AdamW state;
* ``activations``: the most bytes autograd held for the backward pass at once
  (saved-tensor hooks, each storage counted once, parameters excluded), without
  the logits; inside a checkpointed layer torch's own hooks take over, so with
  checkpointing this counts only what is saved outside the layers (what a
  checkpointed layer keeps shows in ``step rise``);
* ``logits / cross-entropy``: the same for saved tensors with the vocabulary as
  last dimension (a chunk's logits count only while they are alive);
* ``load-time copies``: peak RSS while loading minus RSS once loaded;
* ``step rise``: peak RSS during the step minus RSS before it (activations,
  gradients, optimizer state and allocator slack together);
* ``allocator caching``: RSS after the step, with activations and gradients freed,
  minus RSS before it and the optimizer state (memory the process kept);
* ``step peak``: the highest RSS during setup and the step (sampled every 2 ms),
  and the process's ``ru_maxrss``.

Models: ``builtin`` is SmolLM2-135M-Instruct (49,152-word vocabulary);
``qwen-shape`` is a Qwen2.5-0.5B-shaped model built from its config with random
weights (no download; 151,936-word vocabulary, tied embeddings), with the
built-in model's tokenizer. Variants add one change at a time:

* ``before``: head unchunked, glibc defaults, no checkpointing;
* ``chunked``: + the LM head and cross-entropy in chunks (``training/loss.py``);
* ``allocator``: + the allocator settings (``training/allocator.py``);
* ``bf16-copy``: + the frozen base loaded from the bf16 copy of its weights
  (``models/loading.py`` ``weights_variant``) instead of the fp32 file cast while
  loading;
* ``selective``: + ``gradient_checkpointing: selective`` (matmul and attention
  outputs kept, the elementwise ops recomputed: ``training/checkpointing.py``);
* ``checkpointing``: ``gradient_checkpointing: true`` instead of selective.

``--breakdown`` also lists, for each variant, what autograd held at its peak
grouped by the operation that made each tensor and its dtype (outside
checkpointed layers only).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

MIB = 1024**2
VARIANTS = ("before", "chunked", "allocator", "bf16-copy", "selective", "checkpointing")
MODELS = ("builtin", "qwen-shape")
#: Qwen2.5-0.5B's published shape (config.json of Qwen/Qwen2.5-0.5B-Instruct).
QWEN_SHAPE = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
    "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
    "hidden_act": "silu", "use_sliding_window": False,
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument(
        "--rows", type=int, default=8, help="Alpaca rows (one step of --batch-size)."
    )
    parser.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[1]
                        / "examples" / "data" / "alpaca_en_demo.json")  # fmt: skip
    parser.add_argument("--json-out", type=Path, help="Also write the results here.")
    parser.add_argument("--breakdown", action="store_true", help="List what autograd held at its peak.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_qwen_shape(folder: Path, tokenizer_dir: Path) -> Path:
    """A Qwen2.5-0.5B-shaped causal LM with random bf16 weights and the built-in tokenizer (once)."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.for_model(
        **{k: v for k, v in QWEN_SHAPE.items() if k not in ("architectures",)}
    )
    config.architectures = QWEN_SHAPE["architectures"]
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp)
    tmp.rename(folder)
    return folder


# -- the worker: one step of the engine, measured -----------------------------------


class RssSampler(threading.Thread):
    """Highest resident set size since the last ``mark`` (read from /proc every 2 ms)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.marks: dict[str, int] = {}
        self.page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * self.page

    def run(self) -> None:
        while True:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.002)

    def mark(self, name: str) -> None:
        now = self.rss()
        self.marks[name] = max(self.peak, now)
        self.marks[name + "_after"] = now
        self.peak = now


def saved_tensor_counter(vocab: int) -> tuple[Any, dict[str, Any]]:
    """saved_tensors_hooks that track the most bytes autograd held for backward at once.

    Each storage counts once while anything saved from it is alive (so a chunk's
    logits that the chunked head frees right away count only while they live);
    parameters are not activations and are left out. ``peak["groups"]`` is the
    split of the highest total by (operation that made the tensor, dtype).
    """
    import torch

    live = {"activations": 0, "logits": 0}
    peak: dict[str, Any] = {"activations": 0, "logits": 0, "total": 0, "groups": {}}
    groups: dict[str, int] = {}
    users: dict[int, int] = {}

    class Saved:
        def __init__(self, tensor: Any, key: int, kind: str, size: int, group: str) -> None:
            self.tensor, self.key, self.kind, self.size, self.group = tensor, key, kind, size, group

        def __del__(self) -> None:
            users[self.key] -= 1
            if not users[self.key]:
                del users[self.key]
                live[self.kind] -= self.size
                groups[self.group] -= self.size

    def pack(tensor: Any) -> Any:
        base = tensor._base if tensor._base is not None else tensor
        if isinstance(base, torch.nn.Parameter) or isinstance(tensor, torch.nn.Parameter):
            return tensor
        storage = tensor.untyped_storage()
        key, kind = (
            storage.data_ptr(),
            "logits" if tensor.dim() and tensor.shape[-1] == vocab else "activations",
        )
        maker = type(base.grad_fn).__name__ if base.grad_fn is not None else "no grad_fn"
        group = f"{maker} {str(tensor.dtype).removeprefix('torch.')}"
        if key not in users:
            live[kind] += storage.nbytes()
            groups[group] = groups.get(group, 0) + storage.nbytes()
            for name in live:
                peak[name] = max(peak[name], live[name])
            if sum(live.values()) > peak["total"]:
                peak["total"], peak["groups"] = sum(live.values()), dict(groups)
        users[key] = users.get(key, 0) + 1
        return Saved(tensor, key, kind, storage.nbytes(), group)

    def unpack(saved: Any) -> Any:
        return saved.tensor if isinstance(saved, Saved) else saved

    return torch.autograd.graph.saved_tensors_hooks(pack, unpack), peak


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    sampler = RssSampler()
    sampler.start()
    variant = args.worker
    if VARIANTS.index(variant) < VARIANTS.index("allocator"):
        os.environ["TUNELAB_ALLOCATOR"] = "default"
    import importlib

    import torch  # noqa: F401  (measured as part of the import)
    import transformers  # noqa: F401

    from tunelab.models import loading
    from tunelab.training import TrainConfig, loss, run_training

    preflight = importlib.import_module("tunelab.training.preflight")

    # The estimate sizes every sequence at max_length; the alpaca rows are far shorter, and the
    # point here is to measure the real step, so its memory check is left out.
    preflight._memory_issues = lambda *_args, **_kwargs: []
    sampler.mark("import")
    if variant == "before":
        loss.CHUNK_ELEMENTS = 0
    if VARIANTS.index(variant) < VARIANTS.index("bf16-copy"):
        loading.DTYPE_VARIANTS = ()  # the fp32 file, cast while loading
    vocab = json.loads((args.model_path / "config.json").read_text())["vocab_size"]
    hooks, saved = saved_tensor_counter(vocab)
    facts: dict[str, Any] = {}

    class Recorder:
        def on_event(self, event: dict[str, Any]) -> None:
            if event["type"] == "data":
                sampler.mark("data")
            elif event["type"] == "started":
                sampler.mark("load")

        def on_metrics(self, values: dict[str, Any]) -> None:
            if "loss" in values and "step" in values:
                sampler.mark("step")
                facts["loss"] = values["loss"]
                facts["tokens"] = values.get("tokens_seen")
                facts["step_s"] = values.get("elapsed_s")

    config = TrainConfig(
        model=str(args.model_path), dataset=str(args.dataset), max_rows=args.rows, eval_split=0.0,
        method="lora", lora={"r": 16, "alpha": 32.0, "dropout": 0.0}, batch_size=args.batch_size,
        max_steps=1, max_length=args.max_length, save_steps=0, seed=42,
        gradient_checkpointing={"selective": "selective", "checkpointing": True}.get(variant, False),
        output={"evaluate": False, "eval_generations": 0},
    )  # fmt: skip
    run_dir = Path(tempfile.mkdtemp(prefix="memprofile-"))
    with hooks:
        result = run_training(config, run_dir, Recorder())
    if result.status != "completed":
        raise RuntimeError(f"run {result.status}: {result.error}")
    resolved = json.loads((run_dir / "config.json").read_text())["engine"]
    weights, trainable = _parameter_bytes(args.model_path, resolved["parameters"])
    marks = sampler.marks
    return {
        "import": marks["import_after"],
        "weights": weights,
        "adapter_optimizer": trainable * 4 * 4,  # fp32 weights, gradients, two AdamW moments
        "activations": saved["activations"],
        "logits": saved["logits"],
        "load_copies": max(0, marks["load"] - marks["load_after"]),
        "step_rise": max(0, marks["step"] - marks["load_after"]),
        "allocator": max(0, marks["step_after"] - marks["load_after"] - trainable * 4 * 2),
        "step_peak": max(marks["step"], marks["load"]),
        "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "loss": facts.get("loss"), "tokens": facts.get("tokens"), "trainable": trainable,
        "groups": saved["groups"], "step_s": facts.get("step_s"),
    }  # fmt: skip


def _parameter_bytes(model_path: Path, counts: dict[str, int]) -> tuple[int, int]:
    """(frozen base bytes in its stored dtype, trainable parameter count)."""
    from tunelab.models.precision import cpu_bf16_supported

    width = 2 if cpu_bf16_supported() else 4
    return (counts["total"] - counts["trainable"]) * width, counts["trainable"]


# -- the driver -----------------------------------------------------------------------

ROWS = (
    ("import", "import (torch, transformers, engine)"),
    ("weights", "weights (frozen base)"),
    ("adapter_optimizer", "adapter + grads + AdamW state"),
    ("activations", "activations saved for backward"),
    ("logits", "logits / cross-entropy saved"),
    ("load_copies", "load-time copies (peak - after load)"),
    ("step_rise", "step rise (step peak - before the step)"),
    ("allocator", "allocator caching after the step"),
    ("step_peak", "peak RSS (sampled)"),
    ("ru_maxrss", "peak RSS (ru_maxrss)"),
)


def print_table(model: str, results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    print(f"\n{model}: MiB per part")
    header = f"{'part':<40}" + "".join(f"{name:>14}" for name in names)
    print(header + "\n" + "-" * len(header))
    for key, label in ROWS:
        print(f"{label:<40}" + "".join(f"{results[n][key] / MIB:>14.0f}" for n in names))
    print(f"{'first loss':<40}" + "".join(f"{results[n]['loss']:>14.4f}" for n in names))
    print(f"{'step seconds (one step, noisy)':<40}" + "".join(f"{results[n]['step_s']:>14.1f}" for n in names))


def print_breakdown(model: str, results: dict[str, dict[str, Any]], top: int = 12) -> None:
    """What autograd held at each variant's peak, by the operation that made it and its dtype."""
    for name, result in results.items():
        groups = sorted(result["groups"].items(), key=lambda item: -item[1])
        print(f"\n{model} / {name}: saved for backward at the peak, MiB (outside checkpointed layers)")
        for group, size in groups[:top]:
            print(f"  {group:<50}{size / MIB:>10.1f}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        args.result.write_text(json.dumps(run_worker(args)))
        return
    from tunelab.models import resolve_model

    builtin = Path(resolve_model("smollm2-135m-instruct"))
    cache = Path(tempfile.gettempdir()) / "tunelab-qwen2.5-0.5b-shape"
    print(f"batch {args.batch_size}, max length {args.max_length}, {args.rows} rows, {os.cpu_count()} CPUs",
          flush=True)  # fmt: skip
    everything = {}
    for model in args.models:
        path = builtin if model == "builtin" else build_qwen_shape(cache, builtin)
        results = {}
        for variant in args.variants:
            result_file = Path(tempfile.mkstemp(suffix=".json")[1])
            command = [sys.executable, __file__, "--worker", variant, "--model-path", str(path),
                       "--result", str(result_file), "--dataset", str(args.dataset), "--rows", str(args.rows),
                       "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]  # fmt: skip
            print(f"== {model} / {variant}", flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            results[variant] = json.loads(result_file.read_text())
            result_file.unlink()
        print_table(model, results)
        if args.breakdown:
            print_breakdown(model, results)
        everything[model] = results
    if args.json_out:
        args.json_out.write_text(json.dumps(everything, indent=2))


if __name__ == "__main__":
    main()
