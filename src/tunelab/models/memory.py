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
  plus one layer. Selective checkpointing (``training/checkpointing.py``) keeps
  the outputs of the matmuls and of attention and recomputes the elementwise
  ops: per token per layer about 8h + 2i values (q, k, v, o and down outputs,
  gate and up, attention's output in fp32, the layer input). Calibrated on SmolLM2-135M, LoRA r=16, fp32, 2 x 512 tokens on
  CPU: measured 3.06 MiB per token after the forward pass without dropout, 3.9
  with dropout 0.05; the formula gives 2.8 and 3.6.
* overhead: 0.5 GiB for the framework, allocator slack and the data pipeline.
* loading (``load_in_ram``, a run on this machine's CPU): while the base is
  converted from its stored dtype to the compute dtype, the memory-mapped
  stored copy (P x its width) and the converted copy are both resident, on top
  of the overhead. When that load-time peak is above the training parts,
  ``loading_bytes`` is the difference, so the total is the larger of the two
  peaks. Measured on SmolLM2-135M (fp32 on disk, bf16 LoRA, 1 x 64 tokens):
  peak RSS 1,316 MiB while loading against 1,070 MiB while training. A GPU run
  holds the stored copy in host RAM, not on the device: no term there.

Both activation figures (with and without gradient checkpointing) are in every
estimate, so a user sees what checkpointing would save; ``activations_bytes``
is the one the config asks for. A model known only by its config.json (a Hub
model whose weights are not here) gets its parameter counts from its shape
(``complete_info``: a Llama-style block, untied head), so a 7B model can be
sized before anything is downloaded.

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
#: Bytes per weight of the stored dtypes ``ModelInfo.dtype`` names.
STORED_WIDTH = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


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
    gradient_checkpointing: bool | Literal["selective"] = Field(
        default=False, description="Whether activations_bytes is with checkpointing (true, selective or false)."
    )
    activations_with_checkpointing_bytes: int = Field(
        default=0, ge=0, description="Activations if gradient checkpointing is on."
    )
    activations_without_checkpointing_bytes: int = Field(
        default=0, ge=0, description="Activations if gradient checkpointing is off."
    )
    activations_with_selective_bytes: int = Field(
        default=0, ge=0, description="Activations with selective checkpointing (cheap ops recomputed)."
    )
    parameters: int = Field(default=0, ge=0, description="All parameters of the model.")
    overhead_bytes: int = Field(ge=0, description="Framework and allocator overhead.")
    loading_bytes: int = Field(
        default=0, ge=0, description="How far the load-time peak (stored and converted copy) exceeds training."
    )
    total_bytes: int = Field(ge=0, description="Sum of all parts.")

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB


def complete_info(info: ModelInfo) -> ModelInfo:
    """``info`` with parameter counts derived from its shape where the catalog has none.

    A folder with only config.json (no safetensors headers to count) still says
    hidden size, layers, heads, MLP width and vocabulary; a Llama-style block
    (q, k, v, o projections with grouped-query k/v, a gated MLP of three
    matrices, two norms) with an untied LM head gives P, L and LoRA's in+out
    sum. Llama-2-7B's shape gives 6.74 B, its published count.
    """
    if info.parameters is not None and info.linear_parameters is not None:
        return info
    shape = (info.hidden_size, info.num_layers, info.vocab_size, info.intermediate_size)
    if any(value is None for value in shape):
        return info
    hidden, layers, vocab, mlp = (int(value or 0) for value in shape)
    kv = hidden * (info.num_kv_heads or 1) // (info.num_heads or 1) if info.num_heads and info.num_kv_heads else hidden
    linear = layers * (2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * mlp)
    dims = layers * (2 * hidden + 2 * (hidden + kv) + 2 * hidden + 3 * (hidden + mlp))
    params = linear + 2 * vocab * hidden + layers * 2 * hidden + hidden
    return info.model_copy(update={
        "parameters": info.parameters if info.parameters is not None else params,
        "linear_parameters": linear,
        "lora_dims": info.lora_dims if info.lora_dims is not None else dims,
    })  # fmt: skip


def _loading(info: ModelInfo, params: int, base: int, width: int, full: bool, quantized: bool, training: int) -> int:
    """Load-time peak above ``training``: overhead + the stored copy + the converted base (module doc)."""
    stored = STORED_WIDTH.get(str(info.dtype or "").removeprefix("torch."))
    if stored is None or (stored == (4 if full else width) and not quantized):
        return 0  # unknown, or loaded as stored: no second copy
    return max(0, OVERHEAD_BYTES + stored * params + base - training)


def _require(info: ModelInfo) -> tuple[int, int, int, int, int]:
    """P, L, hidden size, layers and vocabulary, or a clear error if the catalog lacks them."""
    info = complete_info(info)
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
    gradient_checkpointing: bool | Literal["selective"] = False,
    load_in_ram: bool = False,
) -> MemoryEstimate:
    """Estimate peak training memory; see the module docstring for the formula.

    The method facts come in as arguments (``methods.estimate_for`` passes them)
    because the formula must not know the method list: the registry does.
    ``precision`` is already resolved (``tunelab.models.precision``);
    ``load_in_ram``: the weights are trained in the RAM that holds the loaded file (CPU).
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
    logits = tokens * vocab * 12
    checkpointed = int(tokens * (hidden * layers + per_layer_values) * width + logits)
    kept = int(tokens * per_layer_values * layers * width + logits)
    selective = min(kept, int(tokens * (8 * hidden + 2 * mlp) * layers * width + logits))
    activations = {True: checkpointed, "selective": selective}.get(gradient_checkpointing, kept)  # type: ignore[call-overload]
    parts = {
        "weights_bytes": int(weights),
        "gradients_bytes": 4 * trainable,
        "optimizer_bytes": 8 * trainable,
        "activations_bytes": activations,
        "overhead_bytes": OVERHEAD_BYTES,
    }
    parts["loading_bytes"] = _loading(info, params, int(base if not full_weights else weights), width, full_weights,
                                      quantized, sum(parts.values())) if load_in_ram else 0  # fmt: skip
    return MemoryEstimate(
        method=method,
        precision=precision,
        batch_size=batch_size,
        max_length=max_length,
        trainable_parameters=trainable,
        total_bytes=sum(parts.values()),
        gradient_checkpointing=gradient_checkpointing,
        activations_with_checkpointing_bytes=checkpointed,
        activations_without_checkpointing_bytes=kept,
        activations_with_selective_bytes=selective,
        parameters=params,
        **parts,
    )
