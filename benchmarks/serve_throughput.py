"""Serving throughput: 16 concurrent clients, batched scheduler against one request at a time.

Run:  python benchmarks/serve_throughput.py [--clients 16] [--max-tokens 64] [--compare batching|int8|both]

Every arm is a fresh subprocess that starts ``tunelab serve-model``'s app
(``tunelab.cli.serve_model.build_app``) on the built-in SmolLM2-135M-Instruct,
warms it up with one request, then lets ``--clients`` threads send one chat
request each at the same instant over HTTP (``/v1/chat/completions``, greedy,
``max_tokens`` each, a different alpaca instruction per client):

* ``batched``: the scheduler joins every request into one batch
  (``--max-batch`` = the number of clients).
* ``one-at-a-time``: the same server with ``--max-batch 1``: each request waits
  for the one before it to finish, as the studio did before batching.

With ``--compare int8`` (or ``both``) two arms compare the batched server in fp32 against the
same with int8 dynamic quantization of the Linear layers (``--quantize
int8``), and report how many greedy replies are word for word the same.

Measured per arm: completion tokens per second over the burst (all tokens /
time from the first request sent to the last answer), and the p50 and p99 of
the requests' latencies. Arms run in A B B A order; the table shows the mean
of each arm's two runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FALLBACK_PROMPTS = [
    "Give three tips for staying healthy.", "What are the three primary colors?", "Describe a sunset in one line.",
    "How do I reset my password?", "Name two uses of Python.", "Explain what a CPU does.",
]  # fmt: skip


def default_dataset() -> Path:
    repo = Path(__file__).resolve().parents[1]
    for candidate in (os.environ.get("TUNELAB_SHARED_DATASETS", ""), str(repo.parent / "shared" / "datasets"),
                      "/work/shared/datasets"):  # fmt: skip
        if candidate and (Path(candidate) / "alpaca_en_demo.json").exists():
            return Path(candidate) / "alpaca_en_demo.json"
    return repo.parent / "shared" / "datasets" / "alpaca_en_demo.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="Catalog id or model folder.")
    parser.add_argument("--clients", type=int, default=16, help="Concurrent requests.")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens of each request.")
    parser.add_argument("--dataset", type=Path, default=default_dataset(), help="Alpaca JSON for the prompts.")
    parser.add_argument("--compare", choices=("batching", "int8", "both"), default="batching",
                        help="batching: batched vs one-at-a-time; int8: fp32 vs int8 (both batched).")
    parser.add_argument("--once", action="store_true", help="Each arm once (A B), for a quick check.")
    parser.add_argument("--json-out", type=Path, help="Also write the results here.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


#: arm -> (max batch: None means the number of clients, precision, quantize)
ARMS: dict[str, tuple[int | None, str, str]] = {
    "batched": (None, "auto", "none"),
    "one-at-a-time": (1, "auto", "none"),
    "batched-fp32": (None, "fp32", "none"),
    "batched-int8": (None, "fp32", "int8"),
}


def prompts(args: argparse.Namespace) -> list[str]:
    rows = json.loads(args.dataset.read_text()) if args.dataset.exists() else []
    texts = [row["instruction"] for row in rows if row.get("instruction") and not row.get("input")]
    texts = texts or FALLBACK_PROMPTS
    return [texts[i % len(texts)] for i in range(args.clients)]


def run_arm(args: argparse.Namespace) -> dict[str, Any]:
    """In the worker process: start the server, one warm-up request, then the burst."""
    import httpx
    import uvicorn

    from tunelab.cli.serve_model import build_app
    from tunelab.serving.registry import ServedModels

    max_batch, precision, quantize = ARMS[args.worker]
    app = build_app(ServedModels("base", str(args.model_path), {}), quantize=quantize, precision=precision,
                    max_batch=max_batch or args.clients)  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    def ask(text: str) -> dict[str, Any]:
        body = {"model": "base", "messages": [{"role": "user", "content": text}], "max_tokens": args.max_tokens,
                "temperature": 0}  # fmt: skip
        answer = httpx.post(url, json=body, timeout=3600)
        answer.raise_for_status()
        return dict(answer.json())

    ask("Hello")  # warm-up: first forward pass, thread pools
    texts = prompts(args)
    results: list[dict[str, Any]] = [{} for _ in texts]
    gate = threading.Barrier(len(texts) + 1)

    def client(index: int) -> None:
        gate.wait()
        start = time.perf_counter()
        reply = ask(texts[index])
        results[index] = {"latency_s": time.perf_counter() - start, "tokens": reply["usage"]["completion_tokens"],
                          "text": reply["choices"][0]["message"]["content"]}  # fmt: skip

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(texts))]
    for worker in threads:
        worker.start()
    gate.wait()
    began = time.perf_counter()
    for worker in threads:
        worker.join()
    wall = time.perf_counter() - began
    server.should_exit = True
    thread.join(timeout=10)
    latencies = sorted(r["latency_s"] for r in results)
    tokens = sum(r["tokens"] for r in results)
    return {"tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall, "p50_s": _percentile(latencies, 50),
            "p99_s": _percentile(latencies, 99), "texts": [r["text"] for r in results]}  # fmt: skip


def _percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    rank = max(1, min(len(values), round(pct / 100 * len(values) + 0.5)))
    return values[rank - 1]


def spawn(arm: str, args: argparse.Namespace, model_path: Path) -> dict[str, Any]:
    result_file = Path(tempfile.mkstemp(suffix=".json")[1])
    command = [sys.executable, __file__, "--worker", arm, "--model-path", str(model_path), "--result",
               str(result_file), "--clients", str(args.clients), "--max-tokens", str(args.max_tokens),
               "--dataset", str(args.dataset)]  # fmt: skip
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{arm} failed with exit code {done.returncode}")
    result = json.loads(result_file.read_text())
    result_file.unlink()
    return dict(result)


def compare(pair: tuple[str, str], args: argparse.Namespace, model_path: Path) -> dict[str, dict[str, Any]]:
    """Both arms of ``pair`` in A B B A order (A B with ``--once``); per arm the mean of its runs and the
    first run's replies."""
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in pair}
    for arm in pair if args.once else (pair[0], pair[1], pair[1], pair[0]):
        print(f"== {arm} ==", flush=True)
        runs[arm].append(spawn(arm, args, model_path))
    merged = {}
    for arm, results in runs.items():
        merged[arm] = {key: statistics.mean(r[key] for r in results) for key in ("tokens_per_s", "p50_s", "p99_s")}
        merged[arm]["tokens"] = results[0]["tokens"]
        merged[arm]["texts"] = results[0]["texts"]
    return merged


def print_table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    header = f"{'arm':<14} {'clients':>7} {'tokens':>7} {'tokens/s':>9} {'p50 s':>7} {'p99 s':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for arm, r in results.items():
        print(f"{arm:<14} {args.clients:>7} {r['tokens']:>7} {r['tokens_per_s']:>9.1f} {r['p50_s']:>7.2f} "
              f"{r['p99_s']:>7.2f}")  # fmt: skip
    if "batched" in results and "one-at-a-time" in results:
        ratio = results["batched"]["tokens_per_s"] / results["one-at-a-time"]["tokens_per_s"]
        print(f"batched vs one-at-a-time: {ratio:.2f}x tokens/s")
    if "batched-int8" in results and "batched-fp32" in results:
        fp32, int8 = results["batched-fp32"], results["batched-int8"]
        same = sum(a == b for a, b in zip(fp32["texts"], int8["texts"], strict=True))
        print(f"int8 vs fp32: {int8['tokens_per_s'] / fp32['tokens_per_s']:.2f}x tokens/s; "
              f"{same} of {len(fp32['texts'])} greedy replies word for word the same")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        args.result.write_text(json.dumps(run_arm(args)))
        return
    from tunelab.models import resolve_model

    model_path = resolve_model(args.model)  # convert the built-in once, outside the timings
    print(f"model {args.model} ({model_path}), {args.clients} clients x max_tokens {args.max_tokens}, "
          f"{os.cpu_count()} CPUs", flush=True)  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    if args.compare in ("batching", "both"):
        results |= compare(("batched", "one-at-a-time"), args, model_path)
    if args.compare in ("int8", "both"):
        results |= compare(("batched-fp32", "batched-int8"), args, model_path)
    print_table(results, args)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
