"""Where one training step's time goes: torch.profiler over the engine's steps, top operators.

Run:  python benchmarks/step_profile.py [--steps 3] [--batch-size 8] [--top 15] [--by op|shape|line]

Trains the built-in model (LoRA r=16, all linear layers, the first alpaca rows)
with tunelab's engine and profiles every step after the first (warm-up). Prints
the operators with the most self CPU time, their share of the profiled time and
call counts: the list the next speed change is picked from. ``--by shape``
splits each operator by its input shapes, ``--by line`` by the
Python line that called it (the first frame outside torch), and ``--op`` keeps
one operator: ``--op aten::mul --by line`` says where a step's multiplies come
from. The engine's own switches apply as in a training run, e.g.
``TUNELAB_PACKED_ATTENTION=sliced`` or ``TUNELAB_LORA_FORWARD=peft`` for the
profile before a change.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Catalog id or folder.")
    parser.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[1]
                        / "examples" / "data" / "alpaca_en_demo.json")  # fmt: skip
    parser.add_argument(
        "--steps", type=int, default=3, help="Steps; all but the first are profiled."
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--top", type=int, default=15, help="Operators to list.")
    parser.add_argument(
        "--by",
        choices=("op", "shape", "line"),
        default="op",
        help="Group by operator, operator and input shapes, or operator and calling Python line.",
    )
    parser.add_argument("--op", help="List only this operator (e.g. aten::mul).")
    parser.add_argument("--json-out", type=Path, help="Also write the table here.")
    return parser.parse_args(argv)


def where(event: Any, by: str) -> str:
    """The grouping detail of one row: input shapes, or the calling line outside torch."""
    if by == "shape":
        return " ".join(str(list(shape)) for shape in event.input_shapes if shape)
    if by == "line":
        frames = [
            frame for frame in event.stack if "/torch/" not in frame and "<built-in" not in frame
        ]
        return frames[0].split("site-packages/")[-1] if frames else "(inside torch)"
    return ""


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch
    from torch._C._profiler import _ExperimentalConfig
    from torch.profiler import ProfilerActivity, profile

    from tunelab.models import resolve_model
    from tunelab.training import TrainConfig, run_training

    prof = profile(
        activities=[ProfilerActivity.CPU],
        record_shapes=args.by == "shape",
        with_stack=args.by == "line",
        # without verbose, recent torch records no Python frames for CPU operators
        experimental_config=_ExperimentalConfig(verbose=args.by == "line"),
    )
    state = {"steps": 0}

    class Recorder:
        def on_event(self, event: dict[str, Any]) -> None:
            return None

        def on_metrics(self, values: dict[str, Any]) -> None:
            if values.get("type") == "train":
                state["steps"] += 1
                if state["steps"] == 1:
                    prof.__enter__()
                elif state["steps"] == args.steps:
                    prof.__exit__(None, None, None)  # before the output is saved

    config = TrainConfig(
        model=str(resolve_model(args.model)), dataset=str(args.dataset), max_rows=args.batch_size * args.steps,
        eval_split=0.0, method="lora", lora={"r": 16, "alpha": 32.0, "dropout": 0.0}, batch_size=args.batch_size,
        max_steps=args.steps, max_length=args.max_length, save_steps=0, seed=42,
        output={"evaluate": False, "eval_generations": 0},
    )  # fmt: skip
    result = run_training(config, Path(tempfile.mkdtemp(prefix="step-profile-")), Recorder())
    if result.status != "completed":
        raise SystemExit(f"run {result.status}: {result.error}")
    grouped = prof.key_averages(
        group_by_input_shape=args.by == "shape", group_by_stack_n=32 if args.by == "line" else 0
    )
    merged: dict[tuple[str, str], list[float]] = {}  # (operator, detail) -> [self us, calls]
    for e in grouped:
        if e.self_cpu_time_total > 0:
            found = merged.setdefault((e.key, where(e, args.by)), [0.0, 0])
            found[0] += e.self_cpu_time_total
            found[1] += e.count
    total = sum(us for us, _ in merged.values())
    events = sorted(((key, us, n) for key, (us, n) in merged.items() if not args.op or key[0] == args.op),
                    key=lambda item: item[1], reverse=True)  # fmt: skip
    rows = [{"op": op, "self_ms": us / 1000 / (args.steps - 1), "share": us / total,
             "calls": int(n) // (args.steps - 1), "where": detail}
            for (op, detail), us, n in events[: args.top]]  # fmt: skip
    print(f"\n{args.steps - 1} profiled steps, {total / 1000 / (args.steps - 1):.0f} ms of operator time per step "
          f"({torch.get_num_threads()} threads)")  # fmt: skip
    header = f"{'operator':<56} {'self ms/step':>13} {'share':>7} {'calls/step':>11}"
    print(header + "\n" + "-" * len(header))
    for row in rows:
        print(
            f"{row['op'][:56]:<56} {row['self_ms']:>13.1f} {row['share']:>7.1%} {row['calls']:>11}"
            + (f"  {row['where']}" if row["where"] else "")
        )
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
