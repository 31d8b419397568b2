"""Evaluation above the engine: generation metrics, judges, retention probes and A/B comparisons.

This part may build on the engine (it sits above ``tunelab.training``), never
the other way round. What a run measures about itself, eval loss, perplexity
and the base-versus-tuned document in ``output/evaluation.json``, is the
engine's own job and lives in ``tunelab.training.evaluate``; generation goes
through the model runtime's ``tunelab.models.generation``.
"""
