"""Optuna, opened on the store's own database: storage, distributions, samplers, pruners.

The study's tables are created by our migration 0005 (Optuna's own metadata),
so the storage is opened with table creation and Optuna's version check off:
the database's ``alembic_version`` belongs to tunelab, not to Optuna.

Samplers hold no state in the storage, so every ``ask`` builds one afresh with
seed ``sweep.seed + trials so far``: deterministic across restarts, and never
the same random stream twice (a fixed seed would repeat the first trial's
values after each restart). The grid sampler is the exception: its seed
shuffles the grid once, and its ids must keep naming the same points.
"""

from __future__ import annotations

import threading
from typing import Any

from tunelab.sweeps.space import grid_space

_lock = threading.Lock()
_storages: dict[str, Any] = {}


def storage(url: str) -> Any:
    """One Optuna ``RDBStorage`` per database URL (its engine and pool are reused)."""
    import optuna

    with _lock:
        found = _storages.get(url)
        if found is None:
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if url.startswith("sqlite"):
                kwargs = {"connect_args": {"timeout": 30}}
            found = optuna.storages.RDBStorage(
                url, engine_kwargs=kwargs, skip_compatibility_check=True, skip_table_creation=True
            )
            _storages[url] = found
        return found


def quiet() -> None:
    """Optuna logs every trial at INFO; the sweep's own table and events say it better."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def distributions(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Optuna distributions for a checked search space (``space.check_space``)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            out[name] = CategoricalDistribution(spec["choices"])
        elif spec["type"] == "int":
            out[name] = IntDistribution(int(spec["low"]), int(spec["high"]), log=spec.get("log", False),
                                        step=int(spec.get("step") or 1))  # fmt: skip
        else:
            out[name] = FloatDistribution(spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step"))
    return out


def startup_trials(n_trials: int | None) -> int:
    """Random trials before TPE/GP model the results: a third of the budget, 2 to 10."""
    return max(2, min(10, (n_trials or 30) // 3))


def make_sampler(kind: str, space: dict[str, dict[str, Any]], seed: int, n_trials: int | None, parallel: int) -> Any:
    import optuna

    if kind == "grid":
        return optuna.samplers.GridSampler(grid_space(space), seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials(n_trials))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(n_trials),
                                      constant_liar=parallel > 1)  # fmt: skip


def make_pruner(config: dict[str, Any] | None) -> Any:
    import optuna

    if not config:
        return optuna.pruners.NopPruner()
    if config["type"] == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=config.get("min_resource", 1), reduction_factor=config.get("reduction_factor", 3)
        )
    if config["type"] == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=config.get("min_resource", 1), reduction_factor=config.get("reduction_factor", 3)
        )
    return optuna.pruners.MedianPruner(
        n_startup_trials=config.get("n_startup_trials", 1), n_warmup_steps=config.get("n_warmup_steps", 0)
    )


def create(url: str, study_name: str, direction: str) -> None:
    import optuna

    quiet()
    optuna.create_study(study_name=study_name, storage=storage(url), direction=direction)


def load(url: str, sweep: Any, *, seed_offset: int = 0) -> Any:
    """The sweep's study with its sampler (seeded for the next ask) and pruner."""
    import optuna

    quiet()
    # The grid's order is a shuffle by seed: its seed must never change, or grid ids would name other points.
    seed = sweep.seed if sweep.sampler == "grid" else sweep.seed + seed_offset
    sampler = make_sampler(sweep.sampler, sweep.search, seed, sweep.n_trials, sweep.parallel)
    return optuna.load_study(study_name=sweep.study_name, storage=storage(url), sampler=sampler,
                             pruner=make_pruner(sweep.pruner))  # fmt: skip
