"""tunelab: a self-hosted studio for fine-tuning large language models."""

__version__ = "0.1.0"
