"""Run by ``torchrun`` from test_distributed.py: DeepSpeed ZeRO-2 on the CPU with the config tunelab writes.

Each rank trains a small regression for 20 steps through ``deepspeed.initialize``
and prints one JSON line: its ZeRO stage and its first and last loss.
"""

from __future__ import annotations

import json
import os

import deepspeed
import torch

from tunelab.training.config import DistributedSettings
from tunelab.training.distributed import deepspeed_config


def main() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    settings = DistributedSettings(strategy="deepspeed", nproc_per_node=2, zero_stage=2)
    config = deepspeed_config(
        settings, micro_batch=4, accumulation=1, max_grad_norm=1.0, precision="fp32"
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    rank = int(os.environ["RANK"])
    inputs = torch.randn(64, 16)
    targets = inputs.sum(1, keepdim=True)
    mine_x, mine_y = inputs[rank::2], targets[rank::2]
    losses = []
    for step in range(20):
        at = (step * 4) % len(mine_x)
        loss = torch.nn.functional.mse_loss(engine(mine_x[at : at + 4]), mine_y[at : at + 4])
        engine.backward(loss)
        engine.step()
        losses.append(float(loss.detach()))
    line = {
        "rank": rank,
        "stage": engine.zero_optimization_stage(),
        "first": losses[0],
        "last": losses[-1],
    }
    print("RESULT " + json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
