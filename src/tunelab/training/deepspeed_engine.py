"""DeepSpeed ZeRO-1/2 for the engine's loop: the loss module under ``deepspeed.initialize``, consolidated saves.

``parallel.py`` calls this module for ``distributed.strategy: deepspeed``. The
loop stays the engine's own: DeepSpeed gets the loss module (``parallel.LossModule``,
so the fast loss path is kept), the engine's AdamW or SGD as a client optimizer
(``zero_allow_untested_optimizer``) and the config of
``distributed.deepspeed_config``; the engine's schedule keeps driving the
learning rate through the optimizer's param groups, which ZeRO shares.

**Precision.** The engine already keeps trainable weights in fp32 (adapters, or
full fine-tuning's master weights) and computes under its own autocast; DeepSpeed
is told fp32 so it neither casts the module nor keeps a second set of master
weights in a different dtype.

**Steps.** Each micro-batch runs ``engine.backward`` (without DeepSpeed's own
division by the accumulation count: the loop already divides by the step's
target count over all ranks, and multiplies by the world size because ZeRO
averages gradients like DDP); the step's last micro-batch is marked as the
accumulation boundary (``set_gradient_accumulation_boundary``), so a short last
group of an epoch steps too. ``engine.step`` reduces, clips to
``gradient_clipping`` (the config's ``max_grad_norm``) and updates; the norm it
clipped is the step's ``grad_norm``.

**Checkpoints are consolidated.** ZeRO-1/2 keep the whole model on every rank,
so rank 0 saves the adapter or weights as one process does; the optimizer state
(ZeRO's flat fp32 partitions) is gathered per parameter with DeepSpeed's
tensor-fragment helpers (``safe_get_full_optimizer_state``) into the layout of a
one-process ``optimizer.state_dict()``. A run saved under DeepSpeed therefore
resumes with any process count, under DDP, FSDP or alone, and back (``restore``
writes a consolidated state into the partitions). ZeRO-3 (parameters sharded)
is refused by preflight: it needs DeepSpeed's own parameter gathering for every
forward outside the engine (evaluation, generation, saving).
"""

from __future__ import annotations

from typing import Any

from tunelab.training.config import TrainConfig
from tunelab.training.distributed import deepspeed_config

#: Client optimizers whose state ZeRO keeps as flat tensors shaped like the partition (see ``preflight``).
SUPPORTED_OPTIMIZERS = ("adamw", "sgd")
#: ZeRO stages the loop runs: the parameters stay whole on every rank.
SUPPORTED_STAGES = (1, 2)


def config_for(config: TrainConfig) -> dict[str, Any]:
    """The DeepSpeed config of a run: its ZeRO block and batch shape, fp32 (the engine's autocast computes)."""
    return deepspeed_config(
        config.distributed,
        micro_batch=config.batch_size,
        accumulation=config.gradient_accumulation_steps,
        max_grad_norm=float(config.max_grad_norm or 0.0),
        precision="fp32",
    )


class ZeroEngine:
    """A DeepSpeed engine around the loss module, and the parameter order a one-process optimizer has."""

    def __init__(self, root: Any, optimizer: Any, config: TrainConfig) -> None:
        import deepspeed

        # the one-process optimizer's parameter indices (ZeRO replaces each group's list by its partition)
        self.groups = [list(group["params"]) for group in optimizer.param_groups]
        self.order = [param for group in self.groups for param in group]
        self.index = {id(param): i for i, param in enumerate(self.order)}  # by identity (``==`` compares values)
        self.optimizer = optimizer
        self.engine, *_ = deepspeed.initialize(
            model=root, optimizer=optimizer, config=config_for(config), dist_init_required=False
        )

    def __call__(self, batch: Any) -> Any:
        return self.engine(batch)

    def boundary(self, last: bool) -> None:
        """Mark the step's last micro-batch: DeepSpeed reduces and steps there (a short group steps too)."""
        self.engine.set_gradient_accumulation_boundary(last)

    def backward(self, loss: Any) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)  # the loop's loss is already the step's share

    def step(self) -> float:
        """Reduce, clip (``gradient_clipping``) and update; the gradient norm before clipping."""
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def _flat(self) -> list[Any]:
        return list(self.engine.optimizer.single_partition_of_fp32_groups)

    def full_optimizer_state(self, keep: bool) -> dict[str, Any] | None:
        """The optimizer state as one process holds it (every rank takes part; ``keep``: rank 0 keeps it)."""
        from deepspeed.utils import safe_get_full_optimizer_state

        inner = self.engine.optimizer.optimizer  # the client optimizer over ZeRO's flat partitions
        state: dict[int, dict[str, Any]] = {}
        for g, flat in enumerate(self._flat()):
            saved = inner.state.get(flat, {})
            tensors = sorted(k for k, v in saved.items() if getattr(v, "shape", None) == flat.shape)
            for param in self.groups[g]:
                index = self.index[id(param)]
                values: dict[str, Any] = {k: v.detach().clone().cpu() for k, v in saved.items()
                                          if k not in tensors}  # fmt: skip
                for key in tensors:  # the same keys in the same order on every rank: the all-reduces pair up
                    values[key] = safe_get_full_optimizer_state(param, key).detach().cpu()
                if keep and saved:
                    state[index] = values
        if not keep:
            return None
        groups, start = [], 0
        for g, group in enumerate(inner.param_groups):
            hyper = {k: v for k, v in group.items() if k != "params"}
            groups.append({**hyper, "params": list(range(start, start + len(self.groups[g])))})
            start += len(self.groups[g])
        return {"state": state, "param_groups": groups}

    def restore(self, model: Any, optimizer: Any, blob: dict[str, Any]) -> None:
        """Load a consolidated checkpoint into the model, ZeRO's fp32 partitions and their optimizer state."""
        import torch
        from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in blob["trainable"].items():
                params[name].copy_(value)
                safe_set_full_fp32_param(params[name], params[name].detach().float())
        saved = blob["optimizer"]
        for hyper, group in zip(saved["param_groups"], optimizer.param_groups, strict=True):
            group.update({k: v for k, v in hyper.items() if k != "params"})
        if not saved["state"]:
            return  # saved before the first step: nothing to restore
        zero = self.engine.optimizer
        inner = zero.optimizer
        for g, flat in enumerate(self._flat()):
            first = saved["state"][self.index[id(self.groups[g][0])]]
            inner.state[flat] = {k: (torch.zeros_like(flat) if getattr(v, "dim", lambda: 0)() else v.clone()
                                     if hasattr(v, "clone") else v) for k, v in first.items()}  # fmt: skip
        zero._hp_optimizer_states_linked = False
        zero._lazy_init_hp_params_optimizer_state()  # the parameters' views into the new state
        for index, param in enumerate(self.order):
            for key, value in saved["state"][index].items():
                if getattr(value, "dim", lambda: 0)():
                    safe_set_full_optimizer_state(param, value.to(param.device).float(), key)
