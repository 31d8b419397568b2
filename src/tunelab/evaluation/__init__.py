"""Evaluation: eval loss and perplexity, and base-versus-tuned comparisons."""
