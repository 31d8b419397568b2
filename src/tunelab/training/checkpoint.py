"""Checkpoints that resume exactly: weights, optimizer, scheduler, RNG, data position.

``checkpoints/checkpoint-<step>/`` holds a usable model (the adapter via
``save_pretrained``, or the full weights) plus ``training_state.pt`` and
``trainer_state.json``. A checkpoint is written to a temporary folder and renamed,
so a crash mid-save never leaves a half checkpoint that resume would pick.

``manifest.json`` (every file with its size and sha256) is written last, itself
atomically, before the rename. Resume verifies it: a checkpoint whose manifest
is missing or does not match its files (a truncated file, a disk that lied) is
skipped, moved aside to ``damaged-checkpoint-<step>`` and reported through
``on_skip``; the previous valid one is used.

Disk space is checked before a save (free bytes against the size of the newest
checkpoint, or an estimate from the parameters for the first one) and a full
disk during the write (ENOSPC, EDQUOT) is caught; both raise ``DiskFull`` (code
``disk_full``) after removing the partial ``.tmp-checkpoint-*`` folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tunelab.errors import DiskFull, NotFound, TunelabError
from tunelab.training.testhooks import hold

PREFIX = "checkpoint-"
MANIFEST = "manifest.json"
DAMAGED = "damaged-"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
MB = 1024 * 1024
#: How torch.save reports a full disk (a RuntimeError, without the OSError underneath).
_TORCH_FULL = ("No space left on device", "unexpected pos", "PytorchStreamWriter failed writing")


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> dict[str, Any]:
    """Record every file of ``folder`` (size, sha256) in manifest.json, atomically."""
    files = {
        p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in (MANIFEST, MANIFEST + ".tmp")
    }
    manifest = {"version": 1, "files": files, "bytes": sum(f["size"] for f in files.values())}
    tmp = folder / (MANIFEST + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest, indent=1))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(folder / MANIFEST)
    return manifest


def verify_checkpoint(path: Path) -> str | None:
    """None when the manifest matches every file; else what is wrong, in words."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except FileNotFoundError:
        return "it has no manifest.json (the save did not finish)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its manifest.json cannot be read ({type(exc).__name__})"
    for name, expected in files.items():
        file = path / name
        try:
            size = file.stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != expected.get("size"):
            return f"{name} has {size} bytes, the manifest says {expected.get('size')}"
        if _sha256(file) != expected.get("sha256"):
            return f"{name} does not match its sha256 in the manifest"
    return None


def _set_aside(path: Path) -> Path:
    """Move a damaged checkpoint out of resume's way (kept for a person to look at)."""
    target = path.with_name(DAMAGED + path.name)
    shutil.rmtree(target, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.rename(target)
    return target


def find_checkpoint(
    folder: Path, resume_from: str | None, on_skip: Callable[[Path, str], None] | None = None
) -> Path | None:
    """The checkpoint to resume from: named, the newest valid one, or None for a fresh start.

    With ``latest`` (or nothing named) damaged checkpoints are skipped newest
    first, each reported to ``on_skip(path, reason)`` and moved aside; a named
    checkpoint that is damaged is an error, since the caller asked for that one.
    """
    checkpoints = list_checkpoints(folder)
    if resume_from and resume_from != "latest":
        candidate = Path(resume_from)
        for path in (candidate, folder / resume_from, folder / f"{PREFIX}{resume_from}"):
            if (path / "trainer_state.json").exists():
                problem = verify_checkpoint(path)
                if problem:
                    raise TunelabError(f"Checkpoint {path.name} is damaged: {problem}.",
                                       hint="Resume from 'latest' or another checkpoint.",
                                       code="checkpoint_damaged")
                return path
        raise NotFound(
            f"Checkpoint {resume_from!r} not found in {folder}.",
            hint=f"Use 'latest' or one of: {', '.join(p.name for p in checkpoints) or 'none yet'}.",
        )
    for path in reversed(checkpoints):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        _set_aside(path)
        if on_skip is not None:
            on_skip(path, problem)
    return None


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def expected_checkpoint_bytes(folder: Path, model: Any) -> int:
    """What the next checkpoint will take: the newest one's size, else an estimate from the parameters.

    The estimate counts the trainable parameters four times (saved weights, the
    copy in training_state.pt, Adam's two moments) and, for full fine-tuning,
    the weights once more in their own dtype.
    """
    existing = list_checkpoints(folder)
    if existing:
        return folder_bytes(existing[-1])
    trainable = sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    return 4 * trainable + (0 if frozen else trainable) + 64 * 1024


def ensure_space(folder: Path, need: int, what: str) -> None:
    """Raise DiskFull unless ``need`` bytes (plus a 5% margin) are free where ``folder`` lives."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = int(need * 1.05)
    if free < need:
        raise DiskFull(
            f"Not enough disk space for {what}: it needs about {need / MB:.1f} MB and "
            f"{free / MB:.1f} MB are free at {probe}.",
            hint=f"free {max(1, (need - free) // MB + 1)} MB at {probe}, then resume the job",
            details={"path": str(probe), "needed_bytes": need, "free_bytes": free},
        )


@contextlib.contextmanager
def disk_full_guard(target: Path, what: str, partial: Path | None = None) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT while writing into DiskFull, after removing ``partial``."""
    try:
        yield
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and not (isinstance(cause, OSError) and cause.errno in _NO_SPACE):
            cause = cause.__cause__ or cause.__context__
        full = cause is not None or any(text in str(exc) for text in _TORCH_FULL)
        if not full:
            raise
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        probe = target if target.exists() else target.parent
        free = shutil.disk_usage(probe).free if probe.exists() else 0
        raise DiskFull(
            f"The disk filled up while writing {what} ({free / MB:.1f} MB free at {probe}).",
            hint=f"free space at {probe} (at least the size of one checkpoint), then resume the job",
            details={"path": str(probe), "free_bytes": free},
        ) from exc


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


def save_pretrained(model: Any, path: Path, weights: dict[str, Any] | None = None) -> None:
    """``model.save_pretrained(path)``, from ``weights`` when given (a sharded model's gathered tensors)."""
    if weights is None:
        model.save_pretrained(path)
    else:
        model.save_pretrained(path, state_dict=weights)


def save_checkpoint(
    folder: Path, step: int, model: Any, optimizer: Any, scheduler: Any,
    state: dict[str, Any], keep: int, *, weights: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint-<step> atomically (manifest last) and delete the oldest beyond ``keep``.

    Under FSDP the caller hands over the gathered ``weights`` and the
    ``optimizer_state`` as one process would hold it (``parallel.py``), so the
    checkpoint is the same files as a one-process run's. Raises DiskFull, with
    the partial folder removed, when the disk is too full before or during the write.
    """
    import torch

    final = folder / f"{PREFIX}{step}"
    tmp = folder / f".tmp-{PREFIX}{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    ensure_space(folder, expected_checkpoint_bytes(folder, model), final.name)
    with disk_full_guard(folder, final.name, partial=tmp):
        tmp.mkdir(parents=True)
        save_pretrained(model, tmp, weights)
        hold("checkpoint", step, folder.parent)
        torch.save(
            {
                "trainable": trainable_state(model),
                "optimizer": optimizer.state_dict() if optimizer_state is None else optimizer_state,
                "scheduler": scheduler.state_dict(),
                "rng": _rng_state(),
            },
            tmp / "training_state.pt",
        )
        (tmp / "trainer_state.json").write_text(json.dumps({**state, "global_step": step}, indent=2))
        write_manifest(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any,
                    restore: Callable[[Any, Any, dict[str, Any]], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Restore everything saved by ``save_checkpoint``; return the trainer state.

    ``restore(model, optimizer, blob)`` puts the weights and optimizer state in
    when they cannot be copied in place (FSDP's shards: ``fsdp.restore``).
    """
    import torch

    blob = torch.load(path / "training_state.pt", map_location="cpu", weights_only=False)
    if restore is not None:
        restore(model, optimizer, blob)
    else:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in blob["trainable"].items():
                params[name].copy_(value)
        optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    _set_rng_state(blob["rng"])
    return json.loads((path / "trainer_state.json").read_text())
