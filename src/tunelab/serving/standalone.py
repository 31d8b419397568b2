"""What ``tunelab serve-model`` serves: one model folder or run, its adapters, and the same for vLLM.

The standalone server answers to the names its command line gave, never to the
studio's collection: ``OUTPUT_DIR`` (a run directory, its ``output/``, an
adapter or a model folder) and every ``--adapter NAME=PATH``. A tuned run's
adapter is served as the run's name beside its base (``base``), so the base
and every fine-tune answer from one process and one batch.

On a GPU machine the same table becomes a vLLM command line
(``vllm_command``): the base with ``--enable-lora`` and one
``--lora-modules NAME=PATH`` per adapter, the largest LoRA rank and the
adapter count set so vLLM accepts them.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from tunelab.errors import InvalidInput, NotFound
from tunelab.models.loading import ModelParts, locate
from tunelab.serving.registry import ServedModels

BASE_NAME = "base"


def parse_adapters(specs: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` options as a table; every malformed, duplicate or missing one is reported at once."""
    table: dict[str, Path] = {}
    problems = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        name = name.strip()
        if not sep or not name or not path:
            problems.append(f"{spec!r} is not NAME=PATH")
        elif name in table or name == BASE_NAME:
            problems.append(f"the name {name!r} is given twice (or is the base's name)")
        elif not (Path(path).expanduser() / "adapter_config.json").is_file():
            problems.append(f"{path} is not a PEFT adapter folder (no adapter_config.json)")
        else:
            table[name] = Path(path).expanduser().resolve()
    if problems:
        raise InvalidInput("--adapter: " + "; ".join(problems),
                           "give each adapter as --adapter NAME=PATH to a folder holding adapter_config.json")  # fmt: skip
    return table


def _run_name(folder: Path) -> str:
    """A run directory's or output folder's name: the job id for ``RUN_DIR/output``."""
    folder = folder.resolve()
    return folder.parent.name if folder.name == "output" else folder.name


def served_models(output_dir: str | Path, adapters: dict[str, Path], name: str | None = None) -> ServedModels:
    """The names to serve: the base (``base``), ``OUTPUT_DIR``'s tuned model if it is one, every adapter."""
    folder = Path(output_dir).expanduser()
    if not folder.exists():
        raise NotFound(f"{folder} does not exist", "give a run directory, its output/ folder, an adapter or a model folder")
    parts = locate(str(folder), progress=True)
    table = {key: str(path) for key, path in adapters.items()}
    if parts.adapter is None:  # a full model: that is the base
        return ServedModels(name or BASE_NAME, str(parts.base), table)
    tuned = name or _run_name(parts.adapter)
    if tuned in table:
        raise InvalidInput(f"the name {tuned!r} is given twice", "rename the --adapter or pass --name")
    return ServedModels(BASE_NAME, str(parts.base), {tuned: str(folder.resolve()), **table})


def base_parts(served: ServedModels) -> ModelParts:
    return locate(served.table[served.base_name], progress=False)


def _rank(adapter: Path) -> int:
    config = json.loads((adapter / "adapter_config.json").read_text())
    ranks = [int(config.get("r") or 8)] + [int(r) for r in (config.get("rank_pattern") or {}).values()]
    return max(ranks)


#: vLLM's accepted ``--max-lora-rank`` values (it refuses others).
VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def vllm_command(served: ServedModels, *, host: str = "127.0.0.1", port: int = 8000) -> list[str]:
    """``vllm serve BASE --enable-lora --lora-modules NAME=PATH ...`` for the same table, as argv.

    The base's name stays ``base`` (``--served-model-name``) so clients use the
    same names with either server.
    """
    base = served.table[served.base_name]
    adapters = {}
    for key, location in served.table.items():
        if key != served.base_name:  # a run directory is no adapter folder to vLLM: name its output/
            adapter = locate(location, progress=False).adapter
            if adapter is None or not (adapter / "adapter_config.json").is_file():
                raise InvalidInput(f"{location} is not a PEFT adapter", "vLLM serves LoRA adapters only; "
                                   "serve a merged model folder as the base instead")  # fmt: skip
            adapters[key] = adapter.resolve()
    argv = ["vllm", "serve", base, "--served-model-name", served.base_name, "--host", host, "--port", str(port)]
    if adapters:
        rank = max(_rank(path) for path in adapters.values())
        argv += ["--enable-lora", "--max-loras", str(len(adapters)),
                 "--max-lora-rank", str(next((r for r in VLLM_RANKS if r >= rank), rank)), "--lora-modules"]  # fmt: skip
        argv += [f"{key}={path}" for key, path in adapters.items()]
    return argv


def shell_line(argv: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in argv)
