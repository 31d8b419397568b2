"""Saved configurations with a stable, readable id, and "the best configuration so far".

The id (the guide's "UID") spells the fields people compare configurations by,
in the guide's order ``[epochs][learning_rate][batch_size][lora_r][lora_alpha][mode]``,
followed by a digest of the whole content, so the same values always give the
same id, the six fields can be read back from the id alone, and two
configurations that share those six fields but differ in model, dataset or any
other hyperparameter never share an id. Every part is lowercase base 36 (or
hex for the digest) at a fixed width, 26 characters in all:

| part | width | encoding |
| --- | --- | --- |
| epochs | 2 | base 36 |
| learning_rate | 6 | base 36 of the rate in units of 1e-9; ``000000`` = the method's default |
| batch_size | 2 | base 36 |
| lora_r | 2 | base 36; ``00`` for methods without LoRA settings |
| lora_alpha | 4 | base 36 of alpha x 100; ``0000`` for methods without LoRA settings |
| mode | 1 | ``m`` manual, ``a`` automated |
| digest | 9 | first hex digits of SHA-256 over the canonical JSON of {model, dataset, hyperparameters} |

Fields the configuration leaves out are encoded with TrainConfig's defaults,
so ``{}`` and ``{"epochs": 3}`` (the default) share an id. Ids saved before
this format (``cfg-`` + 16 hex digits) stay readable: they are found by id,
report mode ``manual``, and saving the same content again returns that row.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.errors import InvalidInput, NotFound
from tunelab.jobs.paths import LOCAL, PathAccess
from tunelab.jobs.trainconfig import admit_saved_configuration, normalise_job_config
from tunelab.store.models import Configuration

Mode = Literal["manual", "automated"]
MODES: dict[str, str] = {"manual": "m", "automated": "a"}
_MODE_NAMES = {code: name for name, code in MODES.items()}
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
#: (field, width, scale): the id's parts before the mode letter, in the guide's order.
_PARTS: tuple[tuple[str, int, float], ...] = (
    ("epochs", 2, 1),
    ("learning_rate", 6, 1e9),
    ("batch_size", 2, 1),
    ("lora_r", 2, 1),
    ("lora_alpha", 4, 100),
)
_DIGEST = 9
ID_LENGTH = sum(width for _, width, _ in _PARTS) + 1 + _DIGEST
LEGACY_PREFIX = "cfg-"


def _base36(value: int, width: int) -> str:
    if value < 0:
        raise InvalidInput(f"negative value {value} in a configuration id field", "use values >= 0")
    out, number = "", value
    while value:
        value, digit = divmod(value, 36)
        out = _DIGITS[digit] + out
    if len(out) > width:
        raise InvalidInput(f"value {number} does not fit the configuration id", "use smaller values")
    return out.rjust(width, "0")


def id_fields(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The six id fields of a (normalised) hyperparameter dict, defaults filled in from TrainConfig."""
    from tunelab.training.config import LoraSettings, TrainConfig
    from tunelab.training.methods import get as method_spec

    defaults = TrainConfig.model_fields
    given = hyperparameters.get("lora")
    lora = {**LoraSettings().model_dump(), **(given if isinstance(given, dict) else {})}
    method = hyperparameters.get("method", defaults["method"].default)
    uses_lora = method_spec(str(method)).uses_lora_settings
    return {
        "epochs": hyperparameters.get("epochs", defaults["epochs"].default),
        "learning_rate": hyperparameters.get("learning_rate"),
        "batch_size": hyperparameters.get("batch_size", defaults["batch_size"].default),
        "lora_r": lora["r"] if uses_lora else None,
        "lora_alpha": lora["alpha"] if uses_lora else None,
    }


def _digest(config: dict[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def configuration_id(config: dict[str, Any], mode: Mode = "manual") -> str:
    """The 26-character id of ``{model, dataset, hyperparameters}`` saved in ``mode`` (see module doc)."""
    if mode not in MODES:
        raise InvalidInput(f"unknown configuration mode {mode!r}", "use manual or automated")
    config = normalise_job_config(config)
    fields = id_fields(config["hyperparameters"])
    parts = []
    for name, width, scale in _PARTS:
        value = fields[name]
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
            raise InvalidInput(f"`{name}` must be a number, not {value!r}", f"send {name} as a number")
        parts.append(_base36(0 if value is None else round(float(value) * scale), width))
    return "".join(parts) + MODES[mode] + _digest(config)[:_DIGEST]


def legacy_configuration_id(config: dict[str, Any]) -> str:
    """The id this content had before the readable format (``cfg-`` + 16 hex digits)."""
    return LEGACY_PREFIX + _digest(normalise_job_config(config))[:16]


def decode_configuration_id(config_id: str) -> dict[str, Any]:
    """The fields an id encodes: the six guide fields, ``mode`` and the content ``digest``.

    A legacy ``cfg-`` id decodes to ``{"format": "legacy", "mode": "manual"}``
    (its fields are in the row, not the id). Anything else that is not 26
    characters of the format is ``InvalidInput`` (422).
    """
    if config_id.startswith(LEGACY_PREFIX):
        return {"format": "legacy", "mode": "manual", "digest": config_id[len(LEGACY_PREFIX) :]}
    text = config_id.lower()
    mode_at = ID_LENGTH - _DIGEST - 1
    if len(text) != ID_LENGTH or any(c not in _DIGITS for c in text) or text[mode_at] not in _MODE_NAMES:
        raise InvalidInput(
            f"{config_id!r} is not a configuration id",
            f"an id is {ID_LENGTH} characters: [epochs][learning_rate][batch_size][lora_r][lora_alpha]"
            "[mode][digest]; list configurations to find one",
        )
    out: dict[str, Any] = {"format": "v2"}
    position = 0
    for name, width, scale in _PARTS:
        raw = int(text[position : position + width], 36)
        position += width
        if raw == 0 and name in ("learning_rate", "lora_r", "lora_alpha"):
            out[name] = None  # method default / no LoRA settings
        elif scale == 1:
            out[name] = raw
        else:
            out[name] = round(raw / scale, 12)
    out["mode"] = _MODE_NAMES[text[mode_at]]
    out["digest"] = text[mode_at + 1 :]
    return out


def hyperparameters_from_id(config_id: str) -> dict[str, Any]:
    """The TrainConfig fields an id spells (what a job gets from an id that was never saved)."""
    fields = decode_configuration_id(config_id)
    if fields["format"] == "legacy":
        raise InvalidInput(f"{config_id!r} is a legacy id; it holds no values", "use a saved configuration")
    out: dict[str, Any] = {"epochs": fields["epochs"], "batch_size": fields["batch_size"]}
    if fields["learning_rate"] is not None:
        out["learning_rate"] = fields["learning_rate"]
    if fields["lora_r"] is not None:
        out["lora"] = {"r": fields["lora_r"], "alpha": fields["lora_alpha"]}
    return out


def configuration_mode(config_id: str | None) -> Mode:
    """The mode an id records; ``manual`` for legacy ids, None or ids of another shape."""
    if not config_id:
        return "manual"
    try:
        return decode_configuration_id(config_id)["mode"]  # type: ignore[no-any-return]
    except InvalidInput:
        return "manual"


def configuration_dict(row: Configuration) -> dict[str, Any]:
    """A row as the API shows it: its columns plus ``uid`` (the guide's name), ``mode`` and ``fields``."""
    out = row.to_dict()
    out["uid"] = row.id
    out["mode"] = configuration_mode(row.id)
    out["fields"] = id_fields(normalise_job_config(_content(row))["hyperparameters"])
    return out


def _content(row: Configuration) -> dict[str, Any]:
    return {"model": row.model, "dataset": row.dataset, "hyperparameters": row.hyperparameters}


def save_configuration(
    session: Session,
    config: dict[str, Any],
    *,
    name: str = "",
    mode: Mode = "manual",
    commit: bool = True,
    paths: PathAccess = LOCAL,
) -> Configuration:
    """Save (or find) a configuration; the same content and mode always get the same id.

    Server paths in it are checked as a job's are (``paths``, ``tunelab.jobs.paths``).
    """
    config = admit_saved_configuration(session, normalise_job_config(config), paths)
    config_id = configuration_id(config, mode)
    row = session.get(Configuration, config_id)
    if row is None and mode == "manual":
        row = session.get(Configuration, legacy_configuration_id(config))  # saved before the format
    if row is None:
        row = Configuration(
            id=config_id,
            name=name,
            model=config["model"],
            dataset=config["dataset"],
            hyperparameters=config["hyperparameters"],
        )
        session.add(row)
    elif name:
        row.name = name
    if commit:
        session.commit()
    else:
        session.flush()
    return row


def find_configuration(session: Session, config_id: str) -> Configuration | None:
    """The saved configuration with this id (any letter case), or None."""
    return session.get(Configuration, config_id) or session.get(Configuration, config_id.lower())


def get_configuration(session: Session, config_id: str) -> Configuration:
    row = find_configuration(session, config_id)
    if row is None:
        raise NotFound(f"no configuration {config_id!r}", "list configurations first")
    return row


def list_configurations(
    session: Session,
    *,
    model: str | None = None,
    dataset: str | None = None,
    mode: Mode | None = None,
) -> list[Configuration]:
    query = select(Configuration)
    if model:
        query = query.where(Configuration.model == model)
    if dataset:
        query = query.where(Configuration.dataset == dataset)
    rows = list(session.scalars(query.order_by(Configuration.created_at)))
    return [row for row in rows if mode is None or configuration_mode(row.id) == mode]


def record_result(
    session: Session,
    config: dict[str, Any],
    metrics: dict[str, Any],
    *,
    job_id: str,
    configuration_id: str | None = None,
    commit: bool = True,
) -> Configuration:
    """Attach a finished job's eval metrics; keeps the best (lowest eval loss) result.

    ``configuration_id`` is the saved configuration the job started from: its
    mode carries over, so a job run from an automated configuration with the
    same content ranks that configuration.
    """
    row = save_configuration(session, config, mode=configuration_mode(configuration_id), commit=commit)
    eval_loss = metrics.get("eval_loss")
    if isinstance(eval_loss, int | float) and (row.eval_loss is None or eval_loss < row.eval_loss):
        row.eval_loss = float(eval_loss)
        row.metrics = dict(metrics)
        row.job_id = job_id
    if commit:
        session.commit()
    return row


def best_configuration(
    session: Session,
    model: str | None = None,
    dataset: str | None = None,
    *,
    mode: Mode | None = None,
) -> Configuration:
    """The evaluated configuration with the lowest eval loss, over all or narrowed by the filters."""
    query = select(Configuration).where(Configuration.eval_loss.is_not(None))
    if model:
        query = query.where(Configuration.model == model)
    if dataset:
        query = query.where(Configuration.dataset == dataset)
    rows = session.scalars(query.order_by(Configuration.eval_loss, Configuration.created_at))
    row = next((r for r in rows if mode is None or configuration_mode(r.id) == mode), None)
    if row is None:
        scope = ", ".join(
            f"{key} {value!r}" for key, value in (("model", model), ("dataset", dataset), ("mode", mode)) if value
        )
        raise NotFound(
            "no evaluated configuration" + (f" for {scope}" if scope else " yet"),
            "run a job with an eval split; its eval loss ranks the configuration",
        )
    return row
