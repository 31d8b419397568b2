"""GGUF files for llama.cpp, Ollama and LM Studio, written with llama.cpp's own ``gguf`` package.

llama.cpp's ``convert_hf_to_gguf.py`` is not installed by any wheel (the
``llama-cpp-python`` package builds the runtime but leaves its scripts in the
source tree), so tunelab writes the file itself with the ``gguf`` package that
the converter is built on: the tensor names come from ``gguf``'s own name map,
quantisation (``q8_0``) from ``gguf.quants``, and the layout follows what the
converter does for the Llama family: metadata keys, the query/key row
permutation, a tied output head left out, the BPE vocabulary with token types
and merges, and the chat template the model was trained with. The built-in
SmolLM2 came from a GGUF written by that converter; ``tests/export`` checks
llama.cpp gives the same greedy tokens as transformers.

A LoRA adapter becomes a GGUF adapter (``general.type = adapter``) that
``llama-cli --lora`` or ``Llama(lora_path=...)`` applies on top of the base
GGUF, with PEFT's scaling carried as ``adapter.lora.alpha``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.errors import InvalidInput

QUANTS = ("f16", "q8_0")
ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama"}
_BLOCK = 32  # q8_0 quantises rows in blocks of 32 values


class GgufUnsupported(InvalidInput):
    """The model or adapter uses something tunelab's GGUF writer does not write."""

    code = "gguf_unsupported"


def _config(model_dir: Path) -> dict[str, Any]:
    config = json.loads((model_dir / "config.json").read_text())
    architecture = (config.get("architectures") or ["?"])[0]
    if architecture not in ARCHITECTURES:
        raise GgufUnsupported(
            f"GGUF export supports the Llama family ({', '.join(ARCHITECTURES)}), not {architecture}",
            "export `merged` and convert it with llama.cpp's convert_hf_to_gguf.py",
        )
    scaling = config.get("rope_scaling") or {}
    if scaling.get("rope_type", scaling.get("type", "default")) not in ("default", None):
        raise GgufUnsupported(f"rope scaling {scaling} is not written by tunelab's GGUF writer",
                              "export `merged` and convert it with llama.cpp's convert_hf_to_gguf.py")  # fmt: skip
    return config


def permute_rows(weight: Any, heads: int) -> Any:
    """Reorder q/k rows from transformers' rotate-half layout to llama.cpp's interleaved one."""
    shape = weight.shape
    return weight.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _state(model_dir: Path) -> dict[str, Any]:
    """Every tensor of a safetensors model folder as fp32 numpy arrays."""
    from safetensors.torch import load_file

    tensors: dict[str, Any] = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        for name, tensor in load_file(str(file)).items():
            tensors[name] = tensor.float().numpy()
    return tensors


def _pre_tokenizer(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's name for the pre-tokenizer (the regex that splits text before BPE)."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"
    raise GgufUnsupported(f"the tokenizer's pre-tokenizer {kinds} has no GGUF name in tunelab's writer",
                          "export `merged` and convert it with llama.cpp's convert_hf_to_gguf.py")  # fmt: skip


def _add_vocabulary(writer: Any, model_dir: Path, vocab_size: int) -> None:
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = json.loads((model_dir / "tokenizer.json").read_text())
    if data.get("model", {}).get("type") != "BPE":
        raise GgufUnsupported("GGUF export writes byte-level BPE vocabularies only",
                              "export `merged` and convert it with llama.cpp's convert_hf_to_gguf.py")  # fmt: skip
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = {item["id"]: item for item in data.get("added_tokens", [])}
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(by_id[index])
        extra = added.get(index)
        kind = gguf.TokenType.NORMAL
        if extra is not None:
            kind = gguf.TokenType.CONTROL if extra.get("special") else gguf.TokenType.USER_DEFINED
        types.append(kind)
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(data))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for token, add in (
        (tokenizer.bos_token_id, writer.add_bos_token_id),
        (tokenizer.eos_token_id, writer.add_eos_token_id),
        (tokenizer.unk_token_id, writer.add_unk_token_id),
        (tokenizer.pad_token_id, writer.add_pad_token_id),
    ):
        if token is not None:
            add(token)
    probe = tokenizer("a").input_ids
    writer.add_add_bos_token(bool(probe) and probe[0] == tokenizer.bos_token_id)
    writer.add_add_space_prefix(False)
    if isinstance(tokenizer.chat_template, str):
        writer.add_chat_template(tokenizer.chat_template)


def _add_hparams(writer: Any, config: dict[str, Any], name: str, file_type: int) -> None:
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    writer.add_name(name)
    writer.add_context_length(int(config.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(int(config["vocab_size"]))
    writer.add_rope_dimension_count(int(config.get("head_dim") or hidden // heads))
    writer.add_file_type(file_type)


def _gguf_name(names: Any, hf_name: str) -> str:
    name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if name is None:
        raise GgufUnsupported(f"no GGUF name for tensor {hf_name!r}",
                              "export `merged` and convert it with llama.cpp's convert_hf_to_gguf.py")  # fmt: skip
    return str(name)


def _oriented(hf_name: str, array: Any, config: dict[str, Any]) -> Any:
    heads = int(config["num_attention_heads"])
    if hf_name.endswith("q_proj.weight"):
        return permute_rows(array, heads)
    if hf_name.endswith("k_proj.weight"):
        return permute_rows(array, int(config.get("num_key_value_heads") or heads))
    return array


def _encode(array: Any, quant: str) -> tuple[Any, Any]:
    """(data, ggml type): norms and biases stay fp32, matrices f16 or q8_0 (f16 when rows do not fit q8_0)."""
    import gguf
    import numpy as np

    if array.ndim < 2:
        return array.astype(np.float32), gguf.GGMLQuantizationType.F32
    if quant == "q8_0" and array.shape[-1] % _BLOCK == 0:
        kind = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(array.astype(np.float32), kind), kind
    return array.astype(np.float16), gguf.GGMLQuantizationType.F16


def write_model_gguf(model_dir: Path, out_file: Path, *, quant: str = "f16", name: str = "") -> Path:
    """Write the plain model folder ``model_dir`` (safetensors, tokenizer) as one GGUF file."""
    import gguf

    if quant not in QUANTS:
        raise InvalidInput(f"unknown GGUF quantisation {quant!r}", f"use one of {', '.join(QUANTS)}")
    config = _config(model_dir)
    file_type = gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, int(config["num_hidden_layers"]))
    writer = gguf.GGUFWriter(str(out_file), "llama")
    _add_hparams(writer, config, name or model_dir.name, int(file_type))
    _add_vocabulary(writer, model_dir, int(config["vocab_size"]))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for hf_name, array in _state(model_dir).items():
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue  # llama.cpp reuses token_embd when output.weight is absent
        data, kind = _encode(_oriented(hf_name, array, config), quant)
        writer.add_tensor(_gguf_name(names, hf_name), data, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


def _lora_alpha(adapter_config: dict[str, Any]) -> float:
    """The alpha that makes llama.cpp's ``alpha / r`` equal PEFT's scaling (rsLoRA: alpha / sqrt(r))."""
    r, alpha = float(adapter_config["r"]), float(adapter_config.get("lora_alpha", adapter_config["r"]))
    if adapter_config.get("rank_pattern") or adapter_config.get("alpha_pattern"):
        raise GgufUnsupported("per-layer LoRA ranks are not written as a GGUF adapter",
                              "export `merged` (or `gguf`) instead")  # fmt: skip
    return alpha * r**0.5 if adapter_config.get("use_rslora") else alpha


def _check_adapter(adapter_config: dict[str, Any]) -> None:
    if adapter_config.get("peft_type") != "LORA" or adapter_config.get("use_dora"):
        raise GgufUnsupported(
            f"only plain LoRA adapters become GGUF adapters, not {adapter_config.get('peft_type')}"
            f"{' with DoRA' if adapter_config.get('use_dora') else ''}",
            "export `gguf` (the adapter merged into its base) instead",
        )


def write_adapter_gguf(adapter_dir: Path, base_dir: Path, out_file: Path, *, name: str = "") -> Path:
    """Write the PEFT LoRA adapter in ``adapter_dir`` (for the model in ``base_dir``) as a GGUF adapter."""
    import gguf
    from safetensors.torch import load_file

    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text())
    _check_adapter(adapter_config)
    config = _config(base_dir)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, int(config["num_hidden_layers"]))
    writer = gguf.GGUFWriter(str(out_file), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_name(name or adapter_dir.name)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, _lora_alpha(adapter_config))
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    for key in sorted(tensors):
        if ".lora_A." not in key and ".lora_B." not in key:
            raise GgufUnsupported(f"the adapter also saves {key!r}, which a GGUF LoRA cannot carry",
                                  "export `gguf` (the adapter merged into its base) instead")  # fmt: skip
        if ".lora_B." in key:
            continue
        target = key.replace("base_model.model.", "", 1).replace(".lora_A.weight", ".weight")
        lora_a = tensors[key].float().numpy()
        lora_b = _oriented(target, tensors[key.replace(".lora_A.", ".lora_B.")].float().numpy(), config)
        base_name = _gguf_name(names, target)
        writer.add_tensor(f"{base_name}.lora_a", lora_a.astype("float32"))
        writer.add_tensor(f"{base_name}.lora_b", lora_b.astype("float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file
