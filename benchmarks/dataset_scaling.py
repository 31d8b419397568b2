"""Does dataset inspection stream? Time and peak memory on 10 MB, 100 MB and 1 GB JSONL.

Generates OpenAI-style chat JSONL files of the chosen sizes in a temporary
folder (unique rows of varied length, deterministic), then inspects each one
in a fresh Python process, which reports its own wall time and peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) and CPU time (which, unlike wall
time, does not depend on what else the machine is running). Streaming means peak memory stays
within 2x while the file grows 100x and time grows about linearly.

    python benchmarks/dataset_scaling.py                 # 10MB,100MB,1GB
    python benchmarks/dataset_scaling.py --sizes 10MB,100MB --keep --dir /data/bench
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

UNITS = {"KB": 1000, "MB": 1000**2, "GB": 1000**3}
_WORDS = [
    "model", "data", "train", "token", "learn", "layer", "weight", "loss", "batch", "rate",
    "step", "value", "graph", "text", "answer", "question", "reason", "result", "method",
    "network", "signal", "memory", "vector", "matrix", "sample", "output", "input", "system",
    "user", "assistant", "prompt", "context", "window", "length", "update", "gradient",
]  # fmt: skip

_CHILD = """
import json, resource, sys, time
from tunelab.datasets import inspect_file
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
start, cpu_start = time.perf_counter(), cpu()
report = inspect_file(sys.argv[1], max_bytes=1 << 40, preview_rows=5, max_length=2048)
seconds, cpu_seconds = time.perf_counter() - start, cpu() - cpu_start
usage = resource.getrusage(resource.RUSAGE_SELF)
q = report.quality
print(json.dumps({"rows": q.rows if q else 0, "seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024,
                  "cpu_seconds": cpu_seconds,
                  "errors": report.errors, "duplicates": q.duplicates if q else None,
                  "tokens_p95": q.tokens.p95 if q else None}))
"""


def parse_size(text: str) -> int:
    text = text.strip().upper()
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(6, 18))
    return " ".join(words).capitalize() + "."


def generate(path: Path, size: int, seed: int = 0) -> int:
    """Write chat rows until the file reaches ``size`` bytes; return the row count."""
    rng = random.Random(seed)
    pool = [_sentence(rng) for _ in range(5000)]
    rows = written = 0
    with path.open("wb") as out:
        while written < size:
            answer = " ".join(rng.choices(pool, k=rng.randint(2, 14)))
            row = {"messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": f"Question {rows}: {rng.choice(pool)}"},
                {"role": "assistant", "content": answer},
            ]}  # fmt: skip
            line = orjson.dumps(row) + b"\n"
            out.write(line)
            written += len(line)
            rows += 1
    return rows


def inspect_in_child(path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict[str, float]]) -> str:
    base = results[0]
    lines = [
        "| file size | rows | seconds | CPU s | MB/s | peak RSS MB | size x | time x | CPU x | RSS x |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        mb = r["bytes"] / 1e6
        lines.append(
            f"| {r['label']} | {int(r['rows']):,} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} "
            f"| {mb / r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['bytes'] / base['bytes']:.0f} "
            f"| {r['seconds'] / base['seconds']:.1f} | {r['cpu_seconds'] / base['cpu_seconds']:.1f} "
            f"| {r['peak_rss_mb'] / base['peak_rss_mb']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10MB,100MB,1GB", help="comma-separated sizes")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the files")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    sizes = [(label.strip(), parse_size(label)) for label in args.sizes.split(",")]
    folder = args.dir or Path(tempfile.mkdtemp(prefix="tunelab-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for label, size in sizes:
            path = folder / f"chat_{label}.jsonl"
            rows = generate(path, size)
            result = inspect_in_child(path)
            result.update(label=label, bytes=path.stat().st_size, generated_rows=rows)
            results.append(result)
            print(f"{label}: {json.dumps(result)}", flush=True)
            if not args.keep:
                path.unlink()
    finally:
        if not args.keep and args.dir is None:
            for leftover in folder.glob("*.jsonl"):
                leftover.unlink()
            folder.rmdir()
    print()
    print(table(results))


if __name__ == "__main__":
    main()
