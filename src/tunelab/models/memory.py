"""A rough training-memory estimate per method, so users pick a method before they OOM.

The formula (also in docs/models.md), with P parameters, L parameters in the
blocks' linear layers, T trainable parameters, b bytes per weight of the chosen
precision (fp32 4, bf16/fp16 2), B batch size, S max length:

* weights: full fine-tuning keeps fp32 master weights (4P); adapter methods keep
  the frozen base in the compute precision (bP) plus fp32 adapters (4T); a 4-bit
  base (QLoRA) stores the linear layers in NF4 (0.5625 bytes per parameter with
  its block constants) and the rest (embeddings, norms) at b bytes, plus fp32
  adapters.
* gradients: 4 bytes per trainable parameter; AdamW state: 8 bytes per trainable
  parameter (two fp32 moments).
* activations, kept for the backward pass by eager PyTorch: per token per layer
  about 16h + 6i values (norm inputs, outputs and their fp32 intermediates, q/k/v
  before and after rotary, attention output, the MLP's gate/up/act/product), with
  h the hidden size and i the MLP width, at b bytes each; methods with LoRA-style
  adapter dropout add the dropout-masked copy of every adapted layer's input
  (6h + i values) when ``lora.dropout`` > 0; the logits
  with their fp32 copy and gradient add 12V bytes per token. Attention scores are
  not stored (SDPA). Gradient checkpointing keeps each layer's input (h values)
  plus one layer. Calibrated on SmolLM2-135M, LoRA r=16, fp32, 2 x 512 tokens on
  CPU: measured 3.06 MiB per token after the forward pass without dropout, 3.9
  with dropout 0.05; the formula gives 2.8 and 3.6.
* overhead: 0.5 GiB for the framework, allocator slack and the data pipeline.

T comes from the method registry (``tunelab.training.methods``), which also
says whether a method trains full weights, quantizes the base or uses adapter
dropout, and resolves ``precision: auto`` the way the engine does; this module
is only the formula. LoRA's T is r x (sum of in+out features of every linear
layer), the default "all linear layers" target. Real peaks differ by tens of
percent; the point is the order of magnitude and the comparison between methods.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tunelab.errors import InvalidInput
from tunelab.models.catalog import ModelInfo
from tunelab.models.precision import PRECISIONS, Precision

GIB = 1024**3
OVERHEAD_BYTES = GIB // 2
NF4_BYTES = 0.5625


class MemoryEstimate(BaseModel):
    """Bytes needed to train one model with one method; ``total_bytes`` is the sum."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="The method's name in the registry (full, lora, qlora...).")
    precision: Literal["fp32", "bf16", "fp16"] = Field(description="Compute precision used.")
    batch_size: int = Field(ge=1, description="Sequences per step.")
    max_length: int = Field(ge=1, description="Tokens per sequence.")
    trainable_parameters: int = Field(ge=0, description="Parameters the optimizer updates.")
    weights_bytes: int = Field(ge=0, description="Model weights (and adapters).")
    gradients_bytes: int = Field(ge=0, description="Gradients of trainable parameters.")
    optimizer_bytes: int = Field(ge=0, description="AdamW moments.")
    activations_bytes: int = Field(ge=0, description="Activations kept for backward, logits.")
    overhead_bytes: int = Field(ge=0, description="Framework and allocator overhead.")
    total_bytes: int = Field(ge=0, description="Sum of all parts.")

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB


def _require(info: ModelInfo) -> tuple[int, int, int, int, int]:
    """P, L, hidden size, layers and vocabulary, or a clear error if the catalog lacks them."""
    missing = [
        name
        for name in ("parameters", "hidden_size", "num_layers", "vocab_size")
        if getattr(info, name) is None
    ]
    if missing:
        raise InvalidInput(
            f"Cannot estimate memory for {info.id!r}: unknown {', '.join(missing)}.",
            hint="The model folder needs config.json and safetensors weights.",
        )
    params = info.parameters or 0
    hidden = info.hidden_size or 1
    vocab = info.vocab_size or 1
    linear = info.linear_parameters if info.linear_parameters is not None else params - vocab * hidden
    return params, max(linear, 0), hidden, info.num_layers or 1, vocab


def estimate_memory(
    info: ModelInfo,
    *,
    method: str,
    precision: Precision,
    trainable_parameters: int,
    full_weights: bool,
    quantized: bool = False,
    adapter_dropout: bool = False,
    batch_size: int,
    max_length: int,
    gradient_checkpointing: bool = False,
) -> MemoryEstimate:
    """Estimate peak training memory; see the module docstring for the formula.

    The method facts come in as arguments (``methods.estimate_for`` passes them)
    because the formula must not know the method list: the registry does.
    ``precision`` is already resolved (``tunelab.models.precision``).
    """
    if precision not in PRECISIONS:
        raise InvalidInput(f"Unknown precision {precision!r}.", hint="Use one of fp32, bf16, fp16.")
    if batch_size < 1 or max_length < 1 or trainable_parameters < 0:
        raise InvalidInput(
            "batch_size and max_length must be positive.",
            hint="e.g. --batch-size 8 --max-length 512.",
        )
    width = 4 if precision == "fp32" else 2
    params, linear, hidden, layers, vocab = _require(info)
    trainable = trainable_parameters
    if full_weights:
        weights = 4 * params
    else:
        base = NF4_BYTES * linear + width * (params - linear) if quantized else width * params
        weights = int(base) + 4 * trainable
    tokens = batch_size * max_length
    mlp = info.intermediate_size or (
        (linear / layers - 4 * hidden * hidden) / (3 * hidden) if linear else 8 * hidden / 3
    )
    per_layer_values = 16 * hidden + 6 * mlp
    if adapter_dropout:
        per_layer_values += 6 * hidden + mlp  # dropout-masked adapter inputs
    if gradient_checkpointing:
        stored = tokens * (hidden * layers + per_layer_values) * width
    else:
        stored = tokens * per_layer_values * layers * width
    activations = int(stored + tokens * vocab * 12)
    parts = {
        "weights_bytes": int(weights),
        "gradients_bytes": 4 * trainable,
        "optimizer_bytes": 8 * trainable,
        "activations_bytes": activations,
        "overhead_bytes": OVERHEAD_BYTES,
    }
    return MemoryEstimate(
        method=method,
        precision=precision,
        batch_size=batch_size,
        max_length=max_length,
        trainable_parameters=trainable,
        total_bytes=sum(parts.values()),
        **parts,
    )
