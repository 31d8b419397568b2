"""Checkpoints that resume exactly: weights, optimizer, scheduler, RNG, data position.

``checkpoints/checkpoint-<step>/`` holds a usable model (the adapter via
``save_pretrained``, or the full weights) plus ``training_state.pt`` and
``trainer_state.json``. A checkpoint is written to a temporary folder and renamed,
so a crash mid-save never leaves a half checkpoint that resume would pick.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from tunelab.errors import NotFound

PREFIX = "checkpoint-"


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    found = [
        p for p in folder.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()
        and (p / "trainer_state.json").exists()
    ]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def find_checkpoint(folder: Path, resume_from: str | None) -> Path | None:
    """The checkpoint to resume from: named, latest, or None for a fresh start."""
    checkpoints = list_checkpoints(folder)
    if resume_from and resume_from != "latest":
        candidate = Path(resume_from)
        for path in (candidate, folder / resume_from, folder / f"{PREFIX}{resume_from}"):
            if (path / "trainer_state.json").exists():
                return path
        raise NotFound(
            f"Checkpoint {resume_from!r} not found in {folder}.",
            hint=f"Use 'latest' or one of: {', '.join(p.name for p in checkpoints) or 'none yet'}.",
        )
    return checkpoints[-1] if checkpoints else None


def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    folder: Path, step: int, model: Any, optimizer: Any, scheduler: Any,
    state: dict[str, Any], keep: int,
) -> Path:
    """Write checkpoint-<step> atomically and delete the oldest beyond ``keep``."""
    import torch

    final = folder / f"{PREFIX}{step}"
    tmp = folder / f".tmp-{PREFIX}{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    torch.save(
        {
            "trainable": trainable_state(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(),
        },
        tmp / "training_state.pt",
    )
    (tmp / "trainer_state.json").write_text(json.dumps({**state, "global_step": step}, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Restore everything saved by ``save_checkpoint``; return the trainer state."""
    import torch

    blob = torch.load(path / "training_state.pt", map_location="cpu", weights_only=False)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in blob["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    _set_rng_state(blob["rng"])
    return json.loads((path / "trainer_state.json").read_text())
