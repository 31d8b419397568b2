"""What a sweep searches: the request shape, and the search space checked against TrainConfig.

A sweep names TrainConfig fields (dotted for sections: ``lora.r``; the guide's
flat ``lora_r`` works too) with a range or a list of choices. Every range is
checked here, before any trial exists: the field must be a TrainConfig field
of a searchable type, ``low <= high``, a log scale needs ``low > 0``, and both
ends (each choice) must pass TrainConfig's own validation with the sweep's
other hyperparameters, so a trial can never fail on a value the search chose.
Errors are one ``ConfigError`` that names every bad field (``search.<field>``).
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunelab.errors import ConfigError

Sampler = Literal["grid", "random", "tpe", "gp"]
PrunerKind = Literal["median", "successive_halving", "hyperband"]
Direction = Literal["minimize", "maximize"]
MAX_TRIALS = 1000


class ParamRange(BaseModel):
    """One searched field: ``low``/``high`` (with ``log`` or ``step``) or ``choices``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical"] | None = Field(
        None, description="float, int or categorical; omitted: from the TrainConfig field's type."
    )
    low: float | None = Field(None, description="Lowest value (ranges).")
    high: float | None = Field(None, description="Highest value (ranges).")
    log: bool = Field(False, description="Sample on a log scale (learning rates); needs low > 0.")
    step: float | None = Field(None, gt=0, description="Spacing of values; needed by the grid sampler for floats.")
    choices: list[Any] | None = Field(None, min_length=1, max_length=100, description="Values to choose from.")


class PrunerConfig(BaseModel):
    """Stops poor trials early from their intermediate evaluations (needs ``eval_steps`` > 0)."""

    model_config = ConfigDict(extra="forbid")

    type: PrunerKind = Field("median", description="median, successive_halving or hyperband.")
    n_startup_trials: int = Field(1, ge=0, le=100, description="Median: trials that finish before any is pruned.")
    n_warmup_steps: int = Field(0, ge=0, le=1_000_000, description="Median: steps before a trial may be pruned.")
    min_resource: int = Field(1, ge=1, le=1_000_000, description="Halving/Hyperband: steps every trial gets.")
    reduction_factor: int = Field(3, ge=2, le=10, description="Halving/Hyperband: keep 1 in this many per rung.")


class SweepConfig(BaseModel):
    """A sweep: the base job, what to search, how, and for how long."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field("", max_length=200, description="Label; trial jobs are named '<name> #<n>'.")
    model: str = Field(min_length=1, max_length=500, description="Model id, collection id or Hub id.")
    dataset: str = Field(min_length=1, max_length=500, description="Stored dataset version id or name.")
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description="TrainConfig fields every trial shares (e.g. max_steps, eval_steps)."
    )
    search: dict[str, ParamRange] = Field(
        min_length=1, max_length=20, description="TrainConfig field -> range or choices."
    )
    sampler: Sampler = Field("tpe", description="grid, random, tpe (Bayesian) or gp (Gaussian process).")
    pruner: PrunerConfig | None = Field(None, description="Stop poor trials early; None runs every trial to its end.")
    objective: str = Field(
        "eval_loss", min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
        description="What to optimise: eval_loss, loss, any metric the engine logs, or a value of the "
        "after-job evaluation (rougeL, exact_match, judge_score, probe_right; see docs/sweeps.md).",
    )
    direction: Direction = Field("minimize", description="minimize or maximize the objective.")
    n_trials: int | None = Field(None, ge=1, le=MAX_TRIALS, description="Budget in trials.")
    budget_minutes: float | None = Field(
        None, gt=0, le=10_080, description="Budget in minutes: no new trial starts after it."
    )
    parallel: int = Field(1, ge=1, le=64, description="Trials queued or running at once (capped by workers).")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the sampler.")


def _field_info(name: str) -> tuple[str, Any] | None:
    """(canonical dotted name, annotation) of a TrainConfig field, or None."""
    from tunelab.jobs.trainconfig import FLAT_NAMES
    from tunelab.training.config import TrainConfig

    if name in FLAT_NAMES:
        name = ".".join(FLAT_NAMES[name])
    model: Any = TrainConfig
    annotation: Any = None
    parts = name.split(".")
    for index, part in enumerate(parts):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        annotation = fields[part].annotation
        model = annotation if index < len(parts) - 1 else None
    return name, annotation


def _kinds(annotation: Any) -> tuple[set[str], list[Any] | None]:
    """The searchable kinds of an annotation ({'float','int','categorical'}) and Literal choices."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return {"categorical"}, list(args)
    if origin in (typing.Union, types.UnionType):
        kinds: set[str] = set()
        literals: list[Any] | None = None
        for arg in args:
            if arg is type(None):
                continue
            sub, values = _kinds(arg)
            kinds |= sub
            literals = values or literals
        return kinds, literals
    if annotation is bool:
        return {"categorical"}, [True, False]
    if annotation is int:
        return {"int", "categorical"}, None
    if annotation is float:
        return {"float", "categorical"}, None
    if annotation is str:
        return {"categorical"}, None
    return set(), None


def set_path(hyper: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """A copy of ``hyper`` with dotted field ``name`` set (sections copied, not shared)."""
    out = dict(hyper)
    target = out
    *parents, leaf = name.split(".")
    for part in parents:
        section = dict(target.get(part) or {})
        target[part] = section
        target = section
    target[leaf] = value
    return out


def _check_param(name: str, spec: ParamRange, problems: list[str]) -> tuple[str, ParamRange] | None:
    where = f"search.{name}"
    found = _field_info(name)
    if found is None:
        problems.append(f"`{where}`: `{name}` is not a TrainConfig field")
        return None
    canonical, annotation = found
    kinds, literals = _kinds(annotation)
    kind = spec.type or ("categorical" if spec.choices is not None else next(
        (k for k in ("float", "int") if k in kinds), "categorical"))  # fmt: skip
    if not kinds:
        problems.append(f"`{where}`: `{canonical}` cannot be searched (it is not a number, a name or a switch)")
        return None
    if kind not in kinds:
        problems.append(f"`{where}`: `{canonical}` takes {' or '.join(sorted(kinds))} values, not {kind}")
        return None
    if kind == "categorical":
        if spec.choices is None and (spec.low is not None or spec.high is not None):
            problems.append(f"`{where}`: `{canonical}` takes named values; list them in `choices`, not low/high")
            return None
        choices = spec.choices if spec.choices is not None else literals
        if not choices:
            problems.append(f"`{where}`: give `choices` (a list of values) for a categorical field")
            return None
        if len({repr(c) for c in choices}) != len(choices):
            problems.append(f"`{where}`: `choices` repeat a value")
        return canonical, ParamRange(type="categorical", choices=list(choices))
    if spec.low is None or spec.high is None:
        problems.append(f"`{where}`: a {kind} range needs `low` and `high`")
        return None
    if not (math.isfinite(spec.low) and math.isfinite(spec.high)):
        problems.append(f"`{where}`: `low` and `high` must be finite numbers")
        return None
    if spec.low > spec.high:
        problems.append(f"`{where}`: `low` ({spec.low:g}) is greater than `high` ({spec.high:g})")
        return None
    if spec.log and spec.low <= 0:
        problems.append(f"`{where}`: a log scale needs `low` > 0, not {spec.low:g}")
        return None
    if spec.log and spec.step is not None:
        problems.append(f"`{where}`: give `log` or `step`, not both")
        return None
    if kind == "int" and not all(float(v).is_integer() for v in (spec.low, spec.high, spec.step or 1)):
        problems.append(f"`{where}`: `{canonical}` is an integer field; use whole numbers for low, high and step")
        return None
    return canonical, spec.model_copy(update={"type": kind})


def _values_to_check(spec: ParamRange) -> list[Any]:
    if spec.type == "categorical":
        return list(spec.choices or [])
    cast = int if spec.type == "int" else float
    return [cast(spec.low), cast(spec.high)]  # type: ignore[arg-type]


def check_space(search: dict[str, ParamRange], hyperparameters: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The search space in canonical form (dotted names, types filled in); ``ConfigError`` naming each bad field."""
    from tunelab.jobs.trainconfig import nest_hyperparameters
    from tunelab.training.config import load_config_dict

    problems: list[str] = []
    canonical: dict[str, ParamRange] = {}
    for name, spec in search.items():
        checked = _check_param(name, spec, problems)
        if checked is None:
            continue
        if checked[0] in canonical:
            problems.append(f"`search.{name}`: `{checked[0]}` is searched twice")
            continue
        canonical[checked[0]] = checked[1]
    base = nest_hyperparameters(dict(hyperparameters))
    for name, spec in canonical.items():
        for value in _values_to_check(spec):
            data = set_path({**base, "dataset": "sweep-check"}, name, value)
            try:
                load_config_dict(data)
            except ConfigError as error:
                reasons = "; ".join((error.details or {}).get("errors", [error.message]))
                problems.append(f"`search.{name}`: the value {value!r} is not accepted ({reasons})")
                break
    if problems:
        raise ConfigError(
            "Invalid search space: " + "; ".join(problems),
            "fix the fields named above; ranges are TrainConfig fields (see `tunelab train --help`)",
            details={"errors": problems, "fields": [p.split("`")[1] for p in problems]},
        )
    return {name: spec.model_dump(exclude_none=True) for name, spec in canonical.items()}


def grid_values(spec: dict[str, Any]) -> list[Any] | None:
    """Every value a grid visits for one parameter; None when the range is continuous."""
    if spec["type"] == "categorical":
        return list(spec["choices"])
    step = spec.get("step") or (1 if spec["type"] == "int" else None)
    if step is None:
        return None
    count = math.floor((spec["high"] - spec["low"]) / step + 1e-9) + 1
    values = [spec["low"] + i * step for i in range(count)]
    return [round(v) for v in values] if spec["type"] == "int" else [round(v, 12) for v in values]


def grid_space(space: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    """The grid sampler's search space; ``ConfigError`` naming each float range without a ``step``."""
    grid, problems = {}, []
    for name, spec in space.items():
        values = grid_values(spec)
        if values is None:
            problems.append(f"`search.{name}`: the grid sampler needs `step` or `choices` for a float range")
        else:
            grid[name] = values
    if problems:
        raise ConfigError("Invalid grid: " + "; ".join(problems), "add `step`, list `choices`, or use sampler tpe",
                          details={"errors": problems})  # fmt: skip
    return grid


def grid_size(space: dict[str, dict[str, Any]]) -> int:
    return math.prod(len(values) for values in grid_space(space).values())
