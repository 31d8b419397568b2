"""Optimizer and learning-rate schedule from the config."""

from __future__ import annotations

from typing import Any

from tunelab.training.config import TrainConfig


def build_optimizer(config: TrainConfig, model: Any) -> Any:
    """AdamW (no decay on biases and norms), Adafactor, SGD or 8-bit AdamW."""
    import torch

    decay, no_decay = [], []
    for _name, param in model.named_parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    lr = config.peak_learning_rate
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    if config.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(groups, lr=lr, scale_parameter=False, relative_step=False, warmup_init=False)
    import bitsandbytes as bnb

    return bnb.optim.AdamW8bit(groups, lr=lr)


def warmup_steps(config: TrainConfig, total_steps: int) -> int:
    if config.warmup_steps:
        return min(config.warmup_steps, total_steps)
    return int(config.warmup_ratio * total_steps)


def build_scheduler(config: TrainConfig, optimizer: Any, total_steps: int) -> Any:
    """Warm-up then cosine, linear, constant or cosine with two restarts."""
    from transformers import get_scheduler

    name = {"constant": "constant_with_warmup"}.get(config.scheduler, config.scheduler)
    extra = {"num_cycles": 2} if config.scheduler == "cosine_with_restarts" else None
    return get_scheduler(
        name,
        optimizer,
        num_warmup_steps=warmup_steps(config, total_steps),
        num_training_steps=total_steps,
        scheduler_specific_kwargs=extra,
    )
