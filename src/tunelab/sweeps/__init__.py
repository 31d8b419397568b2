"""Hyperparameter sweeps on Optuna whose trials are ordinary jobs.

``space`` checks what is searched against TrainConfig; ``study`` opens Optuna
on the store's own database (samplers: grid, random, tpe, gp; pruners:
median, successive halving, hyperband); ``service`` creates, lists, cancels
sweeps and reads trials, importances and the best configuration;
``driver`` turns Optuna's trials into queued jobs and their metrics back into
Optuna's reports; ``propose`` is automated mode (ranges from model and
dataset size, with reasons).
"""

from tunelab.sweeps.space import ParamRange, PrunerConfig, SweepConfig

__all__ = ["ParamRange", "PrunerConfig", "SweepConfig"]
