"""FSDP for the engine's loop: torch's ``fully_shard`` (FSDP2) per decoder layer, saves gathered to rank 0.

``parallel.py`` calls this module for ``distributed.strategy: fsdp``. It uses
FSDP2 (``torch.distributed.fsdp.fully_shard``), which runs on the CPU over gloo
as well as on CUDA over nccl, rather than the older ``FullyShardedDataParallel``:
its parameters stay ``DTensor`` shards under their own names, so the optimizer,
the checkpoint and the adapter keep the names of the one-process model, and a
frozen base in bf16 may sit beside fp32 adapters in one unit (FSDP2 asks for one
dtype among the *trainable* parameters of a unit only).

**Units.** Every decoder layer (the classes the model lists in
``_no_split_modules``) is one unit; the loss module the loop calls
(``parallel.LossModule``) is the root unit and holds the rest (embeddings,
final norm, head), so the loss's head chunks (``loss.head_loss``, which reads
the head's weight directly) see it gathered during the root's forward.
``fsdp_sharding`` picks how long the gathered parameters live
(``distributed.fsdp_settings``).

**Gradients.** FSDP2 averages the reduce-scattered gradients over the ranks
like DDP, so the loop's loss scale (``Parallel.scale``) is the same; micro-batches
other than a step's last skip the reduction (``set_requires_gradient_sync``).

**Gathered moments** (``gathered``): a checkpoint, the output and every
evaluation need the whole model. All ranks all-gather every unit and keep them
gathered (no re-sharding after a forward) until the block ends, so rank 0 can
evaluate and generate alone, without a collective, while the others wait, and
the model's parameters are plain full tensors for that time (the memory DDP
holds all the time). A checkpoint is therefore **consolidated**: the same files
as a one-process run (the adapter or full weights, ``training_state.pt`` with
the optimizer state gathered by ``full_optimizer_state``), written by rank 0.
It resumes under FSDP with any number of processes, under DDP, or in one
process, and the adapter loads with plain peft. The cost: rank 0 holds the
gathered optimizer state while it writes (sharded checkpoints through
``torch.distributed.checkpoint`` would avoid that, and would tie a resume to a
consolidation step).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tunelab.training.config import DistributedSettings
from tunelab.training.distributed import fsdp_settings


def layer_classes(model: Any) -> set[str]:
    """The model's own unit of sharding: the decoder-layer classes transformers never splits."""
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(getattr(hf, "_no_split_modules", None) or [])


def shard(
    root: Any, model: Any, settings: DistributedSettings, device: str, world_size: int
) -> Any:
    """``fully_shard`` every decoder layer of ``model``, then ``root`` (the loss module around it).

    Returns ``root`` (now an ``FSDPModule``), initialised as the root unit, so a
    layer called directly (evaluation, generation) never claims to be the root.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    options = fsdp_settings(settings)
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    if options["replicate"]:  # no_shard: every rank a full copy (HSDP with shards of one)
        mesh = init_device_mesh(device_type, (world_size, 1), mesh_dim_names=("replicate", "shard"))
    else:
        mesh = init_device_mesh(device_type, (world_size,))
    names = layer_classes(model)
    layers = [m for m in model.modules() if type(m).__name__ in names]
    for layer in layers:
        fully_shard(layer, mesh=mesh, reshard_after_forward=options["reshard_after_forward"])
    fully_shard(root, mesh=mesh)
    # FSDP settles which unit is the root at its first forward; the base evaluation calls the
    # model before the loss module ever runs, so settle it now (no collective involved).
    root._get_fsdp_state()._lazy_init()
    root.tunelab_layers = layers  # the units whose re-sharding ``gathered`` turns off and back on
    root.tunelab_reshard = options["reshard_after_forward"]
    return root


@contextlib.contextmanager
def no_sync(root: Any) -> Iterator[None]:
    """A micro-batch whose gradients stay local (accumulated, reduced with the step's last one)."""
    root.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        root.set_requires_gradient_sync(True)


def units(root: Any) -> list[Any]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in root.modules() if isinstance(m, FSDPModule)]


@contextlib.contextmanager
def gathered(root: Any) -> Iterator[None]:
    """Every unit all-gathered on every rank for the block; sharded again after it (a collective: all ranks)."""
    for unit in units(root):
        unit.unshard()
    # forwards inside the block gather nothing, so rank 0 runs alone
    root.set_reshard_after_forward(False)
    # transformers' generate keeps the ranks of an FSDP-managed model in step (``synced_gpus``), one
    # collective per token; inside the block every rank holds the whole model, so rank 0 generates alone
    managed = [m for m in root.modules() if getattr(m, "_is_fsdp_managed_module", False)]
    for module in managed:
        module._is_fsdp_managed_module = False
    try:
        yield
    finally:
        for module in managed:
            module._is_fsdp_managed_module = True
        # re-shards every unit and forgets the block's forwards (the backward prefetch order)
        root.reset_iter_state()
        for layer in root.tunelab_layers:
            layer.set_reshard_after_forward(root.tunelab_reshard, recurse=False)


def full(value: Any) -> Any:
    """A DTensor (a shard) as the whole tensor (a collective); anything else as it is."""
    from torch.distributed.tensor import DTensor

    return value.full_tensor() if isinstance(value, DTensor) else value


def full_optimizer_state(optimizer: Any, keep: bool) -> dict[str, Any] | None:
    """The optimizer's state dict as one process would have it (every rank takes part; ``keep``: rank 0).

    Keyed by parameter index like ``optimizer.state_dict()``, so ``load_state_dict``
    of a one-process optimizer (or ``restore`` under FSDP) takes it; gathered one
    tensor at a time, and only the keeping rank holds the copies.
    """
    saved = optimizer.state_dict()
    state: dict[int, dict[str, Any]] = {}
    for index in sorted(saved["state"]):  # the same order on every rank: the gathers pair up
        values = {key: full(value) for key, value in saved["state"][index].items()}
        if keep:
            state[index] = {
                k: v.detach().cpu() if hasattr(v, "detach") else v for k, v in values.items()
            }
    return {"state": state, "param_groups": saved["param_groups"]} if keep else None


def restore(model: Any, optimizer: Any, blob: dict[str, Any]) -> None:
    """Load a consolidated checkpoint's tensors into the shards (``checkpoint.load_checkpoint``'s FSDP step).

    Every rank read the whole file; each keeps its own shard of every tensor.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    from torch.distributed.tensor import DTensor, distribute_tensor

    set_model_state_dict(
        model, blob["trainable"], options=StateDictOptions(full_state_dict=True, strict=False)
    )
    optimizer.load_state_dict(blob["optimizer"])
    for group in optimizer.param_groups:
        for param in group["params"]:
            values = optimizer.state.get(param, {})
            for key, value in list(values.items()):
                if (
                    isinstance(param, DTensor)
                    and not isinstance(value, DTensor)
                    and getattr(value, "shape", None) == param.shape
                ):
                    values[key] = distribute_tensor(
                        value, param.device_mesh, param.placements, src_data_rank=None
                    )
