"""Experiment trackers (``report_to``): TensorBoard, MLflow or Weights & Biases.

``metrics.jsonl`` stays the source of truth; a tracker is a copy for people who
already live in one of these tools. ``TrackerReporter`` wraps the caller's
Reporter (composition) and mirrors every metrics line at its step, plus the
resolved config as hyperparameters; when the run completes, ``config.json``
and ``output/`` go to MLflow and W&B as artifacts. It is driven by the run's own events: it
opens on ``started`` (after ``config.json`` is resolved and after ``resumed``
told it the checkpoint step) and flushes on checkpoints and terminal events.
Tracker libraries are imported only then, and a tracker error never ends the
run: it becomes one ``warning`` event and the tracker is switched off.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from tunelab.training.config import TrainConfig
from tunelab.training.rundir import Reporter, RunFiles

_FLUSH_EVENTS = {"checkpoint_saved", "paused", "early_stopped", "completed", "failed"}
_STATE_FILE = "trackers.json"  # run ids, so a resumed run continues the same MLflow / W&B run


class Backend(Protocol):
    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, values: dict[str, float], step: int) -> None: ...

    def flush(self) -> None: ...

    def log_outputs(self, run_dir: Path) -> None: ...

    def close(self) -> None: ...


def _output_files(run_dir: Path) -> tuple[Path | None, Path | None]:
    """The resolved ``config.json`` and the ``output/`` folder, where they exist."""
    config, output = run_dir / "config.json", run_dir / "output"
    return (config if config.is_file() else None), (output if output.is_dir() else None)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"lora.r": 16, ...}`` with scalar values (lists/None as text)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def metric_values(metrics: dict[str, Any]) -> dict[str, float]:
    """A metrics line -> ``{"train/loss": ..., "eval/loss": ...}`` (numbers only)."""
    kind = str(metrics.get("type", "train"))
    return {f"{kind}/{key.removeprefix(kind + '_')}": float(value) for key, value in metrics.items()
            if key not in ("type", "step") and isinstance(value, int | float) and not isinstance(value, bool)}


class TensorBoardBackend:
    """Event files in RUN_DIR/tensorboard; on resume, steps past the checkpoint are purged."""

    def __init__(self, run_dir: Path, name: str, resume_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = resume_step + 1 if resume_step is not None else None
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge, flush_secs=10)

    def log_params(self, params: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        for summary in hparams(params, {"train/loss": float("nan")}):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("config", "```\n" + json.dumps(params, indent=2) + "\n```")

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def log_outputs(self, run_dir: Path) -> None:
        return None  # TensorBoard already lives in the run folder, next to output/

    def close(self) -> None:
        self.writer.close()


class MlflowBackend:
    """MLflow run named after the config; MLFLOW_TRACKING_URI or a file store in RUN_DIR/mlruns."""

    def __init__(self, run_dir: Path, name: str, run_id: str | None) -> None:
        from mlflow.tracking import MlflowClient

        # MLflow retries a server that does not answer for minutes by default; a tracker that is
        # down must cost the run seconds (then one warning), so retry briefly unless the user chose.
        for variable, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"), ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
                                ("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")):  # fmt: skip
            os.environ.setdefault(variable, value)
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
        self.client = MlflowClient(tracking_uri=uri)
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "tunelab")
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.resumed = run_id is not None
        self.run_id = run_id or self.client.create_run(experiment_id, run_name=name).info.run_id
        if self.resumed:
            self.client.update_run(self.run_id, status="RUNNING")

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        if not self.resumed:  # params are immutable in MLflow; the resumed config is the same
            self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def flush(self) -> None:
        return None

    def log_outputs(self, run_dir: Path) -> None:
        """``config.json`` at the artifact root, the tuned model's files under ``output/``."""
        config, output = _output_files(run_dir)
        if config is not None:
            self.client.log_artifact(self.run_id, str(config))
        if output is not None:
            self.client.log_artifacts(self.run_id, str(output), artifact_path="output")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class WandbBackend:
    """W&B run: project from WANDB_PROJECT (default "tunelab"); WANDB_MODE (offline) is respected."""

    def __init__(self, run_dir: Path, name: str, run_id: str | None) -> None:
        import wandb

        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "tunelab"), name=name, id=run_id,
                              resume="allow", dir=str(run_dir), mode=os.environ.get("WANDB_MODE") or None)
        self.run_id = self.run.id

    def log_params(self, params: dict[str, Any]) -> None:
        self.run.config.update(params, allow_val_change=True)

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)  # W&B ignores steps it has already seen

    def flush(self) -> None:
        return None

    def log_outputs(self, run_dir: Path) -> None:
        """``config.json`` and ``output/`` as one W&B artifact of type ``model`` (staged offline too)."""
        import wandb

        config, output = _output_files(run_dir)
        artifact = wandb.Artifact(f"{self.run.id}-output", type="model")
        if config is not None:
            artifact.add_file(str(config), name="config.json")
        if output is not None:
            artifact.add_dir(str(output), name="output")
        self.run.log_artifact(artifact)

    def close(self) -> None:
        self.run.finish()


class TrackerReporter:
    """A Reporter that mirrors metrics into a tracker, then forwards everything to ``inner``."""

    def __init__(self, kind: str, files: RunFiles, config: TrainConfig, inner: Reporter | None) -> None:
        self.kind, self.files, self.config, self.inner = kind, files, config, inner
        self.backend: Backend | None = None
        self.resume_step: int | None = None
        self.failed = False

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "resumed":
            self.resume_step = int((event.get("data") or {}).get("step", 0))
        elif kind == "started":
            self._guard(self._open)
        elif kind in _FLUSH_EVENTS and self.backend is not None:
            if kind == "completed":  # output/ is written by now: the tuned model goes to the tracker too
                backend = self.backend
                self._guard(lambda: backend.log_outputs(self.files.dir))
            if self.backend is not None:
                self._guard(self.backend.flush)
        if self.inner is not None:
            self.inner.on_event(event)

    def on_metrics(self, metrics: dict[str, Any]) -> None:
        if "step" in metrics:
            self._guard(lambda: self._backend().log_metrics(metric_values(metrics), int(metrics["step"])))
        if self.inner is not None:
            self.inner.on_metrics(metrics)

    def close(self) -> None:
        if self.backend is not None:
            backend, self.backend = self.backend, None
            self._guard(backend.close)

    def _backend(self) -> Backend:
        if self.backend is None:
            self._open()
        assert self.backend is not None
        return self.backend

    def _open(self) -> None:
        if self.backend is not None or self.failed:
            return
        state_path = self.files.dir / _STATE_FILE
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        name, run_dir = self.config.name, self.files.dir
        if self.kind == "tensorboard":
            backend: Any = TensorBoardBackend(run_dir, name, self.resume_step)
        elif self.kind == "mlflow":
            backend = MlflowBackend(run_dir, name, state.get("mlflow_run_id") if self.resume_step else None)
        elif self.kind == "wandb":
            backend = WandbBackend(run_dir, name, state.get("wandb_run_id") if self.resume_step else None)
        else:
            raise ValueError(f"unknown tracker {self.kind!r}")
        if hasattr(backend, "run_id"):
            state[f"{self.kind}_run_id"] = backend.run_id
            state_path.write_text(json.dumps(state))
        self.backend = backend
        backend.log_params(flatten(self._resolved_config()))

    def _resolved_config(self) -> dict[str, Any]:
        try:
            return json.loads((self.files.dir / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            return self.config.model_dump(mode="json")

    def _guard(self, action: Any) -> None:
        """Run a tracker call; the first error becomes a warning event and switches the tracker off."""
        if self.failed:
            return
        try:
            action()
        except Exception as exc:
            self.failed, self.backend = True, None
            self.files.event("warning", f"{self.kind} tracker failed and was switched off: "
                             f"{type(exc).__name__}: {exc}; metrics still go to metrics.jsonl",
                             {"code": "tracker_failed", "tracker": self.kind})


def with_tracker(config: TrainConfig, files: RunFiles, inner: Reporter | None) -> Reporter | None:
    """The reporter the engine uses: ``inner`` itself, or ``inner`` wrapped by the configured tracker."""
    if config.report_to == "none":
        return inner
    return TrackerReporter(config.report_to, files, config, inner)
