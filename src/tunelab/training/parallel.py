"""The training loop's view of several ranks: its share of each batch, the wrapped model, agreed stops.

The engine's plan of micro-batches (``batching.plan_epoch``) does not depend on
how many processes run: every rank plans the same epoch and takes every
``world_size``-th sequence of each micro-batch (a DistributedSampler over the
engine's batches, deterministic by seed and epoch). So a step is the same
sequences whatever the number of processes, the schedule and the checkpoint's
data position mean the same, and a run saved with 2 processes resumes with 1
or 4. A micro-batch with fewer sequences than ranks gives the ranks left
without one a copy of its first sequence at weight 0, so every rank runs the
same forward and backward passes (DDP and FSDP need that) and the gradient is
unchanged.

The loss of each rank is divided by the step's target count over all ranks
and multiplied by the world size, because DDP and FSDP average gradients: the
update equals the one-process update of the same step.

Under FSDP (``fsdp.py``) the parameters are shards: a checkpoint, the output
and evaluation run inside ``gathered`` (every rank takes part, rank 0 writes
and evaluates), gradient norms are gathered (``clip_grad_norm``, ``full``) and
a checkpoint is restored into the shards (``restore``). Under DDP and in one
process these are the plain operations.

Under DeepSpeed ZeRO-1/2 (``deepspeed_engine.py``) the engine owns the step:
``attach`` hands it the optimizer, ``backward`` and ``step`` go through it
(clipping included), and checkpoints gather its partitioned optimizer state
(``optimizer_state``) and restore into it (``restore``); the weights are whole
on every rank, as under DDP.

Only rank 0 reads the control file; its commands reach the other ranks
(``AgreedStop.poll``), and a stop (rank 0's pause, a signal to any rank) is
agreed with an all-reduce, so every rank stops after the same step.
"""

from __future__ import annotations

import contextlib
from typing import Any

from tunelab.training import distributed
from tunelab.training.config import TrainConfig
from tunelab.training.distributed import Rank
from tunelab.training.loss import loss_sum
from tunelab.training.stopping import Command, StopSignal


def shard(ids: list[int], rank: Rank) -> tuple[list[int], float]:
    """This rank's sequences of a micro-batch and their weight (0 for a stand-in when it has none)."""
    mine = ids[rank.rank :: rank.world_size]
    return (mine, 1.0) if mine else (ids[:1], 0.0)


class AgreedStop:
    """``StopSignal`` for every rank: rank 0's control-file commands, a stop when any rank asks for one."""

    def __init__(self, stop: StopSignal, rank: Rank) -> None:
        self.inner, self.rank = stop, rank

    @property
    def reason(self) -> str | None:
        return self.inner.reason

    def poll(self) -> list[Command]:
        commands = self.inner.poll() if self.rank.is_main else []
        return distributed.from_main(commands)

    def requested(self) -> bool:
        local = self.inner.requested()
        agreed = distributed.agree(local)
        if agreed and not local:
            self.inner.reason = "stop agreed across ranks"
        return agreed


class Parallel:
    """What the loop needs from torch.distributed: shares, the loss through the wrapper, sync points, sums."""

    def __init__(self, config: TrainConfig, rank: Rank, device: str) -> None:
        self.config, self.rank, self.device = config, rank, device
        self.strategy = config.distributed.strategy if rank.active else "none"
        self.wrapped: Any = None
        self.fast = False
        self._gathered = False  # inside ``gathered`` under FSDP: the parameters are whole tensors

    @classmethod
    def start(cls, config: TrainConfig, device: str) -> Parallel:
        """Join the process group when torchrun started this process."""
        rank = distributed.init_process_group(config.distributed, device)
        return cls(config, rank, device)

    @property
    def is_main(self) -> bool:
        return self.rank.is_main

    def wrap(self, model: Any, fast: bool) -> None:
        """Put the loss computation under DDP or FSDP (the loss is the module, so the fast path is kept)."""
        self.fast = fast
        if self.strategy == "none":
            return
        import torch

        class LossModule(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, batch: Any) -> Any:
                return loss_sum(self.inner, batch, fast)

        module = LossModule(model)
        if self.strategy == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.rank.local_rank] if self.device.startswith("cuda") else None
            self.wrapped = DistributedDataParallel(
                module, device_ids=ids, forward_sync_buffers=False
            )
        elif self.strategy == "fsdp":
            from tunelab.training import fsdp

            self.wrapped = fsdp.shard(
                module, model, self.config.distributed, self.device, self.rank.world_size
            )
        elif self.strategy == "deepspeed":
            self._module = module  # DeepSpeed wraps it once it has the optimizer (``attach``)
        else:
            from tunelab.errors import PreflightFailed

            raise PreflightFailed(
                f"`distributed.strategy: {self.strategy}` is not run by this engine yet.",
                hint="Use `distributed.strategy: ddp` or `fsdp`.",
            )

    def attach(self, optimizer: Any) -> None:
        """DeepSpeed: initialise the engine around the loss module with the loop's optimizer."""
        if self.strategy == "deepspeed":
            from tunelab.training.deepspeed_engine import ZeroEngine

            self.wrapped = ZeroEngine(self._module, optimizer, self.config)

    @property
    def engine_steps(self) -> bool:
        """DeepSpeed owns backward, clipping and the update."""
        return self.strategy == "deepspeed" and self.wrapped is not None

    def share(self, ids: list[int]) -> tuple[list[int], float]:
        return shard(ids, self.rank) if self.rank.active else (ids, 1.0)

    def loss(self, model: Any, batch: Any) -> Any:
        """Summed token loss of this rank's batch (through the wrapper, so its hooks run)."""
        if self.wrapped is None:
            return loss_sum(model, batch, self.fast)
        return self.wrapped(batch)

    def sync(self, last: bool) -> Any:
        """Gradients are reduced on the step's last micro-batch only."""
        if self.engine_steps:
            self.wrapped.boundary(last)  # DeepSpeed reduces and steps at the marked micro-batch
            return contextlib.nullcontext()
        if self.wrapped is None or last:
            return contextlib.nullcontext()
        if self.strategy == "fsdp":
            from tunelab.training import fsdp

            return fsdp.no_sync(self.wrapped)
        return self.wrapped.no_sync()

    @property
    def scale(self) -> float:
        """DDP and FSDP average gradients over ranks; the loss is multiplied back so the update is the step's sum."""
        return float(self.rank.world_size) if self.wrapped is not None else 1.0

    @property
    def sharded(self) -> bool:
        """FSDP holds shards: saves, evaluation and norms go through the gathering helpers below."""
        return self.strategy == "fsdp" and self.wrapped is not None

    def backward(self, loss: Any) -> None:
        """The micro-batch's backward (through DeepSpeed's engine under DeepSpeed)."""
        if self.engine_steps:
            self.wrapped.backward(loss)
        else:
            loss.backward()

    def step(self, optimizer: Any, params: list[Any], limit: float) -> float:
        """Clip to ``limit`` and update; the gradient norm before clipping (DeepSpeed does both in its step)."""
        if self.engine_steps:
            return self.wrapped.step()
        grad_norm = self.clip_grad_norm(params, limit)
        optimizer.step()
        return grad_norm

    def clip_grad_norm(self, params: list[Any], limit: float) -> float:
        """Clip the step's gradients to ``limit``; the norm over all of them (every rank's shards under FSDP)."""
        import torch

        return float(self.full(torch.nn.utils.clip_grad_norm_(params, limit)))

    def full(self, value: Any) -> Any:
        """A value computed from shards (a norm) as the whole; unchanged outside FSDP."""
        if not self.sharded:
            return value
        from tunelab.training import fsdp

        return fsdp.full(value)

    def gathered(self, when: bool = True) -> Any:
        """Under FSDP, the whole model on every rank for the block (every rank must enter it); else nothing.

        ``when`` is the same on every rank (the original config's, not a rank's
        own view of it), so the ranks' gathers pair up.
        """
        if not (self.sharded and when):
            return contextlib.nullcontext()
        return self._gathering()

    @contextlib.contextmanager
    def _gathering(self) -> Any:
        from tunelab.training import fsdp

        with fsdp.gathered(self.wrapped):
            self._gathered = True
            try:
                yield
            finally:
                self._gathered = False

    def pretrained_state(self, model: Any) -> dict[str, Any] | None:
        """The tensors ``save_pretrained`` must be handed inside ``gathered`` (its own state_dict would be shards)."""
        if not self._gathered:
            return None
        return {name: param.detach() for name, param in model.named_parameters()}

    def optimizer_state(self, optimizer: Any) -> dict[str, Any] | None:
        """Under FSDP or DeepSpeed the optimizer state as one process holds it, on rank 0 (every rank takes part)."""
        if self.engine_steps:
            return self.wrapped.full_optimizer_state(keep=self.is_main)
        if not self.sharded:
            return None
        from tunelab.training import fsdp

        return fsdp.full_optimizer_state(optimizer, keep=self.is_main)

    @property
    def restore(self) -> Any:
        """How ``load_checkpoint`` puts a consolidated checkpoint into this run's parameters (None: in place)."""
        if self.engine_steps:
            return self.wrapped.restore
        if not self.sharded:
            return None
        from tunelab.training import fsdp

        return fsdp.restore

    def total(self, values: list[float]) -> list[float]:
        return distributed.all_sum(values) if self.rank.active else values

    def peak(self, peak: Any) -> Any:
        """The peak FLOP/s the step's FLOPs (summed over ranks) are measured against: one GPU per rank.

        CPU ranks share the one CPU whose peak was looked up, so it stays as it is.
        """
        if peak is None or not self.rank.active or not self.device.startswith("cuda"):
            return peak
        import dataclasses

        return dataclasses.replace(peak, flops=peak.flops * self.rank.world_size)

    def agreed_stop(self, stop: StopSignal) -> StopSignal | AgreedStop:
        return AgreedStop(stop, self.rank) if self.rank.active else stop


def without_evaluation(config: TrainConfig) -> TrainConfig:
    """The config a rank other than 0 trains with: no base or final evaluation (rank 0 measures)."""
    output = config.output.model_copy(update={"evaluate": False})
    return config.model_copy(update={"output": output})
