"""The training recipe: setup, one visible loop, checkpoints, finish.

Read top to bottom: ``Recipe.setup`` builds hardware choices, data, model,
optimizer and schedule and restores a checkpoint when there is one;
``Recipe.train`` is the loop (micro-batches -> backward -> clip -> step, then
logging, eval, checkpoint and stop checks); ``Recipe.finish`` saves the output and
evaluates base against tuned. ``run_training`` wraps it with error reporting.

Between steps the loop reads the control file once (``StopSignal.poll``) and
applies what it asks: checkpoint now, a new learning rate for the next step,
stop early with the current weights, or pause. Health is checked at logging
steps only (``diagnostics.py`` over the recent metric lines), as is the
adapters' update-to-weight ratio, so neither costs anything per step.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections import deque
from typing import Any

from tunelab import __version__
from tunelab.errors import PreflightFailed
from tunelab.models.loading import load_tokenizer, read_labels, resolve_model_path
from tunelab.training import allocator, exit_codes
from tunelab.training.batching import (
    Batch,
    make_batch,
    make_labeled_batch,
    make_seq2seq_batch,
    plan_epoch,
)
from tunelab.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from tunelab.training.config import TrainConfig, learning_rate_bounds
from tunelab.training.data import EncodedData, prepare_data
from tunelab.training.diagnostics import LOSS_WINDOW, diagnose, new_findings
from tunelab.training.flops import device_name, flop_model, peak_for
from tunelab.training.hardware import Hardware, detect_hardware
from tunelab.training.loss import supports_fast_path
from tunelab.training.loss_options import resolve as resolve_loss
from tunelab.training.methods import get as method_spec
from tunelab.training.modeling import (
    count_parameters,
    load_base_model,
    uses_prompt_learning,
    wrap_model,
)
from tunelab.training.optim import build_optimizer, build_scheduler
from tunelab.training.parallel import Parallel, without_evaluation
from tunelab.training.preflight import errors_only, preflight
from tunelab.training.rundir import RunFiles
from tunelab.training.stopping import Command, StopSignal
from tunelab.training.task_data import save_labels
from tunelab.training.tasks import TaskSpec, resolve_task
from tunelab.training.tasks import get as task_spec
from tunelab.training.testhooks import hold


class Recipe:
    """One training run against one run directory."""

    def __init__(self, config: TrainConfig, files: RunFiles, stop: StopSignal) -> None:
        self.config = config
        self.files = files
        self.stop = stop
        self.state: dict[str, Any] = {
            "global_step": 0, "tokens_seen": 0, "elapsed_s": 0.0, "best_eval_loss": None,
            "evals_without_improvement": 0, "last_loss": None, "last_eval_loss": None,
        }
        self.history: deque[dict[str, Any]] = deque(maxlen=2 * LOSS_WINDOW)
        self.diagnoses_active: set[str] = set()

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        import warnings

        import torch
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        config, files = self.config, self.files
        self.allocator = allocator.configure()  # large blocks go back to the system when freed
        self.hw: Hardware = detect_hardware(config)
        # torchrun's ranks join here; ranks other than 0 write nothing shared and leave evaluation to rank 0
        self.parallel = Parallel.start(config, self.hw.device)
        self.stop = self.parallel.agreed_stop(self.stop)  # type: ignore[assignment]
        if not self.parallel.is_main:
            self.config = config = without_evaluation(config)
        issues = preflight(config, self.hw, files.dir)
        for issue in issues:
            if issue.level == "warning":
                files.event("warning", issue.message, issue.as_dict())
        files.event("preflight", "preflight checks done", {"issues": [i.as_dict() for i in issues]})
        if errors_only(issues):
            raise PreflightFailed(
                "; ".join(i.message for i in errors_only(issues)),
                hint=" ".join(i.hint for i in errors_only(issues)),
                details={"issues": [i.as_dict() for i in issues]},
            )
        random.seed(config.seed)
        torch.manual_seed(config.seed)
        self.model_dir = resolve_model_path(config.model)
        if config.gradient_checkpointing == "auto":
            self.config = config = self._choose_checkpointing(config)
        self.task: TaskSpec = task_spec(resolve_task(config.task, self.model_dir))
        self.tokenizer = load_tokenizer(self.model_dir)
        saved = read_labels(files.dir)  # a resumed classifier keeps its label order
        self.data: EncodedData = prepare_data(config, self.tokenizer, self.task.name,
                                              saved["labels"] if saved else None)  # fmt: skip
        if self.task.labeled:
            save_labels(files.dir, self.task.name, self.data.labels)
        self._report_data()
        micro = math.ceil(len(self.data.train) / config.batch_size)
        self.steps_per_epoch = math.ceil(micro / config.gradient_accumulation_steps)
        self.total_steps = config.max_steps or self.steps_per_epoch * config.epochs
        base = load_base_model(self.model_dir, config, self.hw, self.task.name, self.data.labels)
        self.model = wrap_model(base, config, self.total_steps, self.task.name)
        allocator.release()  # the checkpoint's dtype casts and other load-time temporaries
        self.fast = self.task.name == "causal_lm" and supports_fast_path(self.model, uses_prompt_learning(config))
        self.loss_options = resolve_loss(config.loss, model=self.model, tokenizer=self.tokenizer,
                                         labels=self.data.labels, device=self.hw.device)  # fmt: skip
        self.parallel.wrap(self.model, self.fast)
        self.state["world_size"] = self.parallel.rank.world_size
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(config, self.model)
        self.parallel.attach(self.optimizer)  # DeepSpeed: its engine takes the optimizer (and the step)
        self.scheduler = build_scheduler(config, self.optimizer, self.total_steps)
        trainable, total = count_parameters(self.model)
        self.param_counts = {"trainable": trainable, "total": total}
        spec = method_spec(config.method)
        self.track_updates = not spec.trains_full_weights  # a copy of the adapter is cheap; of a model not
        self.flops = flop_model(self.model, trains_full_weights=spec.trains_full_weights)
        self.peak = self.parallel.peak(peak_for(device_name(self.hw.device), self.hw.precision))
        self._write_resolved_config()
        checkpoint = find_checkpoint(files.checkpoints, config.resume_from, on_skip=self._skipped_checkpoint)
        if checkpoint is not None:
            self.state.update(load_checkpoint(checkpoint, self.model, self.optimizer, self.scheduler,
                                              restore=self.parallel.restore))  # fmt: skip
            dropped = files.truncate_metrics(self.state["global_step"])
            files.event("resumed", f"resumed from {checkpoint.name}",
                        {"checkpoint": checkpoint.name, "step": self.state["global_step"],
                         "dropped_metric_lines": dropped})
        files.event("started", f"training {config.method} ({self.task.name}) on {self.hw.device} "
                    f"({self.hw.precision})", {"task": self.task.name, "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                     "parameters": self.param_counts, "hardware": self.hw.as_dict(),
                     "peak_flops": self.peak.flops if self.peak else None,
                     "peak_flops_source": self.peak.source if self.peak else None})

    def _choose_checkpointing(self, config: TrainConfig) -> TrainConfig:
        """``gradient_checkpointing: auto`` decided from the memory estimate, and said in an event."""
        from tunelab.models.resolve import model_info
        from tunelab.training.checkpointing import choose

        choice = choose(config, model_info(str(self.model_dir)), self.hw.device)
        self.files.event("gradient_checkpointing", choice.message(), choice.as_dict())
        return config.model_copy(update={"gradient_checkpointing": choice.mode})

    def _skipped_checkpoint(self, path: Any, reason: str) -> None:
        self.files.event("checkpoint_skipped", f"skipped {path.name}: {reason}; resuming from the previous one",
                         {"checkpoint": path.name, "reason": reason, "moved_to": f"damaged-{path.name}"})

    def _report_data(self) -> None:
        stats = self.data.stats
        self.files.event("data", f"{len(self.data.train)} training and {len(self.data.eval)} eval examples", stats)
        truncated = stats["train"]["truncated"] + stats["eval"]["truncated"]
        if truncated:
            self.files.event(
                "truncation", f"{truncated} examples were longer than max_length={self.config.max_length} "
                "and were truncated", {"train": stats["train"]["truncated"], "eval": stats["eval"]["truncated"]},
            )

    def _write_resolved_config(self) -> None:
        resolved = self.config.model_dump(mode="json")
        resolved.update(precision=self.hw.precision, attention=self.hw.attention, kernels=self.hw.kernels,
                        device=self.hw.device, learning_rate=self.config.peak_learning_rate, task=self.task.name,
                        packing=self.config.packing and self.task.packable)
        resolved["engine"] = {"tunelab_version": __version__, "model_path": str(self.model_dir),
                              "hardware": self.hw.as_dict(), "total_steps": self.total_steps,
                              "fast_loss_path": self.fast, "parameters": self.param_counts,
                              "allocator": self.allocator}
        self.files.write_config(resolved)

    def autocast(self) -> Any:
        """Mixed precision for the forward pass.

        Full fine-tuning keeps fp32 weights and computes in bf16/fp16. LoRA on a
        bf16 base keeps fp32 adapter weights; without autocast PEFT casts every
        layer input up to fp32 for the adapter path and back (about 7% of a CPU
        step), so the adapter matmuls run in bf16 under autocast instead.
        """
        import torch

        spec = method_spec(self.config.method)
        if spec.trains_full_weights and self.hw.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.hw.precision == "bf16" else torch.float16
            return torch.autocast(self.hw.device, dtype=dtype)
        # A classifier's head trains in fp32 beside any adapter, so it too computes under autocast.
        if (spec.bf16_autocast or self.task.labeled) and self.hw.precision == "bf16":
            from peft.helpers import disable_input_dtype_casting

            stack = contextlib.ExitStack()
            stack.enter_context(torch.autocast(self.hw.device, dtype=torch.bfloat16))
            if spec.bf16_autocast:
                stack.enter_context(disable_input_dtype_casting(self.model))
            return stack
        return contextlib.nullcontext()

    def batches(self, examples: list[Any]) -> Batch:
        """The task's collation: packed or padded token rows, seq2seq pairs or labeled texts."""
        pad = self.tokenizer.pad_token_id
        if self.task.name == "seq2seq":
            return make_seq2seq_batch(examples, pad_id=pad).to(self.hw.device)
        if self.task.labeled:
            return make_labeled_batch(examples, pad_id=pad, task=self.task.name).to(self.hw.device)
        return make_batch(examples, packing=self.config.packing and self.task.packable,
                          max_length=self.config.max_length, pad_id=pad).to(self.hw.device)  # fmt: skip

    # ----------------------------------------------------------------- loop
    def train(self) -> int:
        config, files = self.config, self.files
        step = self.state["global_step"]
        epoch = step // self.steps_per_epoch
        skip = step % self.steps_per_epoch
        window = {"loss": 0.0, "targets": 0, "tokens": 0, "time": 0.0, "grad_norm": 0.0, "steps": 0,
                  "samples": 0, "flops": 0.0}
        pending: list[Command] = []
        while step < self.total_steps:
            plan = plan_epoch(len(self.data.train), config.batch_size, config.seed, epoch)
            accum = config.gradient_accumulation_steps
            groups = [plan[i : i + accum] for i in range(0, len(plan), accum)]
            for group in groups[skip:]:
                if step >= self.total_steps:
                    break
                started = time.perf_counter()
                files.heartbeat(step, "step", stop_after=step + 1)
                shares = [self.parallel.share(ids) for ids in group]  # this rank's sequences (all, alone)
                micro = [self.batches([self.data.train[i] for i in ids]) for ids, _ in shares]
                for batch in micro:  # the config's `loss` criterion trains; eval batches keep plain cross-entropy
                    batch.loss_options = self.loss_options
                n_targets = max(1, int(self.parallel.total([sum(b.n_targets * w for b, (_, w) in
                                                                zip(micro, shares, strict=True))])[0]))
                self.model.train()
                step_loss, tokens = 0.0, 0
                for k, (batch, (_, weight)) in enumerate(zip(micro, shares, strict=True)):
                    with self.parallel.sync(last=k == len(micro) - 1):  # DDP reduces on the last one
                        with self.autocast():
                            loss = self.parallel.loss(self.model, batch) * weight
                        self.parallel.backward(loss * self.parallel.scale / n_targets)
                    step_loss += float(loss.detach())
                    tokens += batch.tokens if weight else 0
                step_loss, tokens = self.parallel.total([step_loss, tokens])
                tokens = int(tokens)
                limit = config.max_grad_norm or float("inf")
                hold("step", step + 1, files.dir)
                logs_now = (step + 1) % config.logging_steps == 0 or step + 1 == self.total_steps
                before = [p.detach().clone() for p in self.params] if logs_now and self.track_updates else None
                # clip (the norm over every rank's shards) and update; DeepSpeed does both in its own step
                grad_norm = self.parallel.step(self.optimizer, self.params, limit)
                update_ratio = self._update_ratio(before) if before is not None else None
                if config.method == "adalora":
                    self.model.base_model.update_and_allocate(step)
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                step += 1
                spent = time.perf_counter() - started
                logits = n_targets if self.fast else tokens
                self.state.update(global_step=step, tokens_seen=self.state["tokens_seen"] + tokens,
                                  elapsed_s=self.state["elapsed_s"] + spent,
                                  last_loss=step_loss / n_targets)
                for key, value in (("loss", step_loss), ("targets", n_targets), ("tokens", tokens),
                                   ("time", spent), ("grad_norm", grad_norm), ("steps", 1),
                                   ("samples", sum(len(ids) for ids in group)),
                                   ("flops", self.flops.step(tokens, logits))):
                    window[key] += value
                files.heartbeat(step, "logging", stop_after=step)
                checkpoint_now = self._apply(pending + self.stop.poll(), step)
                if step % config.logging_steps == 0 or step == self.total_steps:
                    self._log_train(window, step, update_ratio)
                    window = dict.fromkeys(window, 0)
                if config.eval_steps and step % config.eval_steps == 0:
                    with self.parallel.gathered():  # FSDP: each rank evaluates the whole model alike
                        early = self._evaluate(step)
                    if early:
                        files.event("early_stopped", "eval loss stopped improving", {"step": step})
                        self.total_steps = step
                # A request that landed while logging or evaluating: a pause stops now (as
                # before), anything else waits for the next step boundary.
                pending = self.stop.poll()
                if self.stop.requested():
                    self._save(step, stopping=True)
                    files.clear_control()
                    files.event("paused", f"stopped at step {step} after saving a checkpoint",
                                {"step": step, "reason": self.stop.reason})
                    return exit_codes.STOPPED
                if checkpoint_now:
                    self._save(step, requested=True)
                elif config.save_steps and step % config.save_steps == 0 and step < self.total_steps:
                    self._save(step)
            epoch += 1
            skip = 0
        return exit_codes.COMPLETED

    def _log_train(self, window: dict[str, float], step: int, update_ratio: float | None = None) -> None:
        avg_step = self.state["elapsed_s"] / max(1, step)
        seconds = max(window["time"], 1e-9)
        line = {
            "type": "train", "step": step, "epoch": round(step / self.steps_per_epoch, 4),
            "loss": window["loss"] / max(1, window["targets"]),
            "learning_rate": self.scheduler.get_last_lr()[0],
            "grad_norm": window["grad_norm"] / max(1, window["steps"]),
            "tokens_per_second": window["tokens"] / seconds,
            "samples_per_second": window["samples"] / seconds,
            "tokens_seen": self.state["tokens_seen"], "elapsed_s": round(self.state["elapsed_s"], 3),
            "eta_s": round(avg_step * (self.total_steps - step), 1),
        }
        if self.peak is not None:
            line["mfu"] = window["flops"] / seconds / self.peak.flops
        if update_ratio is not None:
            line["update_ratio"] = update_ratio
        self.files.metrics(line)
        self._check_health(line)

    def _check_health(self, line: dict[str, Any]) -> None:
        """Run the diagnosis rules on the recent lines; each new finding becomes an event."""
        self.history.append(line)
        report, self.diagnoses_active = new_findings(self.diagnoses_active, diagnose(list(self.history)))
        for finding in report:
            self.files.event("diagnosis", f"{finding.message}. {finding.suggestion}", finding.as_dict())

    def _update_ratio(self, before: list[Any]) -> float:
        """||this step's update|| / ||weights||, over the trainable parameters (one fused pass)."""
        import torch

        after = [p.detach() for p in self.params]
        deltas = torch._foreach_sub(after, before)
        update = self.parallel.full(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(deltas))))
        weights = self.parallel.full(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(after))))
        return float(update / weights) if float(weights) > 0 else 0.0

    # -------------------------------------------------------- interventions
    def _apply(self, commands: list[Command], step: int) -> bool:
        """Carry out the control file's new commands after ``step``; True when a checkpoint is due."""
        checkpoint = False
        for command in commands:
            if command.action == "checkpoint":
                checkpoint = True
            elif command.action == "learning_rate" and command.value is not None:
                self._set_learning_rate(command.value, step, command.id)
            elif command.action == "stop_early" and step < self.total_steps:
                planned, self.total_steps = self.total_steps, step
                self.files.event("stopped_early", f"stopped early at step {step} of {planned} on request; "
                                 "saving the output with the current weights",
                                 {"step": step, "planned_steps": planned, "total_steps": step,
                                  "request_id": command.id})
        return checkpoint

    def _set_learning_rate(self, value: float, step: int, request_id: int | None) -> None:
        """The next step runs at ``value``; the schedule is rescaled so its shape carries on from there.

        transformers' schedules are ``base_lr * factor(step)``; scaling ``base_lrs`` by
        new/current keeps warm-up and decay while starting from the new rate (a
        checkpoint stores ``base_lrs``, so a resumed run keeps the change).
        """
        low, high = learning_rate_bounds()
        current = float(self.optimizer.param_groups[0]["lr"])
        if not low <= value <= high:
            self.files.event("warning", f"learning rate {value:g} refused: it must be between {low:g} and {high:g}",
                             {"code": "learning_rate_out_of_range", "value": value, "request_id": request_id})
            return
        if current > 0:
            self.scheduler.base_lrs = [base * value / current for base in self.scheduler.base_lrs]
        else:
            self.scheduler.base_lrs = [value for _ in self.scheduler.base_lrs]
        for group in self.optimizer.param_groups:
            group["lr"] = value
        self.scheduler._last_lr = [value for _ in self.optimizer.param_groups]
        self.files.event("learning_rate_changed", f"learning rate {current:.3g} -> {value:.3g} from step {step + 1}",
                         {"step": step, "from": current, "to": value, "applies_from_step": step + 1,
                          "request_id": request_id})

    def _evaluate(self, step: int) -> bool:
        """Eval loss now; True when early stopping says stop."""
        from tunelab.training.evaluate import mean_loss, measure_labeled, perplexity

        if not self.data.eval:
            return False
        line: dict[str, Any] = {"type": "eval", "step": step, "epoch": round(step / self.steps_per_epoch, 4)}
        if self.task.labeled:  # a classifier's accuracy (a regressor's errors) beside its loss
            found = measure_labeled(self.model, self.data.eval, self.batches, self.autocast, self.task.name,
                                    self.data.labels)  # fmt: skip
            loss = found["eval_loss"]
            line.update({f"eval_{k}": found[k] for k in ("accuracy", "macro_f1", "mae", "rmse") if k in found})
        else:
            loss, _ = mean_loss(self.model, self.data.eval, self.batches, self.fast, self.autocast)
            line["eval_perplexity"] = perplexity(loss)
        self.state["last_eval_loss"] = loss
        self.files.metrics({**line, "eval_loss": loss})
        self.files.event("eval", f"eval loss {loss:.4f} at step {step}", {"step": step, "eval_loss": loss})
        best = self.state["best_eval_loss"]
        if best is None or loss < best:
            self.state.update(best_eval_loss=loss, evals_without_improvement=0)
            return False
        self.state["evals_without_improvement"] += 1
        patience = self.config.early_stopping_patience
        return bool(patience and self.state["evals_without_improvement"] >= patience)

    def _save(self, step: int, requested: bool = False, stopping: bool = False) -> None:
        # FSDP: every rank gathers its shards, so the checkpoint is the whole model as one process saves it
        with self.parallel.gathered():
            optimizer_state = self.parallel.optimizer_state(self.optimizer)
            if self.parallel.is_main:  # DDP's ranks hold the same weights: rank 0's state is the checkpoint
                self._write_checkpoint(step, requested, stopping, optimizer_state)

    def _write_checkpoint(self, step: int, requested: bool, stopping: bool, optimizer_state: Any) -> None:
        # A stop asked for during a routine save is seen after the next step, so it stops there.
        self.files.heartbeat(step, "stopping" if stopping else "checkpoint", stop_after=step + (not stopping))
        path = save_checkpoint(self.files.checkpoints, step, self.model, self.optimizer, self.scheduler,
                               dict(self.state), self.config.save_total_limit,
                               weights=self.parallel.pretrained_state(self.model), optimizer_state=optimizer_state)
        self.files.event("checkpoint_saved", f"saved {path.name}" + (" on request" if requested else ""),
                         {"step": step, "path": str(path), "requested": requested})

    # --------------------------------------------------------------- finish
    def finish(self) -> dict[str, Any]:
        from tunelab.training.output import save_output

        with self.parallel.gathered():  # FSDP: the whole model on every rank; rank 0 saves and evaluates it
            if not self.parallel.is_main:
                return {"summary": {}, "evaluation": None}  # rank 0 saves and evaluates the output
            self.files.heartbeat(self.state["global_step"], "output", stop_after=None)
            return save_output(self)


def _failure_code(exc: BaseException) -> int:
    from tunelab.errors import ConfigError, DatasetError, ModelUnavailable

    if isinstance(exc, ConfigError | PreflightFailed | DatasetError | ModelUnavailable):
        return exit_codes.INVALID_CONFIG
    return exit_codes.FAILED
