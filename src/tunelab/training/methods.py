"""The method registry: one home for every fine-tuning method's facts (peft's habit).

Which methods are adapters, which can be merged or packed, their default
learning rate, whether they need a CUDA GPU, how their PEFT config is built and
how many parameters they train used to be answered in six files, and the
answers drifted. Everything asks ``METHODS`` now: TrainConfig's validation and
defaults, model wrapping, the run's output, the model card, export, the memory
estimate (preflight, ``GET /api/models/info``, ``tunelab models info``) and the
dashboard (through the API).

Adding a method is one ``MethodSpec`` here plus its name in ``Method``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from tunelab.errors import InvalidInput, TunelabError

if TYPE_CHECKING:
    from tunelab.models.catalog import ModelInfo
    from tunelab.models.memory import MemoryEstimate
    from tunelab.training.config import TrainConfig

Method = Literal["full", "lora", "dora", "qlora", "ia3", "prefix", "prompt", "adalora"]
Family = Literal["full", "adapter", "prompt-learning"]

FULL_LEARNING_RATE = 2e-5  # every weight moves: a small step keeps the pretrained knowledge
ADAPTER_LEARNING_RATE = 2e-4  # new, zero-initialised parameters: a larger step is safe

#: Learning-rate ranges worth searching, by model size (the dashboard guide's bands):
#: (smallest parameter count, low, high), largest models first. Bigger models take smaller steps.
LEARNING_RATE_BANDS: tuple[tuple[int, float, float], ...] = (
    (7_000_000_000, 1e-5, 5e-5),
    (1_000_000_000, 5e-5, ADAPTER_LEARNING_RATE),
    (0, 1e-4, 5e-4),
)


@dataclass(frozen=True)
class MethodSpec:
    """Facts about one method. The first seven fields and ``as_dict`` are the public shape."""

    name: str
    family: Family
    mergeable: bool
    packable: bool
    default_learning_rate: float
    needs_cuda: bool
    description: str
    quantized: bool = False  # base weights stored in 4 bits (bitsandbytes NF4)
    uses_lora_settings: bool = False  # the `lora` block (rank, alpha, dropout, targets) applies
    peft_type: str | None = None  # PEFT's `peft_type` in adapter_config.json
    bf16_autocast: bool = False  # adapter matmuls run under bf16 autocast without PEFT's input casting
    build_peft: Callable[[TrainConfig, int], Any] | None = field(default=None, repr=False, compare=False)
    trainable: Callable[[ModelInfo, TrainConfig], int] = field(
        default=lambda info, config: 0, repr=False, compare=False
    )

    @property
    def trains_full_weights(self) -> bool:
        return self.family == "full"

    @property
    def is_adapter(self) -> bool:
        """Anything but full fine-tuning: the base is frozen and output/ holds a PEFT adapter."""
        return self.family != "full"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready facts for the API and the dashboard."""
        return {
            "name": self.name,
            "family": self.family,
            "mergeable": self.mergeable,
            "packable": self.packable,
            "default_learning_rate": self.default_learning_rate,
            "needs_cuda": self.needs_cuda,
            "description": self.description,
            "quantized": self.quantized,
            "uses_lora_settings": self.uses_lora_settings,
        }


# ---- PEFT config builders (peft is imported only when a run starts) ----


def _lora(config: TrainConfig, total_steps: int) -> Any:
    import peft

    lora = config.lora
    return peft.LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        use_dora=config.method == "dora",
        task_type="CAUSAL_LM",
    )


def _adalora_initial_rank(config: TrainConfig) -> int:
    """AdaLoRA starts 1.5x wider than the target rank and prunes down to it."""
    return max(config.lora.r * 3 // 2, config.lora.r)


def _adalora(config: TrainConfig, total_steps: int) -> Any:
    import peft

    lora = config.lora
    return peft.AdaLoraConfig(
        init_r=_adalora_initial_rank(config),
        target_r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        total_step=max(total_steps, 2),
        tinit=0,
        tfinal=0,
        task_type="CAUSAL_LM",
    )


def _ia3(config: TrainConfig, total_steps: int) -> Any:
    import peft

    return peft.IA3Config(task_type="CAUSAL_LM")


def _prefix(config: TrainConfig, total_steps: int) -> Any:
    import peft

    return peft.PrefixTuningConfig(num_virtual_tokens=config.num_virtual_tokens, task_type="CAUSAL_LM")


def _prompt(config: TrainConfig, total_steps: int) -> Any:
    import peft

    return peft.PromptTuningConfig(num_virtual_tokens=config.num_virtual_tokens, task_type="CAUSAL_LM")


# ---- trainable-parameter formulas, from catalog facts (no weights loaded) ----


def _hidden(info: ModelInfo) -> int:
    return info.hidden_size or 1


def _kv_width(info: ModelInfo) -> int:
    """Width of the key (and value) projection: h, or less with grouped-query attention."""
    hidden = _hidden(info)
    if info.num_heads and info.num_kv_heads:
        return hidden * info.num_kv_heads // info.num_heads
    return hidden


def _lora_dims(info: ModelInfo) -> int:
    """Sum of in+out features over the blocks' linear layers (LoRA adds r x this)."""
    if info.lora_dims is not None:
        return info.lora_dims
    params = info.parameters or 0
    linear = info.linear_parameters
    if linear is None:
        linear = max(params - (info.vocab_size or 0) * _hidden(info), 0)
    return 2 * linear // _hidden(info)


def _full_count(info: ModelInfo, config: TrainConfig) -> int:
    return info.parameters or 0


def _lora_count(info: ModelInfo, config: TrainConfig) -> int:
    return config.lora.r * _lora_dims(info)


def _dora_count(info: ModelInfo, config: TrainConfig) -> int:
    # plus one magnitude per output feature of each adapted layer, about half of in+out
    return config.lora.r * _lora_dims(info) + _lora_dims(info) // 2


def _adalora_count(info: ModelInfo, config: TrainConfig) -> int:
    # A and B at the initial rank; its per-layer singular values (r each) are left out (<1%)
    return _adalora_initial_rank(config) * _lora_dims(info)


def _ia3_count(info: ModelInfo, config: TrainConfig) -> int:
    # PEFT's default targets: one scaling vector per block for keys, values and the MLP's input
    mlp = info.intermediate_size or 4 * _hidden(info)
    return (info.num_layers or 1) * (2 * _kv_width(info) + mlp)


def _prefix_count(info: ModelInfo, config: TrainConfig) -> int:
    # a key and a value vector per virtual token and layer
    return config.num_virtual_tokens * (info.num_layers or 1) * 2 * _kv_width(info)


def _prompt_count(info: ModelInfo, config: TrainConfig) -> int:
    return config.num_virtual_tokens * _hidden(info)


_ADAPTER = {"default_learning_rate": ADAPTER_LEARNING_RATE, "needs_cuda": False}

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "full", "full", mergeable=False, packable=True, default_learning_rate=FULL_LEARNING_RATE,
            needs_cuda=False, description="Train every weight (fp32 master weights); most memory.",
            trainable=_full_count,
        ),
        MethodSpec(
            "lora", "adapter", mergeable=True, packable=True, **_ADAPTER,
            description="Low-rank adapters on a frozen base; the usual choice.",
            uses_lora_settings=True, peft_type="LORA", bf16_autocast=True,
            build_peft=_lora, trainable=_lora_count,
        ),
        MethodSpec(
            "dora", "adapter", mergeable=True, packable=True, **_ADAPTER,
            description="LoRA with a learned magnitude per output feature (weight-decomposed).",
            uses_lora_settings=True, peft_type="LORA", build_peft=_lora, trainable=_dora_count,
        ),
        MethodSpec(
            "qlora", "adapter", mergeable=False, packable=True,
            default_learning_rate=ADAPTER_LEARNING_RATE, needs_cuda=True,
            description="LoRA on a 4-bit (NF4) base; least memory, needs a CUDA GPU and bitsandbytes.",
            quantized=True, uses_lora_settings=True, peft_type="LORA",
            build_peft=_lora, trainable=_lora_count,
        ),
        MethodSpec(
            "ia3", "adapter", mergeable=True, packable=True, **_ADAPTER,
            description="Learned scaling vectors on keys, values and the MLP; very few parameters.",
            peft_type="IA3", build_peft=_ia3, trainable=_ia3_count,
        ),
        MethodSpec(
            "prefix", "prompt-learning", mergeable=False, packable=False, **_ADAPTER,
            description="Learned key/value prefixes in every layer (virtual tokens).",
            peft_type="PREFIX_TUNING", build_peft=_prefix, trainable=_prefix_count,
        ),
        MethodSpec(
            "prompt", "prompt-learning", mergeable=False, packable=False, **_ADAPTER,
            description="Learned soft-prompt embeddings before the input (virtual tokens).",
            peft_type="PROMPT_TUNING", build_peft=_prompt, trainable=_prompt_count,
        ),
        MethodSpec(
            "adalora", "adapter", mergeable=True, packable=True, **_ADAPTER,
            description="LoRA whose rank budget is reallocated between layers while training.",
            uses_lora_settings=True, peft_type="ADALORA", build_peft=_adalora, trainable=_adalora_count,
        ),
    )
}
assert set(METHODS) == set(get_args(Method)), "every Method needs a MethodSpec"


def get(name: str) -> MethodSpec:
    """The spec of ``name``, or an InvalidInput listing the known methods."""
    try:
        return METHODS[name]
    except KeyError:
        raise InvalidInput(
            f"Unknown method {name!r}.", hint=f"Use one of {', '.join(METHODS)}."
        ) from None


def names(family: Family | None = None) -> tuple[str, ...]:
    """Method names in registry order, optionally of one family."""
    return tuple(n for n, spec in METHODS.items() if family is None or spec.family == family)


def default_learning_rate(method: str) -> float:
    return get(method).default_learning_rate


def peft_config(config: TrainConfig, total_steps: int) -> Any:
    """The PEFT config for an adapter method (``total_steps`` feeds AdaLoRA's rank schedule)."""
    spec = get(config.method)
    if spec.build_peft is None:
        raise InvalidInput(f"`method: {spec.name}` has no PEFT adapter.", hint="Use an adapter method.")
    return spec.build_peft(config, total_steps)


def spec_for_adapter(adapter_config: dict[str, Any]) -> MethodSpec | None:
    """The method a saved PEFT ``adapter_config.json`` was trained with (None when unknown).

    LoRA, DoRA and QLoRA all save ``peft_type: LORA``; ``use_dora`` tells DoRA
    apart, and a QLoRA adapter is an ordinary LoRA adapter once saved.
    """
    raw = adapter_config.get("peft_type") or ""
    peft_type = str(getattr(raw, "value", raw)).upper()  # "LORA" in JSON, PeftType.LORA in memory
    if peft_type == "LORA":
        return METHODS["dora" if adapter_config.get("use_dora") else "lora"]
    return next((s for s in METHODS.values() if s.peft_type == peft_type), None)


def trainable_parameters(config: TrainConfig, info: ModelInfo) -> int:
    """Parameters the optimizer updates for ``config`` on ``info`` (an estimate for adapters)."""
    return get(config.method).trainable(info, config)


def estimate_for(config: TrainConfig, info: ModelInfo, *, precision: str | None = None) -> MemoryEstimate:
    """The one memory estimate: what preflight checks, the API and ``tunelab models info`` show.

    Precision ``auto`` is resolved for this machine exactly as the engine will
    resolve it, unless ``precision`` names the one another device would use
    (``tunelab.training.estimate`` sizes GPUs this machine does not have); the
    formula itself is ``tunelab.models.memory``'s. A model known only by its
    config.json gets its parameter counts from its shape (``complete_info``).
    """
    from tunelab.models.memory import complete_info, estimate_memory
    from tunelab.models.precision import resolve

    spec = get(config.method)
    info = complete_info(info)
    in_ram = False  # another device's precision named: a GPU, whose weights do not share RAM with the file
    if precision is None:
        resolved = resolve(
            config.device, config.precision, full_weights=spec.trains_full_weights, quantized=spec.quantized
        )
        precision, in_ram = resolved.precision, resolved.device == "cpu"
    return estimate_memory(
        info,
        method=spec.name,
        precision=precision,  # type: ignore[arg-type]
        trainable_parameters=trainable_parameters(config, info),
        full_weights=spec.trains_full_weights,
        quantized=spec.quantized,
        adapter_dropout=spec.uses_lora_settings and config.lora.dropout > 0,
        batch_size=config.batch_size,
        max_length=config.max_length,
        gradient_checkpointing=_checkpointing(config, info, precision),  # type: ignore[arg-type]
        load_in_ram=in_ram,
    )



def _checkpointing(config: TrainConfig, info: ModelInfo, precision: str | None) -> bool | str:
    """The config's choice; ``auto`` as the engine decides it on this machine (``training/checkpointing.py``)."""
    if config.gradient_checkpointing != "auto":
        return "selective" if config.gradient_checkpointing == "selective" else bool(config.gradient_checkpointing)
    from tunelab.models.precision import cuda_available
    from tunelab.training.checkpointing import choose

    device = "cuda" if config.device == "cuda" or (config.device == "auto" and cuda_available()) else "cpu"
    return choose(config, info, device, precision=precision).mode

SIZING_DATASET = "(memory estimate only)"


def sizing_config(method: str, **fields: Any) -> TrainConfig:
    """A TrainConfig for sizing a run (API and CLI): TrainConfig's defaults for every unnamed field.

    The dataset is a placeholder: an estimate needs no data, and building a
    real TrainConfig keeps its ranges and cross-field rules in force.
    """
    from tunelab.training.config import load_config_dict

    return load_config_dict({"dataset": SIZING_DATASET, **fields, "method": method})


def estimate_methods(
    info: ModelInfo, methods: tuple[str, ...] | None = None, **fields: Any
) -> dict[str, MemoryEstimate | TunelabError]:
    """``estimate_for`` per method (all by default) with the same other fields; errors per method."""
    out: dict[str, MemoryEstimate | TunelabError] = {}
    for name in methods or tuple(METHODS):
        try:
            out[name] = estimate_for(sizing_config(name, **fields), info)
        except TunelabError as error:
            out[name] = error
    return out
