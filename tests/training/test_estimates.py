"""Estimates from a config alone: published figures, the split, fitting, batch, time, cost and budget.

The 7B model is known only by its config.json (Llama-2-7B's published shape,
no weights), as a Hub model is before anything is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.errors import InvalidInput
from tunelab.models import model_info
from tunelab.models.catalog import ModelInfo
from tunelab.models.memory import GIB
from tunelab.training import calibration, methods
from tunelab.training.estimate import (
    DEFAULT_GPUS,
    EFFECTIVE_BATCH,
    HardwareCatalog,
    accumulation,
    cheapest_within,
    estimate,
    flops_per_token,
    largest_batch,
    load_catalog,
)

LLAMA_2_7B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096,
}  # fmt: skip

# Published rules of thumb (the lesson, the QLoRA paper, Hugging Face's guides) and how close we
# must be: they assume batch size 1, short sequences (512 tokens) and gradient checkpointing.
PUBLISHED_GB = {"lora": (16.0, "bf16"), "qlora": (6.0, "bf16"), "full": (120.0, "bf16")}
TOLERANCE = 0.15


@pytest.fixture
def seven_b(tmp_path: Path) -> ModelInfo:
    folder = tmp_path / "llama-2-7b"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA_2_7B))
    return model_info(str(folder))


def _config(method: str, **fields: object):
    return methods.sizing_config(method, **fields)


def test_parameters_come_from_the_shape_of_config_json(seven_b: ModelInfo) -> None:
    assert seven_b.parameters is None  # no safetensors: nothing to count
    found = methods.estimate_for(_config("lora", precision="bf16"), seven_b)
    assert found.parameters == pytest.approx(6.74e9, rel=0.005)  # Llama-2-7B's published count
    assert found.trainable_parameters == 16 * (32 * (8 * 4096 + 3 * (4096 + 11008)))  # r x (in+out)


@pytest.mark.parametrize("method", sorted(PUBLISHED_GB))
def test_published_figures_for_7b(method: str, seven_b: ModelInfo) -> None:
    published, precision = PUBLISHED_GB[method]
    config = _config(
        method, precision=precision, batch_size=1, max_length=512, gradient_checkpointing=True
    )
    total_gb = methods.estimate_for(config, seven_b, precision=precision).total_bytes / 1e9
    assert total_gb == pytest.approx(published, rel=TOLERANCE), (
        f"{method}: {total_gb:.1f} GB vs {published}"
    )


@pytest.mark.parametrize("method", list(methods.METHODS))
def test_split_sums_and_checkpointing_figures(method: str, seven_b: ModelInfo) -> None:
    precision = "bf16"
    for checkpointing in (False, True):
        found = methods.estimate_for(
            _config(method, precision=precision, gradient_checkpointing=checkpointing),
            seven_b,
            precision=precision,
        )
        parts = (found.weights_bytes + found.gradients_bytes + found.optimizer_bytes
                 + found.activations_bytes + found.overhead_bytes)  # fmt: skip
        assert found.total_bytes == parts
        assert (
            found.activations_with_checkpointing_bytes
            < found.activations_without_checkpointing_bytes
        )
        chosen = (
            found.activations_with_checkpointing_bytes
            if checkpointing
            else found.activations_without_checkpointing_bytes
        )
        assert found.activations_bytes == chosen


def test_largest_batch_is_the_boundary_and_accumulation_keeps_32(seven_b: ModelInfo) -> None:
    config = _config("lora", precision="bf16", max_length=512)
    memory = int(40 * GIB)
    batch = largest_batch(config, seven_b, "bf16", memory)
    assert 1 <= batch < 64
    fits = methods.estimate_for(
        config.model_copy(update={"batch_size": batch}), seven_b, precision="bf16"
    )
    over = methods.estimate_for(
        config.model_copy(update={"batch_size": batch + 1}), seven_b, precision="bf16"
    )
    assert fits.total_bytes <= memory < over.total_bytes
    assert largest_batch(config, seven_b, "bf16", int(1 * GIB)) == 0
    for size in (1, 3, 8, 32, 64):
        assert min(size, EFFECTIVE_BATCH) * accumulation(size) >= EFFECTIVE_BATCH
    assert accumulation(8) == 4 and accumulation(64) == 1 and accumulation(0) == 0


def test_devices_fit_by_memory_and_t4_computes_in_fp16(seven_b: ModelInfo) -> None:
    found = estimate(_config("qlora", batch_size=1, max_length=512, max_steps=100), seven_b)
    gpus = {d.name: d for d in found.devices if not d.own}
    assert set(gpus) == {gpu.name for gpu in DEFAULT_GPUS}
    assert gpus["T4-16GB"].precision == "fp16" and gpus["A100-80GB"].precision == "bf16"
    for device in found.devices:
        assert device.fits == (device.needed_bytes <= device.memory_bytes)
    full = estimate(
        _config("full", precision="bf16", batch_size=1, max_length=512, max_steps=10), seven_b
    )
    fits = {d.name: d.fits for d in full.devices if not d.own}
    assert not fits["A100-80GB"] and fits["H200-141GB"]  # 7B full fine-tuning needs more than 80 GB


def test_time_and_cost_follow_tokens_and_prices(seven_b: ModelInfo) -> None:
    config = _config(
        "lora", batch_size=4, max_length=512, max_steps=1000, gradient_accumulation_steps=8
    )
    found = estimate(config, seven_b)
    assert found.total_tokens == 1000 * 4 * 8 * 512
    h100 = next(d for d in found.devices if d.name == "H100-80GB")
    expected_speed = 989e12 * 0.3 / flops_per_token(seven_b, config)
    assert h100.tokens_per_second == pytest.approx(expected_speed)
    assert h100.hours == pytest.approx(found.total_tokens / expected_speed / 3600)
    assert h100.cost_on_demand == pytest.approx(h100.hours * 6.98)
    assert h100.cost_spot == pytest.approx(h100.hours * 2.50)
    longer = estimate(config.model_copy(update={"max_steps": 2000}), seven_b)
    assert next(d for d in longer.devices if d.name == "H100-80GB").hours == pytest.approx(
        2 * h100.hours
    )


def test_steps_from_rows_epochs_and_batch(seven_b: ModelInfo) -> None:
    config = _config("lora", batch_size=4, gradient_accumulation_steps=2, epochs=3, eval_split=0.1)
    found = estimate(config, seven_b, rows=1000, tokens_per_row=200)
    assert found.steps == 3 * 113  # ceil(900 / 8) per epoch
    assert found.total_tokens == found.steps * 8 * 200
    unknown = estimate(config, seven_b)
    assert unknown.steps is None and all(d.hours is None for d in unknown.devices)
    assert any("rows" in note for note in unknown.notes)


def test_cheapest_within_budget_is_cheapest_of_all_that_fit(seven_b: ModelInfo) -> None:
    config = _config("lora", batch_size=8, max_length=1024, max_steps=2000)
    tokens = 2000 * 8 * 1024
    catalog = load_catalog()
    choice = cheapest_within(config, seven_b, tokens, 1e6, catalog)
    assert choice.considered == len(catalog.gpus) * 2 * 2  # GPU x checkpointing x pricing
    assert (
        choice.needed_bytes
        <= next(g for g in catalog.gpus if g.name == choice.device).memory_gib * GIB
    )
    for gpu in catalog.gpus:  # nothing that fits is cheaper
        for checkpointing in (False, True):
            trial = config.model_copy(update={"gradient_checkpointing": checkpointing})
            from tunelab.training.estimate import gpu_precision, gpu_throughput

            if largest_batch(trial, seven_b, gpu_precision(trial, gpu), int(gpu.memory_gib * GIB)):
                speed = gpu_throughput(trial, seven_b, gpu, catalog.mfu)[0]
                assert speed is not None
                assert tokens / speed / 3600 * gpu.spot_per_hour >= choice.cost - 1e-9
    assert choice.pricing == "spot"  # spot is always the cheaper price in the default table


def test_budget_errors_name_the_field(seven_b: ModelInfo) -> None:
    config = _config("lora", max_steps=100)
    with pytest.raises(InvalidInput, match="`budget`") as zero:
        estimate(config, seven_b, budget=0)
    assert zero.value.details["field"] == "budget"
    with pytest.raises(InvalidInput, match="`budget`") as small:
        estimate(config.model_copy(update={"max_steps": 100_000}), seven_b, budget=0.01)
    assert small.value.code == "over_budget"
    with pytest.raises(InvalidInput, match="`rows`"):
        estimate(_config("lora"), seven_b, budget=10)


def test_model_that_fits_nowhere_is_an_error_naming_model(tmp_path: Path) -> None:
    folder = tmp_path / "huge"
    folder.mkdir()
    huge = {
        **LLAMA_2_7B,
        "hidden_size": 16384,
        "intermediate_size": 53248,
        "num_hidden_layers": 126,
        "num_attention_heads": 128,
        "num_key_value_heads": 8,
    }  # Llama-3.1-405B's shape
    (folder / "config.json").write_text(json.dumps(huge))
    with pytest.raises(InvalidInput, match=r"`model`.*fits nowhere") as error:
        estimate(_config("full", model=str(folder), precision="bf16"), model_info(str(folder)))
    assert error.value.code == "does_not_fit" and error.value.details["field"] == "model"
    assert error.value.details["memory"]["total_bytes"] > 141 * GIB


def test_gpus_yaml_overrides_prices_and_adds_gpus(tunelab_home: Path, seven_b: ModelInfo) -> None:
    (tunelab_home / "gpus.yaml").write_text(
        "mfu: 0.5\ncurrency: EUR\ngpus:\n"
        "  - {name: H100-80GB, memory_gib: 79.6, device_name: NVIDIA H100, on_demand_per_hour: 2.0, spot_per_hour: 1.0}\n"
        "  - {name: MI300X, memory_gib: 192, peak_tflops: 1300, on_demand_per_hour: 5, spot_per_hour: 2}\n"
    )
    catalog = load_catalog()
    assert catalog.mfu == 0.5 and catalog.currency == "EUR"
    names = [gpu.name for gpu in catalog.gpus]
    assert names[-1] == "MI300X" and len(names) == len(DEFAULT_GPUS) + 1
    found = estimate(_config("lora", max_steps=10), seven_b)
    h100 = next(d for d in found.devices if d.name == "H100-80GB")
    assert h100.on_demand_per_hour == 2.0 and found.currency == "EUR"
    (tunelab_home / "gpus.yaml").write_text("gpus:\n  - {name: X}\n")
    with pytest.raises(InvalidInput, match=r"gpus\.yaml"):
        load_catalog()


def test_default_catalog_matches_the_issue_table() -> None:
    catalog = HardwareCatalog(gpus=list(DEFAULT_GPUS))
    nominal = {gpu.name.split("-")[0]: gpu.memory_gib for gpu in catalog.gpus}
    assert set(nominal) == {"T4", "A10G", "L4", "A100", "H100", "H200"}
    assert all(gpu.spot_per_hour < gpu.on_demand_per_hour for gpu in catalog.gpus)


def test_cpu_time_comes_from_a_stored_calibration_scaled_by_flops(tunelab_home: Path) -> None:
    info = model_info("smollm2-135m-instruct")
    config = _config("lora", max_steps=10, batch_size=2, max_length=256)
    speed, source = calibration.cpu_throughput(config, info)
    assert speed is None and "--calibrate" in source
    trainable = methods.trainable_parameters(config, info)
    entry = {"model": config.model, "method": "lora", "precision": calibration._precision(config),
             "gradient_checkpointing": False, "tokens_per_second": 1000.0, "fixed_s": 0.5, "per_token_s": 0.001,
             "parameter_s": 2e-9, "first_step_extra_s": 3.0, "trainable_parameters": trainable,
             "flops_per_token": flops_per_token(info, config), "measured_at": "now"}  # fmt: skip
    calibration._store(entry)
    found = estimate(config, info)
    cpu = found.devices[0]
    step = (
        0.5 + 2 * 256 * 0.001
    )  # fixed + tokens x per token; same trainable count: no optimizer term
    assert cpu.own and cpu.kind == "cpu" and cpu.step_seconds == pytest.approx(step)
    assert cpu.tokens_per_second == pytest.approx(512 / step)
    assert cpu.hours == pytest.approx((10 * step + 3.0) / 3600) and cpu.cost_on_demand == 0
    accumulated = estimate(
        config.model_copy(update={"gradient_accumulation_steps": 4}), info
    ).devices[0]
    assert accumulated.step_seconds == pytest.approx(
        4 * 0.5 + 4 * 512 * 0.001
    )  # fixed part per micro-batch
    full = _config("full", max_steps=10, batch_size=2, max_length=256, precision=entry["precision"])
    seconds, _, source = calibration.step_seconds(full, info, 512)
    ratio = flops_per_token(info, full) / entry["flops_per_token"]
    optimizer = 2e-9 * (methods.trainable_parameters(full, info) - trainable)
    assert ratio > 1 and seconds == pytest.approx(0.5 + 512 * 0.001 * ratio + optimizer)
    assert "scaled" in source  # full fine-tuning costs more FLOPs per token and more optimizer work


def test_an_old_calibration_of_tokens_per_second_still_answers(tunelab_home: Path) -> None:
    info = model_info("smollm2-135m-instruct")
    config = _config("lora", max_steps=10, batch_size=2, max_length=256)
    calibration._store({"model": config.model, "method": "lora", "precision": calibration._precision(config),
                        "gradient_checkpointing": False, "tokens_per_second": 1000.0,
                        "flops_per_token": flops_per_token(info, config), "measured_at": "then"})  # fmt: skip
    assert calibration.cpu_throughput(config, info)[0] == pytest.approx(1000.0)


def test_fit_line_recovers_fixed_and_per_token_parts() -> None:
    tokens = [64.0, 128.0, 256.0, 64.0, 128.0]
    fixed, per_token = calibration.fit_line(tokens, [2.0 + 0.01 * t for t in tokens])
    assert fixed == pytest.approx(2.0) and per_token == pytest.approx(0.01)
    assert calibration.fit_line([64.0, 64.0], [1.0, 3.0]) == (
        0.0,
        pytest.approx(2.0 / 64),
    )  # one shape
    assert calibration.fit_line([64.0, 128.0], [3.0, 2.0]) == (2.5, 0.0)  # all overhead: no growth
    fixed, per_token = calibration.fit_line(
        [64.0, 128.0], [0.5, 2.0]
    )  # a negative intercept is clamped
    assert fixed == 0.0 and per_token > 0


def test_evaluation_passes_are_part_of_the_run_time(tunelab_home: Path) -> None:
    info = model_info("smollm2-135m-instruct")
    config = _config("lora", batch_size=2, max_length=256, epochs=1, eval_split=0.1, eval_steps=10)
    calibration._store({"model": config.model, "method": "lora", "precision": calibration._precision(config),
                        "gradient_checkpointing": False, "tokens_per_second": 1000.0,
                        "flops_per_token": flops_per_token(info, config), "measured_at": "now"})  # fmt: skip
    found = estimate(config, info, rows=1000, tokens_per_row=100)
    cpu = found.devices[0]
    assert found.steps == 450
    passes = 450 // 10 + 2  # every eval_steps, plus the base and tuned measurements
    forward_speed = (
        1000.0
        * flops_per_token(info, config)
        / (2 * (info.linear_parameters or 0) + 2 * 49152 * 576)
    )
    assert cpu.eval_hours == pytest.approx(passes * 100 * 100 / forward_speed / 3600)
    assert cpu.hours == pytest.approx(450 * 200 / 1000 / 3600 + cpu.eval_hours)
    quiet = estimate(config.model_copy(update={"eval_steps": 0, "output": config.output.model_copy(
        update={"evaluate": False})}), info, rows=1000, tokens_per_row=100).devices[0]  # fmt: skip
    assert quiet.eval_hours == 0 and quiet.hours < cpu.hours


def test_loading_a_wider_stored_copy_raises_the_cpu_peak() -> None:
    info = model_info("smollm2-135m-instruct")  # stored in fp32
    small = methods.estimate_for(
        _config("lora", batch_size=1, max_length=64, precision="bf16", device="cpu"), info
    )
    stored, converted = 4 * small.parameters, 2 * small.parameters
    assert small.loading_bytes > 0
    assert small.total_bytes == pytest.approx(
        small.overhead_bytes + stored + converted
    )  # the load-time peak
    parts = (small.weights_bytes + small.gradients_bytes + small.optimizer_bytes + small.activations_bytes
             + small.overhead_bytes + small.loading_bytes)  # fmt: skip
    assert small.total_bytes == parts
    big = methods.estimate_for(
        _config("lora", batch_size=16, max_length=1024, precision="bf16", device="cpu"), info
    )
    assert big.loading_bytes == 0  # training needs more than loading
    on_gpu = methods.estimate_for(
        _config("lora", batch_size=1, max_length=64), info, precision="bf16"
    )
    assert on_gpu.loading_bytes == 0  # the stored copy is in host RAM, not on the device


@pytest.mark.slow
def test_calibration_run_trains_and_is_reused(tiny_model_dir: Path) -> None:
    info = model_info(str(tiny_model_dir))
    config = _config("lora", model=str(tiny_model_dir), batch_size=2, max_length=64, max_steps=20)
    entry = calibration.calibrate(config, info, steps=7)
    assert entry["tokens_per_second"] > 0 and calibration.load() == [entry]
    assert (
        len({step["tokens"] for step in entry["measured_steps"]}) >= 2
    )  # steps of different sizes
    assert entry["per_token_s"] >= 0 and entry["fixed_s"] >= 0 and entry["parameter_s"] > 0
    assert entry["fixed_s"] + entry["per_token_s"] > 0
    cpu = estimate(config, info).devices[0]
    tokens = 2 * 64
    assert cpu.step_seconds == pytest.approx(entry["fixed_s"] + tokens * entry["per_token_s"])
    assert "calibration" in cpu.throughput_source and "scaled" not in cpu.throughput_source
