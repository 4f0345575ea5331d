"""The one training loop: build, init or resume, train, evaluate, checkpoint, log."""

from __future__ import annotations

import dataclasses
import difflib
import errno
import json
import logging
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import linen as nn

import framework.data  # noqa: F401  (registers the built-in datasets)
import framework.evaluators  # noqa: F401  (registers the built-in evaluators)
import framework.losses  # noqa: F401  (registers the built-in losses)
import framework.models  # noqa: F401  (registers the built-in models)
from framework import checkpoint as checkpoint_lib
from framework import config as config_lib
from framework import flops as flops_lib
from framework import guards, optim, preemption, registry, state_spec, workdir_lock
from framework import metrics as metrics_lib
from framework import sharding as sharding_lib
from framework import step_flops as step_flops_lib
from framework import train_state as state_lib
from framework.data import pipeline
from framework.registry import ConfigError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Run:
    """Everything built from a config before the first step is compiled."""

    config: ml_collections.ConfigDict
    workdir: str
    mesh: Any
    rules: sharding_lib.Rules
    model: nn.Module
    loss_fn: Any
    evaluators: dict
    grad_accum_steps: int


def build(config: ml_collections.ConfigDict, workdir: str) -> Run:
    """Validates `config` and builds mesh, model, loss and evaluators; no compute yet.

    Raises ConfigError for anything the config gets wrong (unknown keys or names, a mesh that
    does not fit the devices, a batch that does not divide) before anything is compiled.
    """
    if not workdir:
        raise ConfigError("--workdir: required (the directory for checkpoints and metrics).")
    config_lib.import_project(config)
    config_lib.validate(config)
    mesh = sharding_lib.make_mesh(config.mesh)
    rules = sharding_lib.logical_rules(config.sharding.rules)
    sharding_lib.check_batch_size(config.batch_size, mesh)
    guards.on_nonfinite(config)
    accum = int(config.optimizer.get("grad_accum_steps", 1) or 1)
    if accum > 1:
        if config.batch_size % accum:
            raise ConfigError(f"config.batch_size={config.batch_size} is not a multiple of "
                              f"config.optimizer.grad_accum_steps={accum}.")
        sharding_lib.check_batch_size(
            config.batch_size // accum, mesh,
            key="the micro-batch config.batch_size / config.optimizer.grad_accum_steps")
    if config.init_from.path:
        from framework import pretrained

        pretrained.check_init_from(config.init_from)
    model = registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model),
                                  "config.model")
    loss_fn = registry.LOSSES.build(config.loss.name, config_lib.kwargs_of(config.loss),
                                    "config.loss")
    evaluators = {
        name: registry.EVALUATORS.build(
            name, config_lib.kwargs_of(kwargs, drop=()), f"config.evaluators.{name}",
            model=model, config=config, mesh=mesh)
        for name, kwargs in config.evaluators.items()
    }
    return Run(config, workdir, mesh, rules, model, loss_fn, evaluators, accum)


CONFIG_CHANGE = ("warn", "refuse")


def check_config_change(config: ml_collections.ConfigDict, workdir: str,
                        on_config_change: str = "warn") -> str | None:
    """Compares `config` with WORKDIR/config.json of an earlier run; writes nothing.

    Returns the unified diff (None when there is no earlier config or it is the same).
    With on_config_change="refuse" a difference raises ConfigError showing the diff;
    with "warn" it is logged.
    """
    if on_config_change not in CONFIG_CHANGE:
        raise ConfigError(f"on_config_change={on_config_change!r}: must be one of "
                          f"{', '.join(CONFIG_CHANGE)}.")
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        old = f.read()
    text = _config_text(config)
    if old == text:
        return None
    diff = "\n".join(difflib.unified_diff(
        old.splitlines(), text.splitlines(), "previous config.json", "this run", lineterm=""))
    if on_config_change == "refuse":
        raise ConfigError(
            f"the config differs from the one saved in {path} by an earlier run, and "
            f"--on_config_change=refuse:\n{diff}\nUse a new --workdir, or "
            "--on_config_change=warn to continue this run with the new config.")
    log.warning("The config differs from the one saved in %s:\n%s", path, diff)
    return diff


def record_config(config: ml_collections.ConfigDict, workdir: str,
                  on_config_change: str = "warn") -> None:
    """Writes WORKDIR/config.json after `check_config_change`.

    An earlier, different config.json is kept as config.<N>.json (N = 1, 2, ...), never
    overwritten.
    """
    diff = check_config_change(config, workdir, on_config_change)
    if jax.process_index() != 0:
        return
    path = os.path.join(workdir, "config.json")
    if diff is not None:
        number = 1
        while os.path.exists(os.path.join(workdir, f"config.{number}.json")):
            number += 1
        kept = os.path.join(workdir, f"config.{number}.json")
        os.replace(path, kept)
        log.warning("Kept the earlier config as %s.", kept)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(_config_text(config))
    os.replace(tmp, path)


def _config_text(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)


@dataclasses.dataclass
class Result:
    """What a run ends with: the final TrainState and the last train and eval metrics."""

    state: state_lib.TrainState
    metrics: dict[str, float]
    preempted: bool = False  # True when SIGTERM / a preemption notice stopped the run early.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       stop_at_step: int | None = None,
                       on_config_change: str = "warn") -> Result:
    """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one.

    With `stop_at_step`, the run checkpoints and returns after that step (a time-sliced job
    continues later from there); the schedule still spans `config.total_steps`. SIGTERM (or
    JAX's preemption notice) checkpoints after the current step and returns with
    `preempted=True`. `on_config_change` ("warn" or "refuse") says what to do when the
    workdir holds a different config.json (see `check_config_change`). Raises
    workdir_lock.WorkdirInUseError when another run holds the workdir,
    checkpoint.WorkdirWriteError when a write to the workdir fails (a full disk), and
    guards.NonFiniteError when a loss or gradient is NaN/Inf and config.on_nonfinite="stop".
    """
    run = build(config, workdir)
    if on_config_change != "warn":  # Refuse before anything starts; warnings come later.
        check_config_change(config, workdir, on_config_change)
    os.makedirs(workdir, exist_ok=True)
    with workdir_lock.WorkdirLock(workdir), state_spec.mesh_context(run):
        try:
            return _train(run, stop_at_step or config.total_steps, on_config_change)
        except OSError as e:
            if e.errno not in WRITE_ERRORS:
                raise
            raise checkpoint_lib.WorkdirWriteError(checkpoint_lib.write_failure(
                f"writing {e.filename or workdir}", workdir, e,
                checkpoint_lib.committed_steps(os.path.join(workdir, "checkpoints")))) from e


# A full disk, a quota, a read-only or failing filesystem: the run stops, named (and the
# checkpoints committed so far stay as they are).
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def _train(run: Run, stop_at_step: int, on_config_change: str = "warn") -> Result:
    config, mesh = run.config, run.mesh
    is_main = jax.process_index() == 0
    checkpointer = checkpoint_lib.Checkpointer(
        run.workdir, config.checkpoint.max_to_keep, config.checkpoint.async_save)

    train_iter = iter(pipeline.make_train_loader(config.data, config.batch_size, config.seed))
    first_local = next(train_iter)
    example = sharding_lib.abstract_global_batch(first_local, mesh)

    params, tx, schedule, abstract_state, state_shardings = state_spec.abstract_training(
        run.model, example, config, mesh, run.rules)
    if is_main:
        log.info("Parameter groups:\n%s", optim.describe_param_groups(params, config.optimizer))

    restored = checkpointer.restore_latest(abstract_state, train_iter)
    if restored is not None:
        log.info("Resumed from %s/%d", checkpointer.directory, restored[0])
        state = restored[1]
        pending = None
    else:
        state = state_lib.create_train_state(run.model, tx, example, state_shardings, config.seed)
        if config.init_from.path:
            from framework import pretrained  # Only runs that init from a checkpoint need it.

            state = pretrained.init_state_from(state, state_shardings, config.init_from, tx.init)
        pending = first_local
    # Only now, with the checkpoint (if any) known to fit, does this run claim the workdir.
    record_config(config, run.workdir, on_config_change)
    writer = metrics_lib.MetricWriter(run.workdir, enabled=is_main, wandb=config.get("wandb"))

    compiled = state_spec.compile_train_step(run, tx, schedule, abstract_state, state_shardings,
                                             example)

    start = int(jax.device_get(state.step))
    n_params = flops_lib.count_params(abstract_state.params)
    step_flops = step_flops_lib.train_step_flops(run, example, compiled)
    log.info("Model: %s parameters; %.3g FLOPs per train step over all devices (XLA, a "
             "multiply-add = 2).",
             f"{n_params:,}", step_flops or float("nan"))
    writer.write(start, {"params": n_params, "train/flops_per_step": step_flops or 0.0})

    meta = checkpoint_lib.run_metadata(config.to_dict())
    progress = metrics_lib.Progress(config.total_steps, start, config.batch_size)
    stop_on_nonfinite = guards.on_nonfinite(config) == "stop"
    count_skipped = config.data.get("on_corrupt", "error") == "skip"
    window: list[dict] = []
    last: dict[str, float] = {}
    end = min(stop_at_step, config.total_steps)
    preempted = False
    unchecked = None  # (step, metrics) whose finiteness is checked once the next step runs.

    def checkpoint_note() -> str:
        checkpointer.wait()  # A save in flight is of a good state; let it commit first.
        return _checkpoint_note(checkpointer)

    try:
        with preemption.PreemptionWatch() as watch:
            for step in range(start + 1, end + 1):
                local = pending if pending is not None else next(train_iter)
                pending = None
                state, step_metrics = compiled(state, sharding_lib.shard_batch(local, mesh))
                if stop_on_nonfinite and unchecked is not None:
                    guards.raise_if_nonfinite(*unchecked, checkpoint_note)
                unchecked = (step, step_metrics)
                window.append(step_metrics)
                preempted = watch.should_stop(step) and step < end
                final = step == end or preempted
                if step % config.log_every == 0 or final:
                    last = guards.window_means(jax.device_get(window))
                    window = []
                    if count_skipped:
                        last["train/skipped_records"] = _skipped_records(train_iter, step,
                                                                         config.batch_size)
                    line = progress.update(step, last)
                    last["train/examples_per_sec"] = progress.examples_per_sec
                    writer.write(step, last)
                    if is_main:
                        print(line, flush=True)
                save = (config.checkpoint_every and step % config.checkpoint_every == 0) or final
                evaluate = ((config.eval_every and step % config.eval_every == 0)
                            or step == config.total_steps)
                if stop_on_nonfinite and (save or evaluate):
                    guards.raise_if_nonfinite(*unchecked, checkpoint_note)
                if evaluate:
                    last.update(_evaluate(run, state.params, step, writer))
                if save:
                    checkpointer.save(step, state, train_iter, meta)
                if preempted:
                    log.warning("Stopping after step %d (preemption); the checkpoint of this "
                                "step resumes the run.", step)
                    break
            if stop_on_nonfinite and unchecked is not None:
                guards.raise_if_nonfinite(*unchecked, checkpoint_note)
    finally:
        checkpointer.close()  # Saves in flight (of good states) are committed first.
        writer.close()
    return Result(state, last, preempted)


def _checkpoint_note(checkpointer: checkpoint_lib.Checkpointer) -> str:
    steps = checkpointer.all_steps()
    if not steps:
        return "There is no checkpoint yet."
    return (f"The last good checkpoint, step {steps[-1]} in {checkpointer.directory}, is "
            "untouched; a restart resumes from it.")


def _skipped_records(train_iter, step: int, global_batch: int) -> float:
    """Returns the corrupt records all processes have skipped up to `step` of this run."""
    count, index = jax.process_count(), jax.process_index()
    state = train_iter.get_state()
    mine = guards.skipped_records(state, step, global_batch // count, index, count)
    if count > 1:
        from jax.experimental import multihost_utils

        mine = int(np.sum(multihost_utils.process_allgather(np.int64(mine))))
    return float(mine)


def _evaluate(run: Run, params, step: int, writer) -> dict[str, float]:
    out = {}
    for name, evaluator in run.evaluators.items():
        for metric, value in evaluator.run(params).items():
            out[f"eval/{name}/{metric}"] = float(value)
    if out:
        writer.write(step, out)
        if jax.process_index() == 0:
            print(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in out.items()),
                  flush=True)
    return out
