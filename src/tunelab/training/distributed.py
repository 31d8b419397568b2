"""Several processes training one model: the launch command, the engines' configs and the rank context.

tunelab does not launch processes or shard models itself: ``torchrun``
(``torch.distributed.run``) starts ``nproc_per_node`` copies of the engine
(``python -m tunelab.training RUN_DIR``) on each node, and DDP, FSDP or
DeepSpeed do the sharding (``parallel.py`` wraps the model for the loop). This
module turns a config's ``distributed`` block into:

* the torchrun command (``torchrun_command``; ``launch.py`` runs it for the CLI
  and the worker, ``tunelab train --print-command`` prints it);
* the DeepSpeed config (``deepspeed_config``) and the FSDP settings
  (``fsdp_settings``) that block asks for;
* the process-group context every rank runs in: rank, world size, ``is_main``
  (rank 0 alone writes metrics, events, checkpoints and the output:
  ``rank_files``), the stop flag agreed across ranks (``agree``) and sums over
  ranks (``all_sum``).

Outside torchrun (no ``WORLD_SIZE`` in the environment) every helper is the
one-process identity, so a single-process run pays nothing.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from tunelab.training.config import DistributedSettings
from tunelab.training.rundir import Reporter, RunFiles

#: The engine every rank runs (the worker's entry point; it reads RUN_DIR/config.json).
ENGINE_MODULE = "tunelab.training"
#: How long a rank waits in a collective for the others (a slow checkpoint save on rank 0 included).
COLLECTIVE_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Rank:
    """Where this process stands among the ranks torchrun started."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run directory."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one process: collectives are needed."""
        return self.world_size > 1


def current_rank() -> Rank:
    """This process's rank from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)."""
    env = os.environ
    return Rank(
        int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0"))
    )


def is_main() -> bool:
    return current_rank().is_main


def backend_for(settings: DistributedSettings, device: str) -> str:
    """``backend: auto`` is nccl on CUDA and gloo elsewhere."""
    if settings.backend != "auto":
        return settings.backend
    return "nccl" if device.startswith("cuda") else "gloo"


def init_process_group(settings: DistributedSettings, device: str) -> Rank:
    """Join the ranks torchrun started (once per process); a single process joins nothing."""
    rank = current_rank()
    if not rank.active:
        return rank
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(rank.local_rank)  # "cuda" means this rank's GPU from here on
    if not dist.is_initialized():
        import atexit

        dist.init_process_group(backend_for(settings, device), timeout=COLLECTIVE_TIMEOUT)
        atexit.register(teardown_process_group)  # the engine's process ends with the run
    return rank


def teardown_process_group() -> None:
    """Leave the process group (safe to call twice or without one)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _joined() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_sum(values: list[float]) -> list[float]:
    """Each value summed over the ranks (one collective for the whole list)."""
    if not _joined():
        return list(values)
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return [float(v) for v in tensor.tolist()]


def agree(flag: bool) -> bool:
    """True on every rank when it is True on any rank (a stop one rank saw stops them all at the same step)."""
    if not _joined():
        return flag
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([1 if flag else 0], dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (pickled; for the few control-file commands of a step)."""
    if not _joined():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _joined():
        import torch.distributed as dist

        dist.barrier()


class QuietRunFiles(RunFiles):
    """The run directory as a rank other than 0 sees it: same folders, nothing written to the shared files.

    Metrics, events, heartbeat and the resolved config come from rank 0 alone;
    this rank's log lines go to ``train-rank<N>.log`` so a failure on it can
    still be read.
    """

    def __init__(self, run_dir: Path, rank: int) -> None:
        super().__init__(run_dir, None)
        self.log = self.log.getChild(f"rank{rank}")
        self.log.propagate = False
        if not self.log.handlers:
            import logging

            handler = logging.FileHandler(self.dir / f"train-rank{rank}.log", encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            self.log.addHandler(handler)

    def close(self) -> None:
        super().close()
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)

    def write_config(self, data: dict[str, Any]) -> None:
        return None

    def event(self, type_: str, message: str, data: dict[str, Any] | None = None) -> None:
        if type_ in ("failed", "warning"):
            self.log.warning("[%s] %s", type_, message)

    def metrics(self, values: dict[str, Any]) -> None:
        return None

    def truncate_metrics(self, after_step: int) -> int:
        return 0

    def heartbeat(self, step: int, phase: str, stop_after: int | None) -> None:
        return None

    def clear_control(self) -> None:
        return None


def rank_files(run_dir: Path, reporter: Reporter | None = None) -> RunFiles:
    """The run-directory writer for this process: the real one on rank 0 (or alone), a quiet one elsewhere."""
    rank = current_rank()
    if rank.is_main:
        return RunFiles(run_dir, reporter)
    return QuietRunFiles(run_dir, rank.rank)


# ------------------------------------------------------------------ launching


def torchrun_args(settings: DistributedSettings) -> list[str]:
    """torchrun's options for the block: one node on a free port, or a static multi-node rendezvous."""
    args = [f"--nproc-per-node={settings.nproc_per_node}", f"--nnodes={settings.nnodes}"]
    if settings.nnodes == 1 and not settings.master_port:
        return [*args, "--standalone"]  # c10d rendezvous on a free local port: runs never collide
    return [*args, f"--node-rank={settings.node_rank}", f"--master-addr={settings.master_addr}",
            f"--master-port={settings.master_port or 29500}"]  # fmt: skip


def torchrun_command(
    settings: DistributedSettings, run_dir: Path, python: str | None = None
) -> list[str]:
    """The command that runs the engine in ``run_dir`` on this node's ranks."""
    launcher = [python or sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, *torchrun_args(settings), "-m", ENGINE_MODULE, str(run_dir)]


def printable_command(settings: DistributedSettings, run_dir: Path) -> str:
    """``torchrun ...`` as a person types it (``tunelab train --print-command``)."""
    args = ["torchrun", *torchrun_args(settings), "-m", ENGINE_MODULE, str(run_dir)]
    return " ".join(shlex.quote(a) for a in args)


def engine_command(run_dir: Path, python: str | None = None) -> list[str]:
    """How the worker starts the engine for ``run_dir``: directly, or through ``launch.py`` when distributed.

    Reads the ``distributed`` block of RUN_DIR/config.json; a config it cannot read
    runs the plain engine, which reports the problem in the run directory.
    """
    import json

    python = python or sys.executable
    try:
        block = json.loads((Path(run_dir) / "config.json").read_text()).get("distributed") or {}
        settings = DistributedSettings.model_validate(block)
    except (OSError, ValueError):
        settings = DistributedSettings()
    if not settings.enabled:
        return [python, "-m", ENGINE_MODULE, str(run_dir)]
    return [python, "-m", "tunelab.training.launch", str(run_dir)]


# ------------------------------------------------------------- engine configs


def deepspeed_config(settings: DistributedSettings, *, micro_batch: int, accumulation: int,
                     max_grad_norm: float, precision: str) -> dict[str, Any]:  # fmt: skip
    """The DeepSpeed JSON config for the block (ZeRO stage, CPU offload) and the run's batch shape.

    The optimizer and schedule stay the engine's own (handed to
    ``deepspeed.initialize``), so they are not named here; ``train_batch_size``
    is left for DeepSpeed to derive (micro batch x accumulation x its world size).
    """
    zero: dict[str, Any] = {
        "stage": settings.zero_stage,
        "overlap_comm": False,
        "contiguous_gradients": True,
    }
    if settings.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
    if settings.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": False}
    if settings.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16"},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 1_000_000_000,
        "wall_clock_breakdown": False,
    }


#: ``fsdp_sharding`` -> how FSDP2 (``fully_shard``) keeps a unit's parameters: the ZeRO stage it matches.
FSDP_SHARDING = {
    "full_shard": {"reshard_after_forward": True, "replicate": False},  # ZeRO-3: gathered per forward/backward
    "shard_grad_op": {"reshard_after_forward": False, "replicate": False},  # ZeRO-2: kept from forward to backward
    "no_shard": {"reshard_after_forward": False, "replicate": True},  # a full copy per rank (like DDP)
}


def fsdp_settings(settings: DistributedSettings) -> dict[str, Any]:
    """How ``training/fsdp.py`` calls ``fully_shard`` for the block: re-sharding after forward, the mesh.

    ``no_shard`` is a two-dimensional mesh (ranks x shards of one): every rank
    holds the whole model and gradients are all-reduced, as under DDP.
    """
    return dict(FSDP_SHARDING[settings.fsdp_sharding])
