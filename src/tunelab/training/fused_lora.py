"""A faster forward for PEFT's LoRA linear layers: the scaling on B, the add inside the matmul.

PEFT computes ``result + lora_B(lora_A(x)) * scaling``: an element-wise multiply
over the whole ``[tokens, out_features]`` output, again in the backward pass,
plus a separate add. With LoRA on every linear layer of the built-in model that
is 210 full-size multiplies per forward and as many in the backward, part of
``aten::mul`` (11% of a step) and ``aten::add`` in docs/training.md "Where a
step's time goes". Here the scaling multiplies ``lora_B``'s ``[out, r]``
weight instead, and ``addmm`` adds the adapter's product to the base output in
the same BLAS call. The trained parameters, their gradients and the saved
adapter are PEFT's own (only the order of rounding differs, and not at all for a
power-of-two scaling such as the default alpha / r = 2 in fp32).

Only the plain case is fused: one active adapter on a ``torch.nn.Linear`` base,
not merged, no DoRA or other variant, no extra arguments. Anything else (adapters
disabled for the base measurement, merged weights, mixed adapter batches) runs
PEFT's forward unchanged, decided per call. ``TUNELAB_LORA_FORWARD=peft`` keeps
PEFT's forward everywhere, for before/after measurements
(``benchmarks/train_throughput.py --arm``).
"""

from __future__ import annotations

import os
import types
from typing import Any

#: Environment variable that picks the LoRA forward: ``fused`` (default) or ``peft``.
FORWARD_ENV = "TUNELAB_LORA_FORWARD"


def _fused_forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    """PEFT's LoRA ``Linear.forward`` for the plain case, with scaling and add fused."""
    import torch

    names = [name for name in self.active_adapters if name in self.lora_A]
    if (
        args
        or kwargs
        or self.disable_adapters
        or self.merged
        or len(names) != 1
        or names[0] in getattr(self, "lora_variant", {})  # DoRA and other variants
        or self.use_dora.get(names[0], False)
    ):
        return type(self).forward(self, x, *args, **kwargs)
    name = names[0]
    lora_a, lora_b = self.lora_A[name], self.lora_B[name]
    result = self.base_layer(x)
    hidden = lora_a(self.lora_dropout[name](self._cast_input_dtype(x, lora_a.weight.dtype)))
    weight = lora_b.weight * self.scaling[name]  # [out, r]: the scaling applied to the small matrix
    autocast = torch.is_autocast_enabled(result.device.type)
    if lora_b.bias is not None or not (autocast or result.dtype == hidden.dtype == weight.dtype):
        return (result + torch.nn.functional.linear(hidden, weight, lora_b.bias)).to(result.dtype)
    out = torch.addmm(
        result.reshape(-1, result.shape[-1]), hidden.reshape(-1, hidden.shape[-1]), weight.t()
    )
    return out.view(result.shape)


def fuse_lora_layers(model: Any) -> int:
    """Give every plain PEFT LoRA ``Linear`` the fused forward; returns how many layers got it.

    Set on the instances (the class and the saved adapter are untouched), so a
    model PEFT merges or saves later is exactly PEFT's.
    """
    if os.environ.get(FORWARD_ENV, "fused") == "peft":
        return 0
    import torch
    from peft.tuners.lora.layer import Linear

    fused = 0
    for module in model.modules():
        if type(module) is Linear and type(module.base_layer) is torch.nn.Linear:
            module.forward = types.MethodType(_fused_forward, module)
            fused += 1
    return fused
