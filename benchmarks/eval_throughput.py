"""Evaluation generation throughput: batched (as ``tunelab eval`` runs) against one prompt at a time.

Run:  python benchmarks/eval_throughput.py [--model smollm2-135m-instruct] [--prompts 32]
      [--max-new-tokens 32] [--batch-size 16]

Both arms answer the same prompts (the first ``--prompts`` questions of the
shipped general-ability probe, rendered with the model's chat template) with
the same greedy decoding through the one generation helper,
``tunelab.models.generation.generate``; they differ only in ``batch_size``
(``--batch-size`` rows per ``model.generate`` call with left padding, or 1).
Each arm runs in its own fresh subprocess, in the order A B B A (batched,
single, single, batched), so warm caches and a busy machine favour neither;
the table shows every run and the mean per arm. Throughput is generated reply
tokens (up to and including each row's stop token, never padding) per second
of generation; model loading is timed separately and excluded. The replies of
the two arms are compared too: greedy decoding should give the same text.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ARMS = {"batched": None, "single": 1}
ORDER = ("batched", "single", "single", "batched")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Catalog id, model folder or run directory.")
    parser.add_argument("--prompts", type=int, default=32, help="How many probe questions.")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="Tokens per reply at most.")
    parser.add_argument("--batch-size", type=int, default=16, help="Rows per generate call in the batched arm.")
    parser.add_argument("--json-out", type=Path, help="Also write every run as JSON here.")
    parser.add_argument("--arm", choices=tuple(ARMS), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_arm(args: argparse.Namespace) -> dict[str, Any]:
    """One arm in this process: load, render, generate, count."""
    import torch

    from tunelab.evaluation.retention import load_probe
    from tunelab.models.generation import Sampling, generate
    from tunelab.models.loading import load_parts, locate
    from tunelab.training.encoding import render_prompt

    started = time.perf_counter()
    model, tokenizer = load_parts(locate(args.model, progress=False))
    loaded = time.perf_counter() - started
    prompts = [render_prompt(tokenizer, row.messages) for row in load_probe()[: args.prompts]]
    batch = args.batch_size if args.arm == "batched" else 1
    sampling = Sampling(max_new_tokens=args.max_new_tokens, temperature=0.0)
    generate(model, tokenizer, prompts[:1], sampling, batch_size=1)  # warm-up, not timed
    begin = time.perf_counter()
    done = generate(model, tokenizer, prompts, sampling, batch_size=batch)
    seconds = time.perf_counter() - begin
    tokens = sum(c.completion_tokens for c in done)
    return {"arm": args.arm, "batch_size": batch, "prompts": len(prompts), "tokens": tokens, "seconds": seconds,
            "tokens_per_s": tokens / seconds, "load_s": loaded, "threads": torch.get_num_threads(),
            "replies": [c.text for c in done]}  # fmt: skip


def run_in_subprocess(arm: str, args: argparse.Namespace, folder: Path, index: int) -> dict[str, Any]:
    result = folder / f"{index}-{arm}.json"
    command = [sys.executable, __file__, "--arm", arm, "--result", str(result), "--model", args.model,
               "--prompts", str(args.prompts), "--max-new-tokens", str(args.max_new_tokens),
               "--batch-size", str(args.batch_size)]  # fmt: skip
    subprocess.run(command, check=True)
    return json.loads(result.read_text())


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.arm:
        args.result.write_text(json.dumps(run_arm(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_in_subprocess(arm, args, Path(tmp), i) for i, arm in enumerate(ORDER)]
    print(f"model {args.model}, {args.prompts} probe prompts, greedy, max_new_tokens {args.max_new_tokens}")
    print(f"{'run':>3}  {'arm':<8} {'batch':>5} {'tokens':>7} {'seconds':>8} {'tokens/s':>9}")
    for i, run in enumerate(runs, 1):
        print(f"{i:>3}  {run['arm']:<8} {run['batch_size']:>5} {run['tokens']:>7} {run['seconds']:>8.2f} "
              f"{run['tokens_per_s']:>9.1f}")  # fmt: skip
    mean = {arm: sum(r["tokens_per_s"] for r in runs if r["arm"] == arm) / ORDER.count(arm) for arm in ARMS}
    for arm in ARMS:
        print(f"mean {arm}: {mean[arm]:.1f} tokens/s")
    same = sum(a == b for a, b in zip(runs[0]["replies"], runs[1]["replies"], strict=True))
    print(f"batched vs single: {mean['batched'] / mean['single']:.2f}x tokens/s; identical replies: "
          f"{same}/{len(runs[0]['replies'])}")  # fmt: skip
    if args.json_out:
        args.json_out.write_text(json.dumps({"runs": runs, "mean_tokens_per_s": mean}, indent=2))


if __name__ == "__main__":
    main()
