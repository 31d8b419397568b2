"""Request bodies copied from the workflow guide (the seed), unchanged, for the contract tests."""

from __future__ import annotations

import json
from typing import Any

# "2.3 Model Management", Add Model to Collection
MODEL_BODY: dict[str, Any] = json.loads("""{
    "id": "meta-llama/Llama-3.1-8B-Instruct",
    "name": "Llama 3.1 8B Instruct",
    "provider": "Meta",
    "category": "Instruction Following"
  }""")

# "4.1 Create Fine-tuning Job", Via API
JOB_BODY: dict[str, Any] = json.loads("""{
    "name": "Customer Support Fine-tuning",
    "description": "Fine-tune Llama for customer support responses",
    "tags": ["customer-support", "llama", "production"],
    "configuration": {
      "model": {
        "uid": "meta-llama/Llama-3.1-8B-Instruct",
        "name": "Llama 3.1 8B Instruct"
      },
      "dataset": {
        "uid": "dataset_1751023766790_b0zqofldb",
        "name": "Customer Support Q&A"
      },
      "hyperparameters": {
        "uid": "00000005k0008000300100002s",
        "learning_rate": 0.0002,
        "batch_size": 8,
        "epochs": 3
      }
    },
    "modelSaving": {
      "saveModel": true,
      "modelName": "customer-support-llama-v1",
      "pushToHub": false,
      "makePublic": false
    }
  }""")

# "Configuration Comparison"
COMPARE_BODY: dict[str, Any] = json.loads("""{
    "job_ids": ["job_123", "job_456", "job_789"],
    "metrics": ["final_loss", "training_time", "gpu_hours"]
  }""")

# "3.2 Key Hyperparameters": Learning, LoRA and Advanced parameters, merged
HYPERPARAMETERS: dict[str, Any] = {
    **json.loads("""{"learning_rate": 0.0002, "batch_size": 8, "epochs": 3, "warmup_steps": 500,
                    "weight_decay": 0.01}"""),
    **json.loads("""{"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}"""),
    **json.loads("""{"gradient_accumulation_steps": 4, "max_grad_norm": 1.0, "optimizer": "adamw",
                    "scheduler": "cosine", "save_steps": 500}"""),
}
