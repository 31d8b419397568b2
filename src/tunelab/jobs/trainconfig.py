"""From a job's ``{model, dataset, hyperparameters}`` to the engine's TrainConfig.

The API speaks in studio terms (a stored dataset version id or name, a model
from the collection, a flat dict of hyperparameters); the engine only knows
files. This module is the translation, used twice: at job creation to reject a
bad configuration with 422 before it is queued, and by the worker to write the
run directory's ``config.json``. Datasets (``dataset`` and ``eval_dataset``)
are resolved by the dataset service, the one registry of stored datasets.

It is also where the workflow guide's request shape meets ours, in one place:
its flat hyperparameter names (``lora_r``, ``lora_alpha``, ``lora_dropout``,
``target_modules``; the others already are TrainConfig names), model and
dataset given as ``{uid, name}`` objects, ``hyperparameters.uid`` naming a
saved configuration, and a job's resource needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from tunelab.errors import ConfigError, NotFound
from tunelab.jobs import datasets
from tunelab.jobs.paths import ADMITTED, LOCAL, PathAccess, admit_code, is_path_like, server_path
from tunelab.models import BUILTIN_MODELS
from tunelab.store.models import ModelEntry

#: The guide's flat hyperparameter names -> the TrainConfig field they set (section, field).
#: ``warmup_steps``, ``weight_decay``, ``gradient_accumulation_steps``, ``max_grad_norm``,
#: ``optimizer``, ``scheduler``, ``save_steps``, ``learning_rate``, ``batch_size`` and
#: ``epochs`` are TrainConfig's own top-level names and pass through unchanged.
FLAT_NAMES: dict[str, tuple[str, str]] = {
    "lora_r": ("lora", "r"),
    "lora_alpha": ("lora", "alpha"),
    "lora_dropout": ("lora", "dropout"),
    "target_modules": ("lora", "target_modules"),
}
#: Devices a job may ask for, and what each allows for ``gpus``.
RESOURCE_DEVICES = ("cpu", "cuda", "mps")


def nest_hyperparameters(hyper: dict[str, Any]) -> dict[str, Any]:
    """Flat guide names folded into TrainConfig's sections; a flat and a nested value that disagree is a ConfigError."""
    out = {key: value for key, value in hyper.items() if key not in FLAT_NAMES}
    problems = []
    for flat, (section, field) in FLAT_NAMES.items():
        if flat not in hyper:
            continue
        current = out.get(section)
        if current is None:
            current = {}
        if not isinstance(current, dict):
            problems.append(f"`{section}` must be an object")
            continue
        if field in current and current[field] != hyper[flat]:
            problems.append(f"`{flat}` ({hyper[flat]!r}) contradicts `{section}.{field}` ({current[field]!r})")
            continue
        out[section] = {**current, field: hyper[flat]}
    if problems:
        raise ConfigError(
            "Invalid hyperparameters: " + "; ".join(problems),
            "give each value once, either flat (lora_r) or nested (lora: {r})",
            details={"errors": problems},
        )
    return out


def normalise_job_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check the outer shape and return ``{model, dataset, hyperparameters}``."""
    if not isinstance(config, dict):
        raise ConfigError(
            "the job configuration must be an object", "send {model, dataset, hyperparameters}"
        )
    unknown = sorted(set(config) - {"model", "dataset", "hyperparameters"})
    problems = [f"unknown field `{key}`" for key in unknown]
    if not config.get("model"):
        problems.append("`model` is required")
    if not config.get("dataset"):
        problems.append(
            "`dataset` is required (a stored dataset version id or a dataset name)"
        )
    hyper = config.get("hyperparameters") or {}
    if not isinstance(hyper, dict):
        problems.append("`hyperparameters` must be an object")
    if problems:
        raise ConfigError(
            "Invalid job configuration: " + "; ".join(problems),
            "send {model, dataset, hyperparameters: {...}}; hyperparameters are TrainConfig fields",
            details={"errors": problems},
        )
    return {
        "model": str(config["model"]),
        "dataset": str(config["dataset"]),
        "hyperparameters": nest_hyperparameters(dict(hyper)),
    }


def resolve_model(session: Session, model: str, *, paths: PathAccess = LOCAL, field: str = "model") -> str:
    """A model from the user's collection -> its location; a built-in or Hub id as is; a path as ``paths`` allows.

    A Hub-id-shaped name (``org/name``) stays a name: the engine runs in its
    run folder, so it can never mean a folder next to the server.
    """
    entry = session.get(ModelEntry, model)
    if entry is not None and entry.location:
        location = Path(entry.location).expanduser()
        return str(location.resolve()) if location.exists() else entry.location
    if model in BUILTIN_MODELS:
        return model
    if is_path_like(model):
        return str(server_path(model, field, paths))
    if paths.relative and Path(model).expanduser().exists():  # the local CLI: a folder in the current one
        return str(server_path(model, field, paths))
    return model


_CHECKPOINT_NAME = re.compile(r"(checkpoint-)?\d+")


def resolve_resume_from(value: Any, paths: PathAccess) -> Any:
    """``latest`` or a checkpoint name as is; anything else is a checkpoint path, allowed as ``paths`` says."""
    if not isinstance(value, str) or not value or value == "latest" or _CHECKPOINT_NAME.fullmatch(value):
        return value
    return str(server_path(value, "hyperparameters.resume_from", paths))


def _mix_datasets(hyper: dict[str, Any], convert: Callable[[str, str], str]) -> None:
    """``convert(value, field)`` on every ``dataset_mix`` entry's dataset: the same rules as for ``dataset``."""
    mix = hyper.get("dataset_mix")
    if not isinstance(mix, list):
        return  # not a list: TrainConfig's validation names the problem
    hyper["dataset_mix"] = [
        {**entry, "dataset": convert(entry["dataset"], f"hyperparameters.dataset_mix.{i}.dataset")}
        if isinstance(entry, dict) and isinstance(entry.get("dataset"), str) and entry["dataset"] else entry
        for i, entry in enumerate(mix)
    ]


def admit_job_config(session: Session, config: dict[str, Any], paths: PathAccess) -> dict[str, Any]:
    """The configuration to store: names unchanged, every server path checked against ``paths`` and made absolute.

    What is stored is later run with ``ADMITTED`` access (absolute paths only),
    so a relative name can never turn into a path on another machine or later.
    """
    hyper = dict(config["hyperparameters"])
    admit_code(hyper, paths)  # loss.loss_fn is code: admins and the local CLI only (403 otherwise)
    if isinstance(hyper.get("eval_dataset"), str) and hyper["eval_dataset"]:
        hyper["eval_dataset"] = datasets.admit(session, hyper["eval_dataset"], paths=paths,
                                               field="hyperparameters.eval_dataset")  # fmt: skip
    _mix_datasets(hyper, lambda value, field: datasets.admit(session, value, paths=paths, field=field))
    if "resume_from" in hyper:
        hyper["resume_from"] = resolve_resume_from(hyper["resume_from"], paths)
    model = config["model"]
    if session.get(ModelEntry, model) is None:
        model = resolve_model(session, model, paths=paths)
    return {
        "model": model,
        "dataset": datasets.admit(session, config["dataset"], paths=paths, field="configuration.dataset"),
        "hyperparameters": hyper,
    }


def admit_saved_configuration(session: Session, config: dict[str, Any], paths: PathAccess) -> dict[str, Any]:
    """A configuration saved for later: names kept (a dataset need not be stored yet), server paths as for a job.

    Only path-like values (``tunelab.jobs.paths.is_path_like``) are paths here,
    so saving answers the same whether a path exists or not.
    """
    hyper = dict(config["hyperparameters"])
    admit_code(hyper, paths)

    def dataset(value: Any, field: str) -> Any:
        if isinstance(value, str) and is_path_like(value) and not datasets.is_stored(session, value):
            return str(server_path(value, field, paths))
        return value

    if "eval_dataset" in hyper:
        hyper["eval_dataset"] = dataset(hyper["eval_dataset"], "hyperparameters.eval_dataset")
    _mix_datasets(hyper, dataset)
    if "resume_from" in hyper:
        hyper["resume_from"] = resolve_resume_from(hyper["resume_from"], paths)
    model = config["model"]
    if is_path_like(model) and session.get(ModelEntry, model) is None:
        model = str(server_path(model, "model", paths))
    return {"model": model, "dataset": dataset(config["dataset"], "configuration.dataset"), "hyperparameters": hyper}


def build_train_config(
    session: Session, config: dict[str, Any], *, name: str = "run", paths: PathAccess = LOCAL
) -> dict[str, Any]:
    """The TrainConfig dict (validated) for a job configuration; raises ConfigError.

    The worker calls it with ``ADMITTED`` for a stored job; every path it
    writes into ``config.json`` is absolute (the engine's folder is its run).
    """
    from tunelab.training.config import load_config_dict

    config = normalise_job_config(config)
    data = dict(config["hyperparameters"])
    data["model"] = resolve_model(session, config["model"], paths=paths)
    data["dataset"] = datasets.resolve(session, config["dataset"], paths=paths, field="configuration.dataset")
    if isinstance(data.get("eval_dataset"), str) and data["eval_dataset"]:
        data["eval_dataset"] = datasets.resolve(session, data["eval_dataset"], paths=paths,
                                                field="hyperparameters.eval_dataset")  # fmt: skip
    _mix_datasets(data, lambda value, field: datasets.resolve(session, value, paths=paths, field=field))
    if "resume_from" in data:
        data["resume_from"] = resolve_resume_from(data["resume_from"], paths)
    data.setdefault("name", name[:100] or "run")
    return load_config_dict(data).model_dump(mode="json")


def validate_job_config(session: Session, config: dict[str, Any], paths: PathAccess = LOCAL) -> dict[str, Any]:
    """Normalise, admit and validate now, so a job that cannot start is refused at creation."""
    admitted = admit_job_config(session, normalise_job_config(config), paths)
    build_train_config(session, admitted, paths=ADMITTED)
    return admitted


def _reference(value: Any, field: str) -> list[str]:
    """The names to try for a model or dataset given as a string or a ``{uid | id, name}`` object."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, dict):
        return [str(value[key]) for key in ("uid", "id", "name") if isinstance(value.get(key), str) and value[key]]
    raise ConfigError(f"`{field}` must be a string or an object with `uid`", f"send {field}: {{uid, name}}")


def _dataset_reference(session: Session, value: Any, paths: PathAccess = LOCAL) -> str:
    """The reference that resolves: the uid (or id) first, then the name of a stored dataset.

    The name is only looked up among stored datasets, never as a path, so a
    label can never point the engine at a file.
    """
    from tunelab.store.catalog import get_dataset

    candidates = _reference(value, "dataset")
    if not candidates:
        raise ConfigError("`dataset` is required", "send dataset: {uid, name} or a stored dataset id")
    if isinstance(value, str):
        return value
    name = value.get("name") if isinstance(value.get("name"), str) else None
    first_error: ConfigError | None = None
    refused: ConfigError | NotFound | None = None
    for candidate in candidates:
        try:
            if candidate == name:
                return get_dataset(session, candidate).id
            datasets.resolve(session, candidate, paths=paths, field="configuration.dataset")
            return candidate
        except (ConfigError, NotFound) as error:
            if error.code == "path_not_allowed":
                refused = refused or error  # the name may still be a stored dataset
                continue
            first_error = first_error or ConfigError(error.message, error.hint)
    if refused is not None:
        raise refused  # the one refusal of a server path, never "not stored" with the path in it
    assert first_error is not None
    raise ConfigError(
        f"dataset {value!r} is not a stored dataset: {first_error.message}",
        "upload it first (POST /api/datasets), then send its id as `uid` or its name as `name`",
        details={"dataset": value},
    )


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def job_request(
    session: Session, configuration: dict[str, Any] | None, configuration_id: str | None,
    paths: PathAccess = LOCAL,
) -> tuple[dict[str, Any], str | None, list[str]]:
    """A job body's configuration -> ``({model, dataset, hyperparameters}, saved id, warnings)``.

    Either ``configuration`` (model and dataset as strings or ``{uid, name}``,
    hyperparameters with the guide's names and an optional ``uid``) or a saved
    ``configuration_id``. ``hyperparameters.uid`` names a saved configuration:
    its hyperparameters are the base and the values sent override them. An id
    in the readable format that was never saved gives the values it spells. Any
    other unknown uid is only accepted beside explicit values, which are then
    used as sent, with a warning saying so.
    """
    from tunelab.errors import InvalidInput
    from tunelab.jobs import configurations

    if (configuration is None) == (configuration_id is None):
        raise InvalidInput(
            "give exactly one of `configuration` and `configuration_id`",
            "send configuration {model, dataset, hyperparameters} or a saved configuration_id",
        )
    if configuration is None:
        saved = configurations.get_configuration(session, configuration_id or "")
        return {"model": saved.model, "dataset": saved.dataset, "hyperparameters": saved.hyperparameters}, saved.id, []
    model_value = configuration.get("model")
    models = _reference(model_value, "model")
    if isinstance(model_value, dict) and not (model_value.get("uid") or model_value.get("id")):
        models = []  # a name alone is a label, not a model
    if not models:
        raise ConfigError("`model` needs a `uid` (or `id`)", "send model: {uid, name}, uid being a model id")
    hyper = dict(configuration.get("hyperparameters") or {})
    uid, warnings, saved_id = hyper.pop("uid", None), [], None
    if uid is not None and not isinstance(uid, str):
        raise ConfigError("`hyperparameters.uid` must be a string", "send the id of a saved configuration")
    if uid:
        row = configurations.find_configuration(session, uid)
        if row is not None:
            base, saved_id = dict(row.hyperparameters), row.id
        else:
            try:
                base = configurations.hyperparameters_from_id(uid)
            except InvalidInput:
                if not hyper:
                    raise NotFound(
                        f"no configuration {uid!r}", "save it (POST /api/configurations) or send the values"
                    ) from None
                base = {}
                warnings.append(f"hyperparameters.uid {uid!r} is not a saved configuration; the values sent were used")
        hyper = _merge(base, nest_hyperparameters(hyper))
    config = {
        "model": models[0],
        "dataset": _dataset_reference(session, configuration.get("dataset"), paths),
        "hyperparameters": hyper,
    }
    return config, saved_id, warnings


def check_resources(resources: dict[str, Any] | None, config: dict[str, Any]) -> dict[str, Any] | None:
    """A job's stated needs ``{device, gpus, memory_gb}``, checked and completed; ConfigError otherwise.

    Stored with the job now (scheduling on them is the scale-out work). ``cuda``
    defaults to one GPU, ``cpu`` allows none, ``mps`` at most one; a device that
    contradicts ``hyperparameters.device`` is refused.
    """
    if resources is None:
        return None
    if not isinstance(resources, dict):
        raise ConfigError("`resources` must be an object", "send resources: {device, gpus, memory_gb}")
    problems = [f"unknown field `resources.{key}`" for key in sorted(set(resources) - {"device", "gpus", "memory_gb"})]
    resources = {key: value for key, value in resources.items() if value is not None}
    device = resources.get("device", "cpu")
    if device not in RESOURCE_DEVICES:
        problems.append(f"`resources.device` must be one of {', '.join(RESOURCE_DEVICES)}, not {device!r}")
    gpus = resources.get("gpus", 1 if device == "cuda" else 0)
    if not isinstance(gpus, int) or isinstance(gpus, bool) or not 0 <= gpus <= 64:
        problems.append("`resources.gpus` must be a whole number from 0 to 64")
    elif device == "cpu" and gpus:
        problems.append("`resources.device: cpu` takes no GPUs; ask for device cuda")
    elif device == "cuda" and gpus < 1:
        problems.append("`resources.device: cuda` needs at least one GPU")
    elif device == "mps" and gpus > 1:
        problems.append("`resources.device: mps` has one GPU")
    memory = resources.get("memory_gb")
    if memory is not None and (not isinstance(memory, int | float) or isinstance(memory, bool) or not 0 < memory <= 1_000_000):
        problems.append("`resources.memory_gb` must be a positive number of gigabytes")
    wanted = ((config or {}).get("hyperparameters") or {}).get("device")
    if wanted not in (None, "auto") and device in ("cpu", "cuda") and wanted != device:
        problems.append(f"`resources.device: {device}` contradicts `hyperparameters.device: {wanted}`")
    if problems:
        raise ConfigError(
            "Invalid resources: " + "; ".join(problems),
            "send resources: {device: cpu|cuda|mps, gpus, memory_gb}",
            details={"errors": problems},
        )
    return {"device": device, "gpus": gpus, "memory_gb": memory}
