"""The ``loss`` block: label smoothing, class and token weights and ``loss_fn``, against torch's own losses.

Each option is checked through the engine's real path (``loss.loss_sum`` on a
tiny model's batch, the fast path for causal LMs) against torch's
``F.cross_entropy`` on logits from the model's plain forward; a ``loss_fn`` from
``tests/training/loss_fns.py`` trains a real run; preflight names every mistake.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.training import loss_fns
from tests.training.conftest import read_jsonl

from tunelab.errors import ConfigError
from tunelab.training.loss_options import LossOptions, LossSettings, resolve, target_loss
from tunelab.training.preflight import errors_only, preflight

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.fixture(scope="module")
def causal(tiny_model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(autouse=True)
def _fresh_calls() -> Iterator[None]:
    loss_fns.CALLS.clear()
    yield
    loss_fns.CALLS.clear()


def _causal_batch(tokenizer: Any, options: LossOptions | None = None) -> Any:
    """Three packed random sequences, each ending with ``<|im_end|>``, every token a target."""
    from tunelab.training.batching import make_batch
    from tunelab.training.encoding import IGNORE, Encoded

    rng = random.Random(0)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    examples = []
    for length in (40, 25, 31):
        ids = [rng.randrange(10, len(tokenizer) - 10) for _ in range(length)] + [end]
        examples.append(Encoded(ids, [IGNORE, *ids[1:]]))
    batch = make_batch(examples, packing=True, max_length=128, pad_id=tokenizer.pad_token_id)
    batch.loss_options = options
    return batch


def _plain_logits(model: Any, batch: Any) -> tuple[Any, Any]:
    """Logits of the model's ordinary forward at the target positions, and those targets."""
    from tunelab.training.encoding import IGNORE

    mask = batch.targets != IGNORE
    logits = model(
        input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False
    ).logits
    return logits[mask].float(), batch.targets[mask]


def _loss(model: Any, batch: Any) -> Any:
    from tunelab.training.loss import loss_sum

    with torch.no_grad():
        return loss_sum(model, batch, fast=True)


def test_defaults_resolve_to_the_plain_criterion_and_keep_the_fast_path_bit_identical(
    causal,
) -> None:
    model, tokenizer = causal
    assert (
        resolve(LossSettings(), model=model, tokenizer=tokenizer, labels=[], device="cpu") is None
    )
    explicit = LossSettings.model_validate(
        {"label_smoothing": 0.0, "class_weights": {}, "loss_fn": None}
    )
    assert resolve(explicit, model=model, tokenizer=tokenizer, labels=[], device="cpu") is None
    batch = _causal_batch(tokenizer)
    mask = batch.targets != -100
    # the fast path as it was: body, head at target positions, fp32, summed cross-entropy
    with torch.no_grad():
        out = model.model(
            input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False
        )
        hidden = out.last_hidden_state[mask]
        before = F.cross_entropy(
            model.lm_head(hidden).float(), batch.targets[mask], reduction="sum"
        )
    assert torch.equal(_loss(model, batch), before)


def test_label_smoothing_equals_torch(causal) -> None:
    model, tokenizer = causal
    options = resolve(
        LossSettings(label_smoothing=0.1), model=model, tokenizer=tokenizer, labels=[], device="cpu"
    )
    batch = _causal_batch(tokenizer, options)
    with torch.no_grad():
        logits, targets = _plain_logits(model, batch)
        expected = F.cross_entropy(logits, targets, label_smoothing=0.1, reduction="sum")
        plain = F.cross_entropy(logits, targets, reduction="sum")
    got = _loss(model, batch)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    # smoothing changed the loss (little: a random model's predictions are near uniform)
    assert abs(float(got) - float(plain)) > 0.05


def test_token_weights_equal_torchs_weight(causal) -> None:
    model, tokenizer = causal
    batch = _causal_batch(tokenizer)
    # a vocabulary entry that is a target
    some = tokenizer.convert_ids_to_tokens(int(batch.targets[0, 5]))
    settings = LossSettings(token_weights={"<|im_end|>": 3.0, some: 0.25})
    batch.loss_options = resolve(
        settings, model=model, tokenizer=tokenizer, labels=[], device="cpu"
    )
    weight = torch.ones(model.lm_head.weight.shape[0])
    weight[tokenizer.convert_tokens_to_ids("<|im_end|>")] = 3.0
    weight[tokenizer.convert_tokens_to_ids(some)] = 0.25
    with torch.no_grad():
        logits, targets = _plain_logits(model, batch)
        expected = F.cross_entropy(logits, targets, weight=weight, reduction="sum")
        plain = F.cross_entropy(logits, targets, reduction="sum")
    got = _loss(model, batch)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    assert abs(float(got) - float(plain)) > 1.0


def test_class_weights_and_smoothing_equal_torch_on_a_classifier(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from tunelab.testing import build_tiny_encoder
    from tunelab.training.batching import make_labeled_batch
    from tunelab.training.task_data import LabeledExample

    folder = build_tiny_encoder(tmp_path / "bert", ["the film was great", "the film was awful"] * 8)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3).eval()
    labels = ["negative", "neutral", "positive"]
    settings = LossSettings(class_weights={"positive": 3.0, "negative": 0.5}, label_smoothing=0.05)
    options = resolve(settings, model=model, tokenizer=None, labels=labels, device="cpu")
    rng = random.Random(1)
    examples = [
        LabeledExample([rng.randrange(5, 60) for _ in range(9)], None, i % 3) for i in range(6)
    ]
    batch = make_labeled_batch(examples, pad_id=0, task="classification")
    batch.loss_options = options
    with torch.no_grad():
        logits = model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask
        ).logits.float()
        weight = torch.tensor([0.5, 1.0, 3.0])  # negative, neutral, positive
        expected = F.cross_entropy(
            logits, batch.targets, weight=weight, label_smoothing=0.05, reduction="sum"
        )
    torch.testing.assert_close(_loss(model, batch), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="does not have: 'postive'"):
        resolve(
            LossSettings(class_weights={"postive": 2.0}),
            model=model,
            tokenizer=None,
            labels=labels,
            device="cpu",
        )


def test_a_loss_fn_gets_target_rows_only_and_its_answer_is_checked() -> None:
    from tunelab.training.loss_options import load_loss_fn

    logits = torch.randn(6, 11, requires_grad=True)
    # seq2seq padding (-100) is never shown to the function
    targets = torch.tensor([1, -100, 3, 4, -100, 10])
    options = LossOptions(loss_fn=load_loss_fn("tests.training.loss_fns:doubled"), name="doubled")
    got = target_loss(logits, targets, "seq2seq", options)
    torch.testing.assert_close(got, 2 * F.cross_entropy(logits, targets, reduction="sum"))
    assert loss_fns.CALLS == [
        {"rows": 4, "width": 11, "task": "seq2seq", "weight": None, "label_smoothing": 0.0}
    ]
    for name, words in (("per_row", r"shape \(4,\)"), ("detached", "no gradient")):
        bad = LossOptions(loss_fn=load_loss_fn(f"tests.training.loss_fns:{name}"), name=name)
        with pytest.raises(ConfigError, match=words) as caught:
            target_loss(logits, targets, "seq2seq", bad)
        assert "summed loss" in caught.value.hint


def _first_losses(config: Any, run_dir: Path) -> list[float]:
    from tunelab.training import run_training

    result = run_training(config, run_dir)
    assert result.status == "completed", result.error
    return [
        line["loss"] for line in read_jsonl(run_dir / "metrics.jsonl") if line["type"] == "train"
    ]


def test_a_custom_loss_fn_is_the_training_loss(
    make_config: Callable[..., Any], tmp_path: Path
) -> None:
    quick = {"max_steps": 3, "output": {"evaluate": False, "eval_generations": 0}}
    default = _first_losses(make_config(**quick), tmp_path / "plain")
    assert not loss_fns.CALLS
    custom = make_config(**quick, loss={"loss_fn": "tests.training.loss_fns:doubled"})
    doubled = _first_losses(custom, tmp_path / "custom")
    # same weights at the first step, twice the criterion
    assert doubled[0] == pytest.approx(2 * default[0], rel=1e-6)
    # Adam's steps hardly depend on the gradient's scale, so the whole curve stays at about twice the default.
    assert [d / p for d, p in zip(doubled, default, strict=True)] == pytest.approx(
        [2.0] * 3, rel=1e-2
    )
    assert loss_fns.CALLS and {call["task"] for call in loss_fns.CALLS} == {"causal_lm"}
    resolved = json.loads((tmp_path / "custom" / "config.json").read_text())
    assert resolved["loss"]["loss_fn"] == "tests.training.loss_fns:doubled"


def _issues(config: Any) -> dict[str, Any]:
    return {issue.code: issue for issue in errors_only(preflight(config))}


@pytest.mark.parametrize(
    ("loss_fn", "message", "hint"),
    [
        ("no_such_package_xyz.losses:focal", "cannot be imported", "PYTHONPATH"),
        (
            "tests.training.loss_fns:missing",
            "has no attribute 'missing'",
            "def missing(logits, targets, **context)",
        ),
        (
            "tests.training.loss_fns:NOT_A_FUNCTION",
            "is a int, not a function",
            "def NAME(logits, targets",
        ),
        (
            "tests.training.loss_fns:one_argument",
            "cannot be called as fn(logits, targets",
            "**context",
        ),
    ],
)
def test_preflight_refuses_a_loss_fn_that_cannot_be_called(
    make_config, loss_fn: str, message: str, hint: str
) -> None:
    issue = _issues(make_config(loss={"loss_fn": loss_fn}))["loss_fn_invalid"]
    assert message in issue.message and hint in issue.hint and issue.field == "loss.loss_fn"


def test_preflight_accepts_a_good_loss_fn_and_checks_token_weights(make_config) -> None:
    assert _issues(make_config(loss={"loss_fn": "tests.training.loss_fns:doubled"})) == {}
    assert _issues(make_config(loss={"token_weights": {"<|im_end|>": 2.0}})) == {}
    issue = _issues(
        make_config(loss={"token_weights": {"<|im_end|>": 2.0, "<|im_end|><|im_start|>": 2.0}})
    )
    error = issue["token_weights_invalid"]
    assert (
        "'<|im_end|><|im_start|>' is 2 tokens here" in error.message
        and error.field == "loss.token_weights"
    )


def test_preflight_checks_class_weights_against_the_labels_and_the_task(
    tmp_path: Path, make_config
) -> None:
    from tests.training.test_tasks import write_sentiment_csv

    from tunelab.testing import build_tiny_encoder
    from tunelab.training import TrainConfig

    bert = build_tiny_encoder(tmp_path / "bert", ["the film was great", "the film was awful"] * 8)
    data = write_sentiment_csv(tmp_path / "sentiment.csv")
    base = {"model": str(bert), "dataset": str(data), "task": "auto", "save_steps": 0}
    assert (
        _issues(TrainConfig.model_validate({**base, "loss": {"class_weights": {"positive": 2}}}))
        == {}
    )
    wrong = _issues(TrainConfig.model_validate({**base, "loss": {"class_weights": {"postive": 2}}}))
    error = wrong["class_weights_invalid"]
    assert "'postive'" in error.message and "negative, positive" in error.hint
    # task auto: which weights apply is known once the model is read
    assert "loss_not_applicable" in _issues(make_config(loss={"class_weights": {"positive": 2}}))
    assert "loss_not_applicable" in _issues(
        TrainConfig.model_validate({**base, "loss": {"token_weights": {"a": 2}}})
    )


def test_config_names_every_mistake_in_the_loss_block() -> None:
    from tunelab.training.config import load_config_dict

    with pytest.raises(ConfigError) as caught:
        load_config_dict({"dataset": "d.json", "task": "regression", "loss": {
            "label_smoothing": 0.1, "loss_fn": "not a function", "token_weights": {"x": -1}}})  # fmt: skip
    message = caught.value.message
    assert "'not a function' is not 'package.module:function'" in message
    assert "`loss.token_weights` weights must be between 0 and 1000" in message
    with pytest.raises(ConfigError, match="label_smoothing"):
        load_config_dict({"dataset": "d.json", "loss": {"label_smoothing": 1.0}})
    with pytest.raises(ConfigError, match="does not apply to `task: regression`"):
        load_config_dict(
            {"dataset": "d.json", "task": "regression", "loss": {"label_smoothing": 0.1}}
        )


@pytest.mark.slow  # two `tunelab` processes: about a minute on a busy 2-core machine
def test_the_local_cli_trains_with_a_loss_fn_from_a_module_beside_the_config(tiny_model_dir: Path,
                                                                           identity_file: Path, tmp_path: Path) -> None:  # fmt: skip
    import os
    import subprocess
    import sys

    (tmp_path / "my_losses.py").write_text(
        "from pathlib import Path\nimport torch.nn.functional as F\n\n"
        "def smoothed(logits, targets, **context):\n"
        "    Path(__file__).with_name('called').write_text(context['task'])\n"
        "    return F.cross_entropy(logits, targets, label_smoothing=0.2, reduction='sum')\n"
    )
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model: {tiny_model_dir}\ndataset: {identity_file.name}\nmax_length: 96\nmax_steps: 2\n"
                      "output:\n  evaluate: false\n  eval_generations: 0\nloss:\n  loss_fn: my_losses:smoothed\n")  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }

    def tunelab(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from tunelab.cli.main import run; run()", *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**env, **extra})  # fmt: skip

    done = tunelab("train", str(config), "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "called").read_text() == "causal_lm"
    bad = tunelab("train", str(config), "loss.loss_fn=my_losses:nothing_here", "--check")
    assert bad.returncode == 1 and "has no attribute 'nothing_here'" in bad.stderr
    assert "Hint:" in bad.stderr and "Traceback" not in bad.stderr
